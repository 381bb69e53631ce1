"""rpm="auto" through the client, against the emulator's capacity mode (a shared pool like
Vertex AI's Dynamic Shared Quota): config and constructors, the cut on a busy pool, auto_max.

Written once here; ``make generate`` produces the sync twin in tests/_sync/.
"""

from __future__ import annotations

import itertools
import logging

import pytest

from greycloud import GreyCloudAsyncClient, GreyCloudConfig, VertexRateLimiter
from greycloud._primitives import async_map_bounded
from greycloud.errors import ConfigError
from greycloud.testing import Capacity, VertexEmulator

MODEL = "gemini-2.5-flash"


async def test_auto_is_accepted_by_config_constructor_and_model_limits(
    vertex_emulator: VertexEmulator,
) -> None:
    config = vertex_emulator.config(
        rpm="auto",
        tpm="auto",
        auto_max=600,
        model_limits={"gemini-2.5-pro": {"rpm": 30}, "gemini-2.0-flash": {"auto_max": 120}},
    )
    async with GreyCloudAsyncClient(config, credentials=vertex_emulator.credentials) as client:
        await client.generate_content("hello", model=MODEL)
        await client.generate_content("hello", model="gemini-2.5-pro")
        await client.generate_content("hello", model="gemini-2.0-flash")
        models = client.rate_limiter.stats().models
    assert models[MODEL].auto and models["gemini-2.0-flash"].auto
    assert not models["gemini-2.5-pro"].auto  # a fixed number for that model
    assert models["gemini-2.5-pro"].rpm <= 30
    assert models[MODEL].rpm == pytest.approx(60, rel=0.1)  # the safe start
    assert [change.reason for change in models[MODEL].history] == ["start"]


@pytest.mark.parametrize(
    ("arguments", "field", "words"),
    [
        ({"rpm": "fast"}, "rpm", 'positive integer or "auto"'),
        ({"tpm": "auto!"}, "tpm", 'positive integer or "auto"'),
        ({"rpm": "auto", "auto_max": 0}, "auto_max", "positive integer"),
        ({"rpm": "auto", "auto_floor": 600, "auto_max": 60}, "auto_floor", "at most auto_max"),
        ({"rpm": "auto", "auto_floor": 70_000}, "auto_floor", "at most auto_max (60000)"),
        ({"model_limits": {"m": {"rpm": "sometimes"}}}, "model_limits", "m.rpm"),
        ({"model_limits": {"m": {"auto_max": -1}}}, "model_limits", "m.auto_max"),
        ({"max_concurrency": "auto"}, "max_concurrency", "a call's latency"),
        ({"model_limits": {"m": {"max_concurrency": "auto"}}}, "model_limits", "limits the rate"),
    ],
)
async def test_bad_auto_settings_fail_at_construction(
    arguments: dict[str, object], field: str, words: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        GreyCloudConfig(project_id="p", **arguments)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert words in str(caught.value)
    with pytest.raises(ConfigError):
        VertexRateLimiter(**arguments)  # type: ignore[arg-type]


async def test_a_busy_pool_cuts_the_discovered_rate_and_the_calls_still_succeed(
    vertex_emulator: VertexEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    # The pool serves far less than the safe start (60/min), so the first calls find it busy.
    vertex_emulator.set_capacity(Capacity(requests_per_second=0.5))
    config = vertex_emulator.config(rpm="auto", auto_floor=6, max_concurrency=8)
    caplog.set_level(logging.INFO, logger="greycloud")
    async with GreyCloudAsyncClient(config, credentials=vertex_emulator.credentials) as client:
        for _ in range(2):
            response = await client.generate_with_retry(
                "hello", max_retries=20, base_delay=0.05, max_delay=0.3
            )
            assert response.text
        stats = client.rate_limiter.stats().models[MODEL]
    refused = vertex_emulator.stats()[MODEL].rejected
    assert refused >= 1 and stats.rate_limited == refused
    assert any(change.reason == "cut" for change in stats.history)
    assert stats.rpm < 60 and stats.ceiling_estimate_rpm is not None
    # Each change logged once, with the model and the rate as fields.
    cuts = [r for r in caplog.records if getattr(r, "reason", None) == "cut"]
    assert len(cuts) == sum(change.reason == "cut" for change in stats.history)
    assert all(r.model == MODEL and r.rate > 0 for r in cuts)  # type: ignore[attr-defined]
    assert all(r.name.startswith("greycloud.") for r in cuts)


async def test_the_discovered_rate_never_exceeds_auto_max() -> None:
    limiter = VertexRateLimiter(rpm="auto", auto_floor=600, auto_max=600, max_concurrency=8)
    starts: list[float] = []

    async def call(index: int) -> None:
        async with limiter.limit(MODEL, 1) as permit:
            starts.append(permit.start)

    await async_map_bounded(call, range(8), 8)
    stats = limiter.stats().models[MODEL]
    assert stats.rpm <= 600
    assert all(change.rate * 60 <= 600 for change in stats.history)
    starts.sort()
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert min(gaps) >= 0.1 - 1e-6  # the booked starts: 600/min is one per 0.1 s
