"""The limiter's pure core on a fake clock: what it books, never how long anything sleeps."""

from __future__ import annotations

import bisect
import logging
import random
import time

import pytest
from google.genai import types

from greycloud import RequestTooLargeError
from greycloud._limiter.core import Booking, LimiterCore
from greycloud._limiter.gcra import Dimension, slot_length
from greycloud._limiter.quota import Quota, build_quotas, counted_tokens

WINDOW = 60.0


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_core(
    rpm: int = 60, tpm: int = 10_000, *, clock: FakeClock | None = None, **options: object
) -> tuple[LimiterCore, FakeClock]:
    clock = clock or FakeClock()
    overrides = options.pop("overrides", None)
    options.setdefault("calibrate", False)
    core = LimiterCore(
        Quota(rpm, tpm, 1_000),
        overrides,  # type: ignore[arg-type]
        clock=clock,
        **options,  # type: ignore[arg-type]
    )
    return core, clock


def worst_window(events: list[tuple[float, int]], window: float = WINDOW) -> tuple[int, int]:
    """The most requests and the most units inside any window (a, a + window] of start times."""
    events = sorted(events)
    times = [at for at, _ in events]
    prefix = [0]
    for _, units in events:
        prefix.append(prefix[-1] + units)
    most_requests = most_units = 0
    for first, at in enumerate(times):
        # Windows worth checking start just before a start; the last start inside is < at+window.
        last = bisect.bisect_left(times, at + window)
        most_requests = max(most_requests, last - first)
        most_units = max(most_units, prefix[last] - prefix[first])
    return most_requests, most_units


def enter_by_waiting(core: LimiterCore, model: str, tokens: int) -> Booking:
    """What ``limit`` does on its waiting path, every wait being over already."""
    core.enter_waiting(model)
    assert core.try_acquire(model)
    booking = core.book(model, tokens)
    core.confirm(booking)
    assert core.my_turn(booking)
    core.leave_waiting(model, 0.0, True)
    assert core.pass_turn(booking) is None
    return booking


def enter(core: LimiterCore, model: str, tokens: int) -> Booking:
    """What ``limit`` does: start in one step when it can, else the waiting path."""
    return core.try_start(model, tokens) or enter_by_waiting(core, model, tokens)


def leave(core: LimiterCore, booking: Booking, success: bool = True) -> None:
    """What leaving a ``limit`` block does."""
    assert core.end(booking.model) is None
    core.finish(booking, success)


# -- admission ---------------------------------------------------------------------------------


def test_starts_are_first_come_first_served() -> None:
    core, _ = make_core(rpm=30, tpm=1_000)
    sizes = [900, 1, 500, 1, 1, 700, 3]
    starts = [core.book("m", size).start for size in sizes]
    assert starts == sorted(starts)
    assert len(set(starts)) == len(starts)  # strictly increasing: a big one never jumps ahead


