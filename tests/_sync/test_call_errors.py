# DO NOT EDIT: generated from tests/_async/test_call_errors.py by tools/generate.py.
# Change tests/_async/test_call_errors.py and run `make generate`.
# output-sha256: 8f5264822176beca
"""Errors that tell the truth: call arguments checked as the config checks them, and a per-day
429 typed ``QuotaExhaustedError`` on every path, not only in ``generate_with_retry``.

Written once here; ``make generate`` produces the sync twin in tests/_sync/.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from greycloud import (
    ConfigError,
    GreyCloudBatch,
    GreyCloudCache,
    GreyCloudClient,
    QuotaExhaustedError,
)
from greycloud.testing import Fault, VertexEmulator

PER_DAY = "GenerateRequestsPerDayPerProjectPerModel"


@pytest.fixture
def client(vertex_emulator: VertexEmulator) -> Iterator[GreyCloudClient]:
    config = vertex_emulator.config(rpm=100_000, tpm=100_000_000)
    with GreyCloudClient(config, credentials=vertex_emulator.credentials) as client:
        yield client


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("temperature", 9),
        ("temperature", -0.1),
        ("top_p", 1.5),
        ("max_output_tokens", 0),
        ("thinking_level", "extreme"),
        ("safety_settings", [{"category": "HARM_CATEGORY_HATE_SPEECH"}]),
    ],
)
def test_a_bad_call_argument_is_a_config_error_naming_it(
    client: GreyCloudClient, vertex_emulator: VertexEmulator, argument: str, value: Any
) -> None:
    calls: list[Callable[[], Awaitable[Any]]] = [
        lambda: client.generate_content("hi", **{argument: value}),
        lambda: client.generate_with_retry("hi", **{argument: value}),
    ]
    for call in calls:
        with pytest.raises(ConfigError) as caught:
            call()
        assert caught.value.field == argument
    with pytest.raises(ConfigError):
        for _ in client.generate_content_stream("hi", **{argument: value}):
            pass
    assert vertex_emulator.requests() == []  # refused before anything was sent


def test_a_per_day_429_on_generate_content_is_quota_exhausted(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    vertex_emulator.inject(Fault.status(429, quota_id=PER_DAY))
    with pytest.raises(QuotaExhaustedError) as caught:
        client.generate_content("hi")
    assert caught.value.quota_id == PER_DAY
    assert client.rate_limiter.stats().models["gemini-2.5-flash"].rate_limited_per_day == 1


def test_a_per_day_429_on_a_stream_is_quota_exhausted(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    vertex_emulator.inject(Fault.status(429, quota_id=PER_DAY))
    with pytest.raises(QuotaExhaustedError):
        for _ in client.generate_content_stream("hi"):
            pass
    vertex_emulator.inject(Fault.status(429, quota_id=PER_DAY))
    with pytest.raises(QuotaExhaustedError):
        for _ in client.generate_with_retry("hi", streaming=True):
            pass
    assert len(vertex_emulator.requests()) == 2  # neither was retried


def test_a_per_day_429_on_count_tokens_is_quota_exhausted(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    vertex_emulator.inject(Fault.status(429, quota_id=PER_DAY), path=":countTokens")
    with pytest.raises(QuotaExhaustedError):
        client.count_tokens("hi")


def test_a_per_day_429_on_a_cache_is_quota_exhausted(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    caches = GreyCloudCache(client=client)
    vertex_emulator.inject(Fault.status(429, quota_id=PER_DAY), path="cachedContents")
    with pytest.raises(QuotaExhaustedError):
        caches.list_caches()


def test_a_per_day_429_on_a_batch_job_is_quota_exhausted(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    batch = GreyCloudBatch(client=client)
    vertex_emulator.inject(Fault.status(429, quota_id=PER_DAY), path="batchPredictionJobs")
    with pytest.raises(QuotaExhaustedError):
        batch.get_batch_job("123")
