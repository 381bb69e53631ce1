"""The Redis store across real processes: atomic bookings and leases that outlive their holder.

Sync only (processes, not tasks). Needs a real ``redis-server`` (the ``redis_url`` fixture).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import threading
import time
import uuid

import redis

from greycloud._limiter import lua
from greycloud._limiter.core import LimiterCore
from greycloud._limiter.quota import Quota
from greycloud._sync.limiter_redis import RedisStore
from tests.redis_fixture import RedisTarget
from tests.test_limiter_core import worst_window

RPM, TPM = 120, 6_000
_fork = multiprocessing.get_context("fork")


def _store(target: RedisTarget, max_concurrency: int = 1_000, lease_ttl: float = 300) -> RedisStore:
    core = LimiterCore(Quota(RPM, TPM, max_concurrency), calibrate=False)
    return RedisStore(target.url, core, prefix=target.prefix, lease_ttl=lease_ttl)


def _book_many(target: RedisTarget, seed: int, count: int) -> list[tuple[float, int]]:
    """One worker process: book ``count`` starts as fast as it can (without waiting for them)."""
    rng = random.Random(seed)
    store = _store(target)
    booked = []
    for _ in range(count):
        tokens = rng.randint(1, 120) if rng.random() < 0.9 else rng.randint(1, TPM)
        booking = store.book("m", tokens)
        store.release(booking, True)
        booked.append((booking.start, tokens))
    store.close()
    return booked


def test_processes_booking_at_once_never_overfill_a_window(redis_url: RedisTarget) -> None:
    with _fork.Pool(4) as pool:
        results = pool.starmap(_book_many, [(redis_url, seed, 120) for seed in range(4)])
    booked = [event for result in results for event in result]
    assert len(booked) == 480
    requests, tokens = worst_window(booked)
    assert requests <= RPM
    assert tokens <= TPM
    # Every process's own starts come in the order it booked them, all on the server's clock.
    for result in results:
        starts = [start for start, _ in result]
        assert starts == sorted(starts)


def _hold_and_die(target: RedisTarget) -> None:
    store = _store(target, max_concurrency=1, lease_ttl=0.5)
    store.book("m", 1)  # takes the only lease and never gives it back
    os.kill(os.getpid(), signal.SIGKILL)


def test_the_lease_of_a_killed_process_expires(redis_url: RedisTarget) -> None:
    child = _fork.Process(target=_hold_and_die, args=(redis_url,))
    child.start()
    child.join(10)
    assert child.exitcode == -signal.SIGKILL
    store = _store(redis_url, max_concurrency=1, lease_ttl=0.5)
    began = time.monotonic()
    booking = store.book("m", 1)
    waited = time.monotonic() - began
    assert 0.1 < waited < 2.0
    store.release(booking, True)
    store.close()


def test_a_live_lease_is_renewed_and_not_taken(redis_url: RedisTarget) -> None:
    holder = _store(redis_url, max_concurrency=1, lease_ttl=0.4)
    other = _store(redis_url, max_concurrency=1, lease_ttl=0.4)
    held = holder.book("m", 1)
    got: list[float] = []
    waiter = threading.Thread(target=lambda: got.append(other.book("m", 1).start))
    waiter.start()
    waiter.join(1.2)  # three lease lifetimes: the holder's heartbeat keeps its lease
    assert waiter.is_alive() and not got
    holder.release(held, True)
    waiter.join(2)
    assert got
    holder.close()
    other.close()


def test_keys_of_one_quota_share_a_hash_slot() -> None:
    tags = {key[: key.index("}") + 1] for key in lua.keys("gc", "gemini-2.5-flash")}
    assert tags == {"{gc:gemini-2.5-flash}"}


def test_a_new_discovered_rate_moves_every_start_booked_ahead(redis_url: RedisTarget) -> None:
    """rpm="auto": 32 starts booked at the safe start rate (1/s) reach half a minute ahead; when
    the shared rate becomes 4/s, the next start comes after the schedule as rescaled (~8 s), not
    after the tokens slot of the last start booked at the old rate (where all new starts would
    stall until the clock got there)."""
    client = redis.Redis.from_url(redis_url.url)
    keys = list(lua.keys(redis_url.prefix, "m"))
    book = client.register_script(lua.BOOK)
    discover = client.register_script(lua.DISCOVERY)

    def start_at(rate: float) -> tuple[float, float]:
        """(server now, booked start) of one booking at ``rate`` requests/s."""
        dims = ["requests", rate * 60 + 1e-6, 60, 1, 0, 1, "tokens", 10**9, 60, 1000, 0, 10]
        reply = book(keys=keys, args=[uuid.uuid4().hex, 1000, 300, 0, 0, 0, 2, *dims])
        assert reply[0] == b"ok"
        return float(reply[1]), float(reply[2])

    first = [start_at(1.0) for _ in range(32)]
    assert first[-1][1] - first[0][0] >= 30
    version = int(discover(keys=keys[:1], args=[0, 0, "", "", 1, 0])[1])
    written = discover(keys=keys[:1], args=[0, 0, version, json.dumps({"rate": 4.0}), 0.25, 0])
    assert int(written[3]) == 1
    now, start = start_at(4.0)
    assert start - now < 10  # 31 s ahead at 1/s is under 8 s at 4/s