@pytest.mark.parametrize("at_once", [False, True], ids=["book", "try_start"])
@pytest.mark.parametrize("seed", range(12))
def test_no_sixty_second_window_is_ever_overfilled(seed: int, at_once: bool) -> None:
    rng = random.Random(seed)
    rpm = rng.choice([1, 2, 7, 60, 250])
    tpm = rng.choice([50, 1_000, 30_000])
    core, clock = make_core(rpm, tpm, token_slack=rng.choice([0.0, 0.015, 0.1]), margin=0.0)
    events = []
    for _ in range(600):
        clock.advance(rng.expovariate(rpm / 40))
        # Mostly small requests, some up to the whole quota (those take longer slots).
        tokens = rng.randint(0, tpm // 40) if rng.random() < 0.85 else rng.randint(0, tpm)
        booking = enter(core, "m", tokens) if at_once else core.book("m", tokens)
        if at_once:
            leave(core, booking)
        events.append((booking.start, tokens))
    requests, tokens = worst_window(events)
    assert requests <= rpm
    assert tokens <= tpm


@pytest.mark.parametrize("seed", range(4))
def test_the_margin_absorbs_delivery_delays(seed: int) -> None:
    """Starts that reach the server up to ``margin`` late still fit every server window."""
    rng = random.Random(seed)
    margin = 0.2
    core, clock = make_core(120, 20_000, margin=margin)
    events = []
    for _ in range(800):
        clock.advance(rng.expovariate(3.0))
        tokens = rng.randint(1, 300)
        events.append((core.book("m", tokens).start + rng.uniform(0, margin), tokens))
    requests, tokens = worst_window(events)
    assert requests <= 120
    assert tokens <= 20_000


def test_per_day_quota_allows_half_at_once_then_spreads_the_rest() -> None:
    core, clock = make_core(rpm=100_000, tpm=10**9, overrides={"m": Quota(100_000, 10**9, 10, 40)})
    starts = [core.book("m", 1).start for _ in range(200)]
    burst = sum(1 for start in starts if start < clock.now + 5)
    assert 15 <= burst <= 21
    requests, _ = worst_window([(start, 1) for start in starts], window=86_400.0)
    assert requests <= 40


def test_a_saturated_quota_is_used_almost_entirely() -> None:
    """Demand above the quota: over ten minutes at least 98% of what the server would take."""
    core, clock = make_core(600, 60_000)
    starts: list[float] = []
    while not starts or starts[-1] < clock.now + 600:
        starts.append(core.book("m", 60).start)  # tokens bind exactly as much as requests
    served = sum(1 for start in starts if start < clock.now + 600)
    assert served >= 0.98 * 600 * 10


def test_a_request_above_the_token_quota_fails_at_once() -> None:
    core, _ = make_core(tpm=1_000)
    with pytest.raises(RequestTooLargeError) as caught:
        core.book("gemini", 1_001)
    assert (caught.value.model, caught.value.tokens, caught.value.limit) == ("gemini", 1_001, 1_000)
    whole = core.book("gemini", 1_000)  # exactly the quota is allowed, and books a long slot
    assert core.book("gemini", 1).start - whole.start >= WINDOW


def test_models_have_their_own_buckets_and_limits() -> None:
    core, clock = make_core(rpm=60, overrides={"small": Quota(6, 10_000, 1)})
    for _ in range(50):
        core.book("busy", 1)
    assert core.book("other", 1).start == clock.now
    small = [core.book("small", 1).start for _ in range(3)]
    assert small[1] - small[0] == pytest.approx(60.2 / 6, rel=1e-3)
    assert core.quota_for("small").max_concurrency == 1


def test_booking_cost_does_not_depend_on_the_token_count() -> None:
    """O(1): a million-token booking costs what a one-token booking costs."""
    small, _ = make_core(rpm=10**9, tpm=10**12)
    large, _ = make_core(rpm=10**9, tpm=10**12)

    def timed(core: LimiterCore, tokens: int) -> float:
        began = time.perf_counter()
        for _ in range(3_000):
            core.book("m", tokens)
        return time.perf_counter() - began

    timed(small, 1), timed(large, 1)  # warm up
    assert timed(large, 10**7) < 3 * timed(small, 1)
    assert len(large.book("m", 10**7).slot_ends) == 2  # one number per dimension, nothing more


# -- the one-step way in -----------------------------------------------------------------------


def bucket_state(core: LimiterCore, model: str) -> tuple[object, ...]:
    bucket = core._bucket(model)
    return (
        list(bucket.tats),
        bucket.last_start,
        bucket.next_ticket,
        bucket.serving,
        set(bucket.passed),
        bucket.slots,
        list(bucket.queue),
        bucket.in_flight,
        bucket.waiting,
        bucket.factor,
        bucket.rates,
        bucket.hold,
        bucket.shift,
        bucket.epoch,
        bucket.calibration.ratios(),
        bucket.successes,
    )


def booking_state(booking: Booking) -> tuple[object, ...]:
    return (
        booking.start,
        booking.cost,
        booking.shift,
        booking.epoch,
        booking.ticket,
        booking.rates,
        booking.lengths,
        booking.slot_starts,
        booking.slot_ends,
    )


@pytest.mark.parametrize("seed", range(8))
def test_starting_at_once_books_exactly_what_the_waiting_path_books(seed: int) -> None:
    """``try_start`` and the waiting path, on the same schedule, make identical bookings.

    Two cores see the same arrivals, responses (estimates off either way, so calibration and
    reconciliation move the TATs), 429s (holds, a slower rate) and ends of blocks; one always
    takes the waiting path, the other starts at once whenever it can. Every booking and the
    whole bucket state must match exactly after every step, and a ``try_start`` that declines
    must leave the state untouched.
    """
    rng = random.Random(seed)
    quota = Quota(
        rng.choice([30, 120, 600]), rng.choice([2_000, 20_000]), 3, rng.choice([None, 40_000])
    )
    clock = FakeClock()
    fast, _ = make_core(clock=clock, overrides={"m": quota}, calibrate=True)
    slow, _ = make_core(clock=clock, overrides={"m": quota}, calibrate=True)
    open_fast: list[Booking] = []
    open_slow: list[Booking] = []
    ways = {"at once": 0, "waiting": 0}
    for _ in range(1_500):
        # Demand about a third of the quota, in bursts: often a start is free at once, often not.
        clock.advance(rng.expovariate(quota.rpm / 180))
        if rng.random() < 0.002:
            delay = rng.choice([None, 0.5, 3.0])
            fast.report_rate_limited("m", delay, per_day=False)
            slow.report_rate_limited("m", delay, per_day=False)
        # Blocks end in random order; a full set of slots always frees one (no queue here).
        while open_fast and (len(open_fast) == quota.max_concurrency or rng.random() < 0.5):
            index = rng.randrange(len(open_fast))
            done_fast, done_slow = open_fast.pop(index), open_slow.pop(index)
            actual = max(0, round(done_fast.estimate * rng.uniform(0.6, 1.4)))
            fast.reconcile(done_fast, actual)
            slow.reconcile(done_slow, actual)
            success = rng.random() < 0.95
            leave(fast, done_fast, success)
            leave(slow, done_slow, success)
        tokens = rng.randint(1, 2 * quota.tpm // quota.rpm)
        before = bucket_state(fast, "m")
        booking = fast.try_start("m", tokens)
        if booking is None:
            assert bucket_state(fast, "m") == before
            booking = enter_by_waiting(fast, "m", tokens)
            ways["waiting"] += 1
        else:
            assert booking.start == clock.now
            ways["at once"] += 1
        reference = enter_by_waiting(slow, "m", tokens)
        assert booking_state(booking) == booking_state(reference)
        assert bucket_state(fast, "m") == bucket_state(slow, "m")
        open_fast.append(booking)
        open_slow.append(reference)
    assert min(ways.values()) >= 100, ways  # both ways were taken, many times


def test_try_start_declines_whenever_something_must_be_waited_for() -> None:
    core, clock = make_core(rpm=60, overrides={"m": Quota(60, 10_000, 1)})
    first = core.try_start("m", 1)
    assert first is not None and first.start == clock.now
    assert core.try_start("m", 1) is None  # the only slot is taken
    leave(core, first)
    assert core.try_start("m", 1) is None  # the next start is a second away
    clock.advance(5.0)
    late = core.book("m", 1)  # due at once, but its waiter has not woken up yet...
    clock.advance(5.0)
    assert core.try_start("m", 1) is None  # ...so nobody may start before it (booking order)
    core.pass_turn(late)
    clock.advance(1.0)
    core.report_rate_limited("m", 5.0, per_day=False)
    assert core.try_start("m", 1) is None  # held
    clock.advance(5.0)
    assert core.try_start("m", 1) is not None


# -- reconciliation and refunds ----------------------------------------------------------------


def test_reconciling_more_tokens_pushes_later_starts() -> None:
    core, _ = make_core(rpm=10**6, tpm=6_000)
    first = core.book("m", 100)
    core.reconcile(first, 400)
    plain, _ = make_core(rpm=10**6, tpm=6_000)
    uncorrected = plain.book("m", 100)
    gap_plain = plain.book("m", 100).start - uncorrected.start
    slack, rate = core.dimensions("m")[1].slack, first.rates[1]
    extra = slot_length(400, slack, rate) - slot_length(100, slack, rate)
    assert core.book("m", 100).start - first.start == pytest.approx(gap_plain + extra)


def test_reconciling_fewer_tokens_brings_later_starts_earlier() -> None:
    core, _ = make_core(rpm=10**6, tpm=6_000)
    first = core.book("m", 300)
    second = core.book("m", 300)  # booked before the first response came back
    core.reconcile(first, 250)
    plain, _ = make_core(rpm=10**6, tpm=6_000)
    plain.book("m", 300)
    plain.book("m", 300)
    slack, rate = core.dimensions("m")[1].slack, first.rates[1]
    unused = slot_length(300, slack, rate) - slot_length(250, slack, rate)
    assert plain.book("m", 1).start - core.book("m", 1).start == pytest.approx(unused)
    # Never so far that a new start would come before one already booked.
    core.reconcile(second, 0)
    assert core.book("m", 1).start >= second.start


def test_a_refund_never_reaches_into_what_the_request_used() -> None:
    """The last slot shrinks to what was used, still centred on its start."""
    core, _ = make_core(rpm=10**6, tpm=6_000)
    first = core.book("m", 600)
    core.reconcile(first, 100)
    reference, _ = make_core(rpm=10**6, tpm=6_000)
    reference.book("m", 100)
    assert core.book("m", 1).start == pytest.approx(reference.book("m", 1).start)


def test_reconcile_counts_once() -> None:
    core, _ = make_core(rpm=10**6, tpm=6_000)
    first = core.book("m", 100)
    core.reconcile(first, 1_000)
    core.reconcile(first, 1_000)
    twice, _ = make_core(rpm=10**6, tpm=6_000)
    once = twice.book("m", 100)
    twice.reconcile(once, 1_000)
    assert core.book("m", 1).start == pytest.approx(twice.book("m", 1).start)


def test_a_cancelled_booking_gives_its_slot_back() -> None:
    core, _ = make_core(rpm=6)
    first = core.book("m", 1)
    second = core.book("m", 1)
    core.refund(second)
    assert core.book("m", 1).start == second.start
    # A booking with later bookings behind it keeps its slot (the later ones are already placed).
    core.refund(first)
    assert core.book("m", 1).start > second.start


def test_calibration_learns_how_far_estimates_are_off() -> None:
    core, _ = make_core(rpm=10**6, tpm=10**6, calibrate=True)
    for _ in range(30):
        booking = core.book("m", 100)
        core.reconcile(booking, 130)
    assert core.cost_of("m", 1_000) == pytest.approx(1_300, rel=0.02)
    noisy, _ = make_core(rpm=10**6, tpm=10**6, calibrate=True)
    rng = random.Random(3)
    for _ in range(2_000):  # estimates off by up to 30% either way, unbiased
        actual = 1_000
        noisy.reconcile(noisy.book("m", round(actual * rng.uniform(0.7, 1.3))), actual)
    assert noisy.cost_of("m", 1_000) == pytest.approx(1_000, rel=0.05)
    assert core.cost_of("m", 10**6) == 10**6  # never above the quota


@pytest.mark.parametrize(("counting", "expected"), [("input", 10), ("total", 36)])
def test_which_tokens_count(counting: str, expected: int) -> None:
    usage = types.GenerateContentResponseUsageMetadata(
        prompt_token_count=10, candidates_token_count=20, thoughts_token_count=6
    )
    assert counted_tokens(usage, counting) == expected  # type: ignore[arg-type]
    assert counted_tokens(None, counting) is None  # type: ignore[arg-type]


# -- adaptation --------------------------------------------------------------------------------


def test_a_429_shrinks_the_rate_and_holds_new_starts(caplog: pytest.LogCaptureFixture) -> None:
    core, clock = make_core(rpm=60, backoff=0.5)
    core.book("m", 1)
    with caplog.at_level(logging.WARNING, "greycloud.limiter"):
        core.report_rate_limited("m", 7.0, per_day=False)
    assert "slowing to 50%" in caplog.text
    [record] = caplog.records  # one record per rate change, its figures as fields
    assert record.name == "greycloud.limiter"
    fields = {key: record.__dict__[key] for key in ("model", "status", "delay", "rate_factor")}
    assert fields == {"model": "m", "status": 429, "delay": 7.0, "rate_factor": 0.5}
    first = core.book("m", 1)
    assert first.start >= clock.now + 7.0
    second = core.book("m", 1)
    assert second.start - first.start == pytest.approx(2 * 60.2 / 60, rel=1e-3)
    stats = core.stats("memory").models["m"]
    assert stats.rate_factor == 0.5
    assert stats.rpm == pytest.approx(30 * 60 / 60.2, rel=1e-3)
    assert stats.rate_limited == 1


def test_429s_of_one_overload_shrink_once() -> None:
    core, clock = make_core(backoff=0.5)
    core.report_rate_limited("m", 5.0, per_day=False)
    clock.advance(1)
    core.report_rate_limited("m", 5.0, per_day=False)
    assert core.stats("memory").models["m"].rate_factor == 0.5
    clock.advance(10)
    core.report_rate_limited("m", 5.0, per_day=False)
    assert core.stats("memory").models["m"].rate_factor == 0.25


def test_waiting_bookings_are_moved_behind_a_new_hold() -> None:
    core, clock = make_core(rpm=60)
    pending = core.book("m", 1), core.book("m", 1)
    before = [booking.start for booking in pending]
    core.report_rate_limited("m", 10.0, per_day=False)
    moved = [core.confirm(booking) for booking in pending]
    assert moved == [pytest.approx(10.0)] * 2
    assert [booking.start for booking in pending] == [pytest.approx(b + 10.0) for b in before]
    assert core.confirm(pending[0]) == 0.0
    assert min(booking.start for booking in pending) >= clock.now + 10.0


def test_the_rate_recovers_step_by_step_after_successes(caplog: pytest.LogCaptureFixture) -> None:
    core, _ = make_core(rpm=20, backoff=0.5, recovery_step=0.1, recover_after=5)
    old = core.book("m", 1)
    core.report_rate_limited("m", 0.0, per_day=False)
    core.finish(old, success=True)  # started before the slowdown: says nothing about the new rate
    assert core.stats("memory").models["m"].rate_factor == 0.5
    with caplog.at_level(logging.INFO, "greycloud.limiter"):
        for _ in range(10):  # threshold: max(5, 0.5 * 20) successes
            core.finish(core.book("m", 1), success=True)
    assert core.stats("memory").models["m"].rate_factor == pytest.approx(0.6)
    assert "recovering" in caplog.text
    for _ in range(200):
        core.finish(core.book("m", 1), success=True)
    assert core.stats("memory").models["m"].rate_factor == 1.0


def test_a_per_day_429_is_not_treated_as_a_minute_quota() -> None:
    core, clock = make_core()
    core.report_rate_limited("m", 30.0, per_day=True)
    assert core.book("m", 1).start == clock.now
    stats = core.stats("memory").models["m"]
    assert (stats.rate_factor, stats.rate_limited, stats.rate_limited_per_day) == (1.0, 0, 1)


# -- concurrency -------------------------------------------------------------------------------


class Flag:
    def __init__(self) -> None:
        self.woken = False

    def set(self) -> None:
        self.woken = True


def test_concurrency_slots_are_handed_out_in_arrival_order() -> None:
    core, _ = make_core(overrides={"m": Quota(60, 1_000, 2)})
    assert core.try_acquire("m") and core.try_acquire("m")
    assert not core.try_acquire("m")
    waiters = [Flag() for _ in range(3)]
    assert not any(core.acquire_or_enqueue("m", waiter) for waiter in waiters)
    assert core.abandon("m", waiters[1])  # left the queue before its turn
    assert core.release_slot("m") is waiters[0]
    assert core.release_slot("m") is waiters[2]
    assert not core.abandon("m", waiters[2])  # handed a slot already: must release it
    assert core.release_slot("m") is None


def test_building_quotas_validates_limits() -> None:
    default, overrides = build_quotas(60, 1_000, 4, {"pro": {"rpm": 5, "rpd": 100}})
    assert overrides["pro"] == Quota(5, 1_000, 4, 100)
    assert default == Quota(60, 1_000, 4)
    with pytest.raises(ValueError, match="model_limits"):
        build_quotas(60, 1_000, 4, {"pro": {"rps": 5}})
    with pytest.raises(ValueError, match="rpm"):
        build_quotas(0, 1_000, 4, None)


def test_slot_lengths() -> None:
    assert slot_length(10, 20, 5.0) == 2.0
    assert slot_length(30, 20, 5.0) == 8.0  # the part above the slack counts twice
    assert Dimension("r", 60, 60.0, 1).rate(0.0) == pytest.approx(1.0, rel=1e-6)


def test_bookings_carry_what_a_refund_needs() -> None:
    core, _ = make_core()
    booking = core.book("m", 5)
    assert isinstance(booking, Booking)
    assert booking.estimate == booking.cost == 5
    assert len(booking.slot_starts) == len(booking.slot_ends) == len(booking.rates) == 2


def test_stats_list_every_model_with_limits_of_its_own_before_its_first_call() -> None:
    default, overrides = build_quotas(300, 1_000_000, 16, {"gemini-2.5-pro": {"rpm": 60}})
    core = LimiterCore(default, overrides)
    models = core.stats("memory").models
    assert list(models) == ["gemini-2.5-pro"]
    assert models["gemini-2.5-pro"].rpm == pytest.approx(60, rel=0.01)
    assert models["gemini-2.5-pro"].in_flight == 0
