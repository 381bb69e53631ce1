"""Limiter behaviour that exists in one world only, so it is not generated: task cancellation
and dropped async generators (async), many threads sharing one limiter (sync)."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import warnings
from collections.abc import AsyncGenerator, Iterator

import pytest
from google.genai import types

from greycloud import RequestTooLargeError, SyncVertexRateLimiter, VertexRateLimiter


async def test_cancelling_a_waiting_request_gives_its_start_back() -> None:
    limiter = VertexRateLimiter(rpm=60, tpm=10**6, max_concurrency=5)
    async with limiter.limit("m", 1):
        pass
    waiting = asyncio.create_task(_enter(limiter))  # booked about a second from now
    await asyncio.sleep(0.05)
    assert limiter.stats().waiting == 1
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    stats = limiter.stats()
    assert (stats.waiting, stats.in_flight) == (0, 0)
    # The refunded start is the next one handed out, not one after it.
    assert limiter._core.book("m", 1).start - time.monotonic() < 1.05


async def test_cancelling_a_request_queued_for_a_slot_leaves_the_queue() -> None:
    limiter = VertexRateLimiter(rpm=60_000, tpm=10**6, max_concurrency=1)
    release = asyncio.Event()

    async def hold() -> None:
        async with limiter.limit("m", 1):
            await release.wait()

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0.01)
    queued = [asyncio.create_task(_enter(limiter)) for _ in range(2)]
    await asyncio.sleep(0.01)
    queued[0].cancel()
    release.set()
    await holder
    await queued[1]
    assert queued[0].cancelled()
    assert (limiter.stats().waiting, limiter.stats().in_flight) == (0, 0)


async def test_cancelling_a_started_request_releases_its_slot() -> None:
    limiter = VertexRateLimiter(rpm=60_000, tpm=10**6, max_concurrency=1)
    started = asyncio.Event()

    async def run() -> None:
        async with limiter.limit("m", 1):
            started.set()
            await asyncio.sleep(10)

    task = asyncio.create_task(run())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(_enter(limiter), 1)


async def _stream(limiter: VertexRateLimiter) -> AsyncGenerator[int, None]:
    """What the client does: hold the slot inside an async generator for a whole stream."""
    async with limiter.limit("m", 1):
        for chunk in range(3):
            yield chunk


@pytest.mark.parametrize("how", ["read", "closed", "failed", "dropped"])
async def test_a_stream_releases_its_slot_however_it_ends(how: str) -> None:
    limiter = VertexRateLimiter(rpm=60_000, tpm=10**6, max_concurrency=1)
    stream = _stream(limiter)
    assert await stream.__anext__() == 0
    assert limiter.stats().in_flight == 1
    if how == "read":
        assert [chunk async for chunk in stream] == [1, 2]
    elif how == "closed":
        await stream.aclose()
    elif how == "failed":
        with pytest.raises(ValueError):
            await stream.athrow(ValueError("cut"))
    else:
        del stream
        gc.collect()
        for _ in range(5):  # the loop's finaliser closes the generator in a task of its own
            await asyncio.sleep(0)
    assert limiter.stats().in_flight == 0
    await asyncio.wait_for(_enter(limiter), 1)


async def test_call_with_limits_runs_the_coroutine_and_reconciles() -> None:
    limiter = VertexRateLimiter(rpm=10**6, tpm=60_000, calibrate=False)

    async def respond() -> types.GenerateContentResponse:
        usage = types.GenerateContentResponseUsageMetadata(prompt_token_count=6_000)
        return types.GenerateContentResponse(usage_metadata=usage)

    result = await limiter.call_with_limits(10, respond())
    assert result.usage_metadata is not None
    assert limiter._core.book("default", 0).start - time.monotonic() > 5  # 6,000 tokens booked


async def test_call_with_limits_closes_a_coroutine_it_never_ran() -> None:
    limiter = VertexRateLimiter(rpm=60, tpm=100)

    async def never() -> None:
        raise AssertionError("ran")

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(RequestTooLargeError):
            await limiter.call_with_limits(101, never())
        gc.collect()


def test_sync_call_with_limits_takes_a_function() -> None:
    limiter = SyncVertexRateLimiter(rpm=6_000, tpm=10**6)
    assert limiter.call_with_limits(5, lambda: 42) == 42


def test_threads_sharing_a_limiter_start_in_booked_order_within_limits() -> None:
    limiter = SyncVertexRateLimiter(rpm=6_000, tpm=10**6, max_concurrency=4)
    lock = threading.Lock()
    starts: list[float] = []
    inside = most = 0

    def call() -> None:
        nonlocal inside, most
        with limiter.limit("m", 1) as permit:
            with lock:
                starts.append(permit.start)
                inside += 1
                most = max(most, inside)
            time.sleep(0.005)
            with lock:
                inside -= 1

    threads = [threading.Thread(target=call) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert starts == sorted(starts)
    assert len(starts) == 40 and most <= 4
    assert (limiter.stats().in_flight, limiter.stats().waiting) == (0, 0)


def _sync_stream(limiter: SyncVertexRateLimiter) -> Iterator[int]:
    with limiter.limit("m", 1):
        yield from range(3)


def test_a_dropped_sync_stream_releases_its_slot() -> None:
    limiter = SyncVertexRateLimiter(rpm=60_000, tpm=10**6, max_concurrency=1)
    stream = _sync_stream(limiter)
    assert next(stream) == 0
    del stream
    gc.collect()
    assert limiter.stats().in_flight == 0
    with limiter.limit("m", 1):
        pass


async def _enter(limiter: VertexRateLimiter) -> None:
    async with limiter.limit("m", 1):
        pass
