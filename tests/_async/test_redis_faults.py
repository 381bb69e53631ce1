"""The shared quota under Redis faults: what survives a frozen Redis, long streams, many waiters.

Written once here; ``make generate`` produces the sync twin in tests/_sync/. Every test runs
the real client against the emulator, sharing a ``redis-server`` of its own (``own_redis``)
that it freezes (SIGSTOP) and thaws (SIGCONT). Calls cancelled by a caller's timeout exist in
one world only: tests/test_redis_faults.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from greycloud import GreyCloudAsyncClient, LimiterStorageError, VertexRateLimiter
from greycloud._primitives import async_map_bounded, async_run_blocking, async_sleep
from greycloud.testing import VertexEmulator
from tests.redis_fixture import RedisServer

MODEL = "gemini-2.5-flash"
PREFIX = "greycloud:limiter"  # the default: each test has a Redis of its own


async def _eventually(condition: Callable[[], bool], within: float) -> bool:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        await async_sleep(0.05)
    return True


def _limiter(redis: RedisServer, **options: object) -> VertexRateLimiter:
    options.setdefault("rpm", 60_000)
    options.setdefault("tpm", 10**8)
    return VertexRateLimiter(storage=redis.url, **options)  # type: ignore[arg-type]


def _client(emulator: VertexEmulator, limiter: VertexRateLimiter) -> GreyCloudAsyncClient:
    return GreyCloudAsyncClient(
        emulator.config(), credentials=emulator.credentials, rate_limiter=limiter
    )


# -- defect 2: a booking Redis runs after its caller gave up ------------------------------------


async def test_a_booking_redis_runs_after_its_caller_gave_up_leaves_no_lease(
    own_redis: RedisServer, vertex_emulator: VertexEmulator
) -> None:
    config = vertex_emulator.config(
        rpm=60_000, tpm=10**8, max_concurrency=1, rate_limit_storage=own_redis.url
    )
    async with GreyCloudAsyncClient(config, credentials=vertex_emulator.credentials) as client:
        assert (await client.generate_content("warm up")).text
        own_redis.pause()
        try:
            with pytest.raises(LimiterStorageError):
                await client.generate_content("while frozen")
        finally:
            own_redis.resume()  # the booking still in the socket runs now
        # Whatever it took is given back by id, with no call of this client's.
        assert await _eventually(lambda: own_redis.leases(PREFIX, MODEL) == 0, 3)
    # The one shared slot is free for a process that never saw the fault.
    async with GreyCloudAsyncClient(config, credentials=vertex_emulator.credentials) as fresh:
        began = time.monotonic()
        assert (await fresh.generate_content("after")).text
        assert time.monotonic() - began < 1


# -- defect 4: arrival order across processes, and the fallback's share -------------------------


async def test_waiters_for_a_shared_slot_start_in_arrival_order_across_processes(
    own_redis: RedisServer, vertex_emulator: VertexEmulator
) -> None:
    # One limiter per caller: each stands for a process of its own, so every waiter is in line
    # in Redis (a ticket), and the order they start in is the store's alone.
    limiters = [_limiter(own_redis, max_concurrency=1) for _ in range(10)]
    clients = [_client(vertex_emulator, limiter) for limiter in limiters]

    async def line_up(count: int) -> None:
        # Each caller arrives once the slot is held and the ones before it hold their tickets,
        # however slow the machine is.
        while True:
            in_flight = sum(limiter.stats().in_flight for limiter in limiters)
            queued = await async_run_blocking(own_redis.queued, PREFIX, MODEL)
            if in_flight == 1 and queued == count:
                return
            await async_sleep(0.01)

    async def call(index: int) -> None:
        if index == 0:  # holds the only slot while the others line up
            stream = clients[0].generate_content_stream("hold the slot")
            assert await stream.__anext__()
            await line_up(9)
            await stream.aclose()
            return
        await line_up(index - 1)
        assert (await clients[index].generate_content(f"caller {index}")).text

    await async_map_bounded(call, range(10), 10)
    prompts = [
        record.body["contents"][0]["parts"][0]["text"]
        for record in vertex_emulator.requests()
        if ":generateContent" in record.path
    ]
    assert prompts == [f"caller {index}" for index in range(1, 10)]
    for client, limiter in zip(clients, limiters, strict=True):
        await client.aclose()
        await limiter.aclose()
    assert own_redis.leases(PREFIX, MODEL) == 0


async def test_a_fallback_takes_its_share_of_the_processes_registered(
    own_redis: RedisServer, vertex_emulator: VertexEmulator
) -> None:
    rpm, frozen_for = 600, 3.5
    limiters = [
        _limiter(own_redis, rpm=rpm, storage_unavailable="local", lease_ttl=1.5) for _ in range(3)
    ]
    clients = [_client(vertex_emulator, limiter) for limiter in limiters]
    for client in clients:  # each process joins in turn
        assert (await client.generate_content("hello")).text
    await async_sleep(0.7)  # one registration heartbeat (every lease_ttl / 3)
    done = [0, 0, 0]
    deadline = time.monotonic() + frozen_for

    async def work(index: int) -> None:
        while time.monotonic() < deadline:
            await clients[index % 3].generate_content("while frozen")
            if time.monotonic() <= deadline:
                done[index % 3] += 1

    own_redis.pause()
    try:
        await async_map_bounded(work, range(12), 12)
    finally:
        own_redis.resume()
    # Together they stay inside the quota (each limiting itself to a third of it), instead of
    # each taking 1/(the sharers it happened to see), which summed to about 1.8x.
    assert sum(done) <= rpm / 60 * frozen_for
    assert min(done) >= 3
    for client, limiter in zip(clients, limiters, strict=True):
        await client.aclose()
        await limiter.aclose()


# -- defect 5: a stream longer than the lease ---------------------------------------------------


async def test_a_stream_longer_than_the_lease_keeps_its_shared_slot(
    own_redis: RedisServer, vertex_emulator: VertexEmulator
) -> None:
    limiters = [_limiter(own_redis, max_concurrency=1, lease_ttl=0.6) for _ in range(2)]
    clients = [_client(vertex_emulator, limiter) for limiter in limiters]
    events: list[str] = []

    async def use(index: int) -> None:
        if index == 0:
            stream = clients[0].generate_content_stream("a long story")
            assert await stream.__anext__()
            await async_sleep(2.0)  # more than three lease lifetimes, the stream still open
            events.append("stream closed")
            await stream.aclose()
        else:
            await async_sleep(0.3)
            assert (await clients[1].generate_content("next")).text
            events.append("next call done")

    await async_map_bounded(use, [0, 1], 2)
    assert events == ["stream closed", "next call done"]
    for client, limiter in zip(clients, limiters, strict=True):
        await client.aclose()
        await limiter.aclose()
    assert own_redis.leases(PREFIX, MODEL) == 0
