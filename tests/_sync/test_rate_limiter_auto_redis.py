# DO NOT EDIT: generated from tests/_async/test_rate_limiter_auto_redis.py by tools/generate.py.
# Change tests/_async/test_rate_limiter_auto_redis.py and run `make generate`.
# output-sha256: 1d4ee4e5760d19ad
"""rpm="auto" with its state in Redis: one discovered rate shared by every limiter (process).

Written once here; ``make generate`` produces the sync twin in tests/_sync/. Needs a real
``redis-server`` (the ``redis_url`` fixture starts one). Two limiters on one Redis stand for two
processes: the law's one state per model lives in Redis, stepped by compare-and-set.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable

import redis

from greycloud import SyncVertexRateLimiter
from greycloud._limiter import lua
from greycloud._primitives import sync_map_bounded, sync_sleep
from tests.redis_fixture import RedisTarget

MODEL = "gemini-2.5-flash"


def _limiter(target: RedisTarget, **options: object) -> SyncVertexRateLimiter:
    options.setdefault("rpm", "auto")
    options.setdefault("tpm", 10**6)
    options.setdefault("max_concurrency", 16)
    return SyncVertexRateLimiter(
        storage=target.url,
        redis_prefix=target.prefix,
        **options,  # type: ignore[arg-type]
    )


def _shared_state(target: RedisTarget) -> dict[str, object]:
    with redis.Redis.from_url(target.url) as client:
        raw = client.hget(lua.keys(target.prefix, MODEL).state, "auto")
    state: dict[str, object] = json.loads(raw) if isinstance(raw, bytes) else {}
    return state


def _call(limiter: SyncVertexRateLimiter) -> float:
    with limiter.limit(MODEL, 1) as permit:
        return permit.start


def _booked_start(limiter: SyncVertexRateLimiter) -> float:
    """The start Redis booked, on the server's clock (``permit.start`` is this process's
    estimate of it, off by up to half a round trip)."""
    with limiter.limit(MODEL, 1) as permit:
        return permit._booking.start


def _until(condition: Callable[[], bool], seconds: float = 3.0) -> None:
    """Wait for the background loops to get there (a few ticks); the asserts follow."""
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        sync_sleep(0.05)


def _cut_seen(limiter: SyncVertexRateLimiter) -> bool:
    return "cut" in [change.reason for change in limiter.stats().models[MODEL].history]


def test_a_429_seen_by_one_cuts_the_rate_of_both_once(redis_url: RedisTarget) -> None:
    first, second = _limiter(redis_url, auto_floor=120), _limiter(redis_url, auto_floor=120)
    _call(first)
    started = _call(second)
    _until(lambda: "rate" in _shared_state(redis_url))
    # Both report a 429 of the same overload (sent before any cut): one cut, not two.
    first.report_rate_limited(MODEL, None, started_at=started)
    _until(lambda: _shared_state(redis_url)["cuts"] == 1)
    second.report_rate_limited(MODEL, None, started_at=started)
    sync_sleep(0.6)  # a few ticks of both background loops
    assert _shared_state(redis_url)["cuts"] == 1
    _call(second)  # the second limiter books at the shared rate after the cut
    _until(lambda: _cut_seen(first) and _cut_seen(second))
    assert _cut_seen(first) and _cut_seen(second)
    assert first.stats().models[MODEL].rate_limited == 1
    assert second.stats().models[MODEL].rate_limited == 1
    first.close()
    second.close()


class RewindableClock:
    """The limiter's clock, which can be set back: the limiter's background loop, due to step
    the shared law a tick after its last step, then steps it only when a 429 pokes it (a
    process that has not heard of a cut made elsewhere yet)."""

    def __init__(self) -> None:
        self.behind = 0.0

    def __call__(self) -> float:
        return time.monotonic() - self.behind

    def rewind(self, seconds: float) -> None:
        self.behind += seconds


def test_a_429_of_a_start_spaced_before_a_cut_heard_late_does_not_cut_again(
    redis_url: RedisTarget,
) -> None:
    first = _limiter(redis_url, auto_floor=600)
    clock = RewindableClock()
    second = _limiter(redis_url, auto_floor=600, clock=clock)
    _call(first)
    _call(second)
    _until(lambda: "rate" in _shared_state(redis_url))
    sync_sleep(0.3)  # the second has stepped the shared law: it knows the state so far
    clock.rewind(3600.0)  # and now hears of nothing more until it reports a 429 itself
    with first.limit(MODEL, 1) as permit:
        first.report_rate_limited(MODEL, None, permit=permit)
    _until(lambda: _shared_state(redis_url)["cuts"] == 1)
    # Started after the cut, but at the spacing of the rate before it: the same overload.
    with second.limit(MODEL, 1) as late:
        second.report_rate_limited(MODEL, None, permit=late)
    _until(lambda: second.stats().models[MODEL].rate_limited == 1)
    sync_sleep(0.6)  # its loop, poked by the 429, has stepped it into the shared law
    assert _cut_seen(second)  # it did step: the first's cut is in its history now
    assert _shared_state(redis_url)["cuts"] == 1
    first.close()
    second.close()


def test_starts_of_both_keep_to_one_shared_rate_within_auto_max(
    redis_url: RedisTarget,
) -> None:
    # auto_floor = auto_max: the discovered rate is pinned at 600/min for both together.
    first = _limiter(redis_url, auto_floor=600, auto_max=600)
    second = _limiter(redis_url, auto_floor=600, auto_max=600)

    def call(index: int) -> float:
        return _booked_start(first if index % 2 else second)

    starts = sorted(sync_map_bounded(call, range(10), 10))
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert min(gaps) >= 0.1 - 1e-6  # one schedule for both: 600/min is one start per 0.1 s
    for limiter in (first, second):
        stats = limiter.stats().models[MODEL]
        assert stats.rpm <= 600
        assert all(change.rate * 60 <= 600 for change in stats.history)
    _until(lambda: "rate" in _shared_state(redis_url))
    assert float(_shared_state(redis_url)["rate"]) * 60 <= 600  # type: ignore[arg-type]
    first.close()
    second.close()


def test_a_retry_delay_holds_the_starts_of_both(redis_url: RedisTarget) -> None:
    first = _limiter(redis_url, auto_floor=6_000, auto_max=6_000)  # 100 starts a second
    second = _limiter(redis_url, auto_floor=6_000, auto_max=6_000)
    before = _booked_start(second)
    started = _call(first)
    first.report_rate_limited(MODEL, 0.5, started_at=started)
    _until(lambda: _hold(redis_url) > before)
    after = _booked_start(second)
    assert after >= before + 0.45  # the other limiter waited out the server's retry delay
    first.close()
    second.close()


def _hold(target: RedisTarget) -> float:
    with redis.Redis.from_url(target.url) as client:
        raw = client.hget(lua.keys(target.prefix, MODEL).state, "hold")
    return float(raw) if isinstance(raw, bytes) else 0.0
