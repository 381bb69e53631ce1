# DO NOT EDIT: generated from tests/_async/test_rate_limiter.py by tools/generate.py.
# Change tests/_async/test_rate_limiter.py and run `make generate`.
# output-sha256: 03d015ac4596f6f7
"""The limiter as callers use it: waiting for starts, slots, 429 feedback, statistics.

Written once here; ``make generate`` produces the sync twin in tests/_sync/. Real clock, small
quotas with short gaps, so each test waits well under a second.
"""

from __future__ import annotations

import time
from typing import Literal

import pytest
from google.genai import types

from greycloud import GreyCloudConfig, RequestTooLargeError, SyncVertexRateLimiter
from greycloud._primitives import sync_map_bounded, sync_sleep


def test_starts_follow_the_booked_schedule() -> None:
    limiter = SyncVertexRateLimiter(rpm=600, tpm=10**6, max_concurrency=5)
    began = time.monotonic()
    entered = []
    for _ in range(4):
        with limiter.limit("m", 10):
            entered.append(time.monotonic() - began)
    gap = 60.2 / 600
    assert entered == [pytest.approx(i * gap, abs=0.03) for i in range(4)]


def test_concurrent_callers_start_in_booked_order() -> None:
    limiter = SyncVertexRateLimiter(rpm=1_200, tpm=10**6, max_concurrency=50)
    order: list[float] = []

    def call(index: int) -> None:
        with limiter.limit("m", 1 + index) as permit:
            order.append(permit.start)

    sync_map_bounded(call, range(12), 12)
    assert order == sorted(order)
    assert len(order) == 12


def test_a_request_above_the_token_quota_fails_at_once() -> None:
    limiter = SyncVertexRateLimiter(rpm=60, tpm=1_000)
    began = time.monotonic()
    with pytest.raises(RequestTooLargeError) as caught, limiter.limit("gemini", 1_001):
        pass
    assert time.monotonic() - began < 0.1
    assert caught.value.limit == 1_000
    assert limiter.stats().waiting == 0


def test_a_failing_block_releases_its_slot() -> None:
    limiter = SyncVertexRateLimiter(rpm=6_000, tpm=10**6, max_concurrency=1)
    with pytest.raises(KeyError), limiter.limit("m", 1):
        raise KeyError("boom")
    with limiter.limit("m", 1):
        stats = limiter.stats()
        assert (stats.in_flight, stats.waiting) == (1, 0)
    assert (limiter.stats().in_flight, limiter.stats().waiting) == (0, 0)


def test_no_more_blocks_run_at_once_than_max_concurrency() -> None:
    limiter = SyncVertexRateLimiter(rpm=60_000, tpm=10**6, max_concurrency=2)
    inside = 0
    most = 0

    def call(index: int) -> int:
        nonlocal inside, most
        with limiter.limit("m", 1):
            inside += 1
            most = max(most, inside)
            sync_sleep(0.03)
            inside -= 1
        return index

    assert sync_map_bounded(call, range(6), 6) == list(range(6))
    assert most == 2


def test_a_429_holds_the_next_start_and_slows_the_rate() -> None:
    limiter = SyncVertexRateLimiter(rpm=6_000, tpm=10**6)
    limiter.report_rate_limited("m", 0.3)
    began = time.monotonic()
    with limiter.limit("m", 1):
        assert time.monotonic() - began >= 0.28
    model = limiter.stats().models["m"]
    assert (model.rate_factor, model.rate_limited) == (0.7, 1)
    assert model.rpm == pytest.approx(0.7 * 6_000 * 60 / 60.2, rel=1e-3)


def test_a_per_day_429_does_not_hold() -> None:
    limiter = SyncVertexRateLimiter(rpm=6_000, tpm=10**6)
    limiter.report_rate_limited("m", 30.0, per_day=True)
    began = time.monotonic()
    with limiter.limit("m", 1):
        assert time.monotonic() - began < 0.1
    assert limiter.stats().models["m"].rate_limited_per_day == 1


def test_reconcile_counts_the_configured_tokens() -> None:
    usage = types.GenerateContentResponseUsageMetadata(
        prompt_token_count=100, candidates_token_count=900, total_token_count=1_000
    )
    rate = (60_000 + 1 - 900) / 60.2  # tokens per second; 900 tokens of slack (1.5%)
    counts: tuple[tuple[Literal["input", "total"], int], ...] = (("input", 100), ("total", 1_000))
    for counting, expected in counts:
        limiter = SyncVertexRateLimiter(
            rpm=10**6, tpm=60_000, token_counting=counting, calibrate=False
        )
        with limiter.limit("m", 10) as permit:
            permit.reconcile(usage)
            permit.reconcile(None)  # a stream that ended without usage changes nothing
        # The slot ran 5 tokens past the start; the rest of the real slot is added after it
        # (tokens above the slack count twice).
        real_slot = expected + max(0, expected - 900)
        next_start = limiter._core.book("m", 0).start
        assert next_start - permit.start == pytest.approx((5 + real_slot - 10) / rate, rel=1e-3)


def test_stats_add_up_the_waiting() -> None:
    limiter = SyncVertexRateLimiter(rpm=600, tpm=10**6)
    for _ in range(3):
        with limiter.limit("m", 1) as permit:
            pass
    stats = limiter.stats()
    assert stats.wait_seconds == pytest.approx(2 * 60.2 / 600, abs=0.05)
    assert permit.waited > 0.05
    assert (stats.storage, stats.rate_limited, stats.waiting, stats.in_flight) == (
        "memory",
        0,
        0,
        0,
    )


def test_a_start_due_at_once_is_counted_like_any_other() -> None:
    """The one-step way in (nothing to wait for) keeps the same slots and counters."""
    limiter = SyncVertexRateLimiter(rpm=600, tpm=10**6, max_concurrency=2)
    with limiter.limit("m", 1) as first:
        assert first.waited == 0.0
        assert limiter.stats().in_flight == 1
        with limiter.limit("m", 1) as second:  # waits for its start, then in flight too
            assert second.waited > 0.05
            assert (limiter.stats().in_flight, limiter.stats().waiting) == (2, 0)
    stats = limiter.stats()
    assert (stats.in_flight, stats.waiting) == (0, 0)
    assert limiter._core._bucket("m").slots == 0


def test_from_config() -> None:
    config = GreyCloudConfig(
        project_id="p",
        rpm=7,
        tpm=700,
        max_concurrency=3,
        model_limits={"pro": {"rpm": 2, "rpd": 50}},
        token_counting="total",
    )
    limiter = SyncVertexRateLimiter.from_config(config)
    assert (limiter.rpm, limiter.tpm, limiter.max_concurrency) == (7, 700, 3)
    assert limiter.token_counting == "total"
    assert limiter._core.quota_for("pro").rpm == 2
    assert limiter._core.quota_for("pro").rpd == 50
    assert limiter._core.quota_for("flash").rpm == 7
    limiter.close()


def test_bad_limits_are_config_errors() -> None:
    with pytest.raises(ValueError, match="rpm"):
        SyncVertexRateLimiter(rpm=0)
    with pytest.raises(ValueError, match="token_counting"):
        SyncVertexRateLimiter(token_counting="output")  # type: ignore[arg-type]
