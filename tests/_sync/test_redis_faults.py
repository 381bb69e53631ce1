# DO NOT EDIT: generated from tests/_async/test_redis_faults.py by tools/generate.py.
# Change tests/_async/test_redis_faults.py and run `make generate`.
# output-sha256: 3e81cc39424a72d6
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

from greycloud import GreyCloudClient, LimiterStorageError, SyncVertexRateLimiter
from greycloud._primitives import sync_map_bounded, sync_run_blocking, sync_sleep
from greycloud.testing import VertexEmulator
from tests.redis_fixture import RedisServer

MODEL = "gemini-2.5-flash"
PREFIX = "greycloud:limiter"  # the default: each test has a Redis of its own


def _eventually(condition: Callable[[], bool], within: float) -> bool:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        sync_sleep(0.05)
    return True


def _limiter(redis: RedisServer, **options: object) -> SyncVertexRateLimiter:
    options.setdefault("rpm", 60_000)
    options.setdefault("tpm", 10**8)
    return SyncVertexRateLimiter(storage=redis.url, **options)  # type: ignore[arg-type]


def _client(emulator: VertexEmulator, limiter: SyncVertexRateLimiter) -> GreyCloudClient:
    return GreyCloudClient(
        emulator.config(), credentials=emulator.credentials, rate_limiter=limiter
    )


# -- defect 2: a booking Redis runs after its caller gave up ------------------------------------


def test_a_booking_redis_runs_after_its_caller_gave_up_leaves_no_lease(
    own_redis: RedisServer, vertex_emulator: VertexEmulator
) -> None:
    config = vertex_emulator.config(
        rpm=60_000, tpm=10**8, max_concurrency=1, rate_limit_storage=own_redis.url
    )
    with GreyCloudClient(config, credentials=vertex_emulator.credentials) as client:
        assert (client.generate_content("warm up")).text
        own_redis.pause()
        try:
            with pytest.raises(LimiterStorageError):
                client.generate_content("while frozen")
        finally:
            own_redis.resume()  # the booking still in the socket runs now
        # Whatever it took is given back by id, with no call of this client's.
        assert _eventually(lambda: own_redis.leases(PREFIX, MODEL) == 0, 3)
    # The one shared slot is free for a process that never saw the fault.
    with GreyCloudClient(config, credentials=vertex_emulator.credentials) as fresh:
        began = time.monotonic()
        assert (fresh.generate_content("after")).text
        assert time.monotonic() - began < 1


# -- defect 4: arrival order across processes, and the fallback's share -------------------------


def test_waiters_for_a_shared_slot_start_in_arrival_order_across_processes(
    own_redis: RedisServer, vertex_emulator: VertexEmulator
) -> None:
    # One limiter per caller: each stands for a process of its own, so every waiter is in line
    # in Redis (a ticket), and the order they start in is the store's alone.
    limiters = [_limiter(own_redis, max_concurrency=1) for _ in range(10)]
    clients = [_client(vertex_emulator, limiter) for limiter in limiters]

    def line_up(count: int) -> None:
        # Each caller arrives once the slot is held and the ones before it hold their tickets,
        # however slow the machine is.
        while True:
            in_flight = sum(limiter.stats().in_flight for limiter in limiters)
            queued = sync_run_blocking(own_redis.queued, PREFIX, MODEL)
            if in_flight == 1 and queued == count:
                return
            sync_sleep(0.01)

    def call(index: int) -> None:
        if index == 0:  # holds the only slot while the others line up
            stream = clients[0].generate_content_stream("hold the slot")
            assert stream.__next__()
            line_up(9)
            stream.close()
            return
        line_up(index - 1)
        assert (clients[index].generate_content(f"caller {index}")).text

    sync_map_bounded(call, range(10), 10)
    prompts = [
        record.body["contents"][0]["parts"][0]["text"]
        for record in vertex_emulator.requests()
        if ":generateContent" in record.path
    ]
    assert prompts == [f"caller {index}" for index in range(1, 10)]
    for client, limiter in zip(clients, limiters, strict=True):
        client.close()
        limiter.close()
    assert own_redis.leases(PREFIX, MODEL) == 0


def test_a_fallback_takes_its_share_of_the_processes_registered(
    own_redis: RedisServer, vertex_emulator: VertexEmulator
) -> None:
    rpm, frozen_for = 600, 3.5
    limiters = [
        _limiter(own_redis, rpm=rpm, storage_unavailable="local", lease_ttl=1.5) for _ in range(3)
    ]
    clients = [_client(vertex_emulator, limiter) for limiter in limiters]
    for client in clients:  # each process joins in turn
        assert (client.generate_content("hello")).text
    sync_sleep(0.7)  # one registration heartbeat (every lease_ttl / 3)
    done = [0, 0, 0]
    deadline = time.monotonic() + frozen_for

    def work(index: int) -> None:
        while time.monotonic() < deadline:
            clients[index % 3].generate_content("while frozen")
            if time.monotonic() <= deadline:
                done[index % 3] += 1

    own_redis.pause()
    try:
        sync_map_bounded(work, range(12), 12)
    finally:
        own_redis.resume()
    # Together they stay inside the quota (each limiting itself to a third of it), instead of
    # each taking 1/(the sharers it happened to see), which summed to about 1.8x.
    assert sum(done) <= rpm / 60 * frozen_for
    assert min(done) >= 3
    for client, limiter in zip(clients, limiters, strict=True):
        client.close()
        limiter.close()


# -- defect 5: a stream longer than the lease ---------------------------------------------------


def test_a_stream_longer_than_the_lease_keeps_its_shared_slot(
    own_redis: RedisServer, vertex_emulator: VertexEmulator
) -> None:
    limiters = [_limiter(own_redis, max_concurrency=1, lease_ttl=0.6) for _ in range(2)]
    clients = [_client(vertex_emulator, limiter) for limiter in limiters]
    events: list[str] = []

    def use(index: int) -> None:
        if index == 0:
            stream = clients[0].generate_content_stream("a long story")
            assert stream.__next__()
            sync_sleep(2.0)  # more than three lease lifetimes, the stream still open
            events.append("stream closed")
            stream.close()
        else:
            sync_sleep(0.3)
            assert (clients[1].generate_content("next")).text
            events.append("next call done")

    sync_map_bounded(use, [0, 1], 2)
    assert events == ["stream closed", "next call done"]
    for client, limiter in zip(clients, limiters, strict=True):
        client.close()
        limiter.close()
    assert own_redis.leases(PREFIX, MODEL) == 0
