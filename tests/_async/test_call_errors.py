"""Errors that tell the truth: call arguments checked as the config checks them, and a per-day
429 typed ``QuotaExhaustedError`` on every path, not only in ``generate_with_retry``.

Written once here; ``make generate`` produces the sync twin in tests/_sync/.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from greycloud import (
    ConfigError,
    GreyCloudAsyncBatch,
    GreyCloudAsyncCache,
    GreyCloudAsyncClient,
    QuotaExhaustedError,
)
from greycloud.testing import Fault, VertexEmulator

PER_DAY = "GenerateRequestsPerDayPerProjectPerModel"


@pytest.fixture
async def client(vertex_emulator: VertexEmulator) -> AsyncIterator[GreyCloudAsyncClient]:
    config = vertex_emulator.config(rpm=100_000, tpm=100_000_000)
    async with GreyCloudAsyncClient(config, credentials=vertex_emulator.credentials) as client:
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
async def test_a_bad_call_argument_is_a_config_error_naming_it(
    client: GreyCloudAsyncClient, vertex_emulator: VertexEmulator, argument: str, value: Any
) -> None:
    calls: list[Callable[[], Awaitable[Any]]] = [
        lambda: client.generate_content("hi", **{argument: value}),
        lambda: client.generate_with_retry("hi", **{argument: value}),
    ]
    for call in calls:
        with pytest.raises(ConfigError) as caught:
            await call()
        assert caught.value.field == argument
    with pytest.raises(ConfigError):
        async for _ in client.generate_content_stream("hi", **{argument: value}):
            pass
    assert vertex_emulator.requests() == []  # refused before anything was sent


async def test_a_per_day_429_on_generate_content_is_quota_exhausted(
    client: GreyCloudAsyncClient, vertex_emulator: VertexEmulator
) -> None:
    vertex_emulator.inject(Fault.status(429, quota_id=PER_DAY))
    with pytest.raises(QuotaExhaustedError) as caught:
        await client.generate_content("hi")
    assert caught.value.quota_id == PER_DAY
    assert client.rate_limiter.stats().models["gemini-2.5-flash"].rate_limited_per_day == 1


async def test_a_per_day_429_on_a_stream_is_quota_exhausted(
    client: GreyCloudAsyncClient, vertex_emulator: VertexEmulator
) -> None:
    vertex_emulator.inject(Fault.status(429, quota_id=PER_DAY))
    with pytest.raises(QuotaExhaustedError):
        async for _ in client.generate_content_stream("hi"):
            pass
    vertex_emulator.inject(Fault.status(429, quota_id=PER_DAY))
    with pytest.raises(QuotaExhaustedError):
        async for _ in await client.generate_with_retry("hi", streaming=True):
            pass
    assert len(vertex_emulator.requests()) == 2  # neither was retried


async def test_a_per_day_429_on_count_tokens_is_quota_exhausted(
    client: GreyCloudAsyncClient, vertex_emulator: VertexEmulator
) -> None:
    vertex_emulator.inject(Fault.status(429, quota_id=PER_DAY), path=":countTokens")
    with pytest.raises(QuotaExhaustedError):
        await client.count_tokens("hi")


async def test_a_per_day_429_on_a_cache_is_quota_exhausted(
    client: GreyCloudAsyncClient, vertex_emulator: VertexEmulator
) -> None:
    caches = GreyCloudAsyncCache(client=client)
    vertex_emulator.inject(Fault.status(429, quota_id=PER_DAY), path="cachedContents")
    with pytest.raises(QuotaExhaustedError):
        await caches.list_caches()


async def test_a_per_day_429_on_a_batch_job_is_quota_exhausted(
    client: GreyCloudAsyncClient, vertex_emulator: VertexEmulator
) -> None:
    batch = GreyCloudAsyncBatch(client=client)
    vertex_emulator.inject(Fault.status(429, quota_id=PER_DAY), path="batchPredictionJobs")
    with pytest.raises(QuotaExhaustedError):
        await batch.get_batch_job("123")
