# DO NOT EDIT: generated from tests/_async/test_rate_limiter_redis.py by tools/generate.py.
# Change tests/_async/test_rate_limiter_redis.py and run `make generate`.
# output-sha256: 70a90502280f94c1
"""The limiter with its quota in Redis: shared between limiters, and explicit when Redis is down.

Written once here; ``make generate`` produces the sync twin in tests/_sync/. Needs a real
``redis-server`` (the ``redis_url`` fixture starts one); several processes booking at once are
tested in tests/test_limiter_redis.py.
"""

from __future__ import annotations

import logging
import time

import pytest

from greycloud import LimiterStorageError, SyncVertexRateLimiter
from greycloud._primitives import sync_map_bounded, sync_run_blocking, sync_sleep
from tests.redis_fixture import RedisServer, RedisTarget, free_port

GAP = 60.2 / 600  # seconds between starts at 600 requests per minute


def _limiter(target: RedisTarget, **options: object) -> SyncVertexRateLimiter:
    options.setdefault("rpm", 600)
    options.setdefault("tpm", 10**6)
    return SyncVertexRateLimiter(
        storage=target.url,
        redis_prefix=target.prefix,
        **options,  # type: ignore[arg-type]
    )


def test_two_limiters_share_one_quota(redis_url: RedisTarget) -> None:
    first, second = _limiter(redis_url), _limiter(redis_url)
    began = time.monotonic()
    entered = []
    for limiter in (first, second, first, second):
        with limiter.limit("m", 10):
            entered.append(time.monotonic() - began)
    # Shared means every start waits for the one booked before it, whichever limiter booked
    # it: unshared, the second limiter would start at once. Only lower bounds, and half a gap
    # of slack, since Redis's clock is read here only as exactly as half a round trip.
    assert all(at >= (i - 0.5) * GAP for i, at in enumerate(entered)), entered
    assert entered[-1] < 3 * GAP + 1.0, entered  # nobody waited on a quota of its own
    assert first.stats().storage == "redis"
    first.close()
    second.close()


def test_a_429_seen_by_one_holds_the_other(redis_url: RedisTarget) -> None:
    first, second = _limiter(redis_url), _limiter(redis_url)
    first.report_rate_limited("m", 0.3)
    began = time.monotonic()
    with second.limit("m", 1):
        assert time.monotonic() - began >= 0.28
    assert second.stats().models["m"].rate_factor == pytest.approx(0.7)
    assert first.stats().models["m"].rate_limited == 1
    first.close()
    second.close()


def test_concurrency_slots_are_shared(redis_url: RedisTarget) -> None:
    first = _limiter(redis_url, rpm=60_000, max_concurrency=1)
    second = _limiter(redis_url, rpm=60_000, max_concurrency=1)

    def use(index: int) -> float:
        if index == 0:
            with first.limit("m", 1):
                sync_sleep(0.2)
            return 0.0
        sync_sleep(0.05)
        began = time.monotonic()
        with second.limit("m", 1):
            return time.monotonic() - began

    _, waited = sync_map_bounded(use, [0, 1], 2)
    assert waited >= 0.1
    first.close()
    second.close()


def test_refunds_and_reconciliation_reach_redis(redis_url: RedisTarget) -> None:
    limiter = _limiter(redis_url, tpm=60_000, calibrate=False)
    store = limiter._store
    store.book("m", 1)
    second = store.book("m", 1)
    store.refund(second)
    sync_sleep(0.05)  # a refund never waits on Redis: it is sent in the background
    third = store.book("m", 1)
    assert third.start == pytest.approx(second.start, abs=1e-6)
    store.reconcile(third, 10_000)
    fourth = store.book("m", 1)
    assert fourth.start - third.start > 10  # the extra tokens pushed the next start
    for booking in (third, fourth):
        store.release(booking, True)
    limiter.close()


def test_unreachable_redis_can_fail(caplog: pytest.LogCaptureFixture) -> None:
    limiter = SyncVertexRateLimiter(storage=f"redis://127.0.0.1:{free_port()}/0")
    began = time.monotonic()
    with pytest.raises(LimiterStorageError, match="unreachable"), limiter.limit("m", 1):
        pass
    assert time.monotonic() - began < 2
    assert (limiter.stats().waiting, limiter.stats().in_flight) == (0, 0)
    limiter.close()


def test_unreachable_redis_can_fall_back_to_memory(caplog: pytest.LogCaptureFixture) -> None:
    limiter = SyncVertexRateLimiter(
        rpm=600, storage=f"redis://127.0.0.1:{free_port()}/0", storage_unavailable="local"
    )
    with caplog.at_level(logging.WARNING), limiter.limit("m", 1):
        assert limiter.stats().storage == "local fallback"
    assert "limiting locally" in caplog.text
    limiter.close()


def test_unreachable_redis_can_be_waited_for(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    limiter = SyncVertexRateLimiter(
        storage=f"redis://127.0.0.1:{port}/0", storage_unavailable="wait"
    )
    servers: list[RedisServer] = []

    def step(index: int) -> float:
        if index == 0:
            sync_sleep(0.4)
            servers.append(sync_run_blocking(lambda: RedisServer(port=port)))
            return 0.0
        began = time.monotonic()
        with limiter.limit("m", 1):
            return time.monotonic() - began

    try:
        with caplog.at_level(logging.WARNING):
            _, waited = sync_map_bounded(step, [0, 1], 2)
    finally:
        for server in servers:
            server.stop()
    assert waited >= 0.3
    assert "retrying" in caplog.text
    assert limiter.stats().storage == "redis"
    limiter.close()
