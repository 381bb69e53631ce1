"""``LimiterCore``: the in-memory state of every model's quota, booked in one atomic step.

Pure: no I/O, no sleeping, time from an injected clock. One ``threading.Lock`` guards all state;
every operation under it is O(1) and never waits, so the same core serves tasks (the async
limiter) and threads (the sync one). The waiting itself, and Redis, live in the limiter halves.

Per model it keeps one GCRA bucket per dimension (see ``gcra``), a concurrency count with a FIFO
queue of waiters, the adaptation state (rate factor, hold, shift), the calibration of token
estimates per modality (``calibration``), and the counters behind ``stats()``. For
``rpm="auto"`` the request rate comes from a ``RateDiscovery`` (see ``discovery``) instead of a
fixed quota, and the bookings still waiting are spaced again whenever it changes.

Most calls find nothing to wait for: a slot free, nobody ahead, a start that is due. For them
``try_start`` does the whole way in (slot, booking, turn) under one lock acquisition, with the
same booking code as ``book``; anything else declines it and takes the step-by-step path.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from ..errors import RequestTooLargeError
from .calibration import Calibration, TokenEstimate
from .discovery import RateChange, RateDiscovery
from .gcra import THETA, Dimension, earliest_start, place, same_time, slot_length
from .quota import Quota
from .stats import LimiterStats, ModelStats

logger = logging.getLogger("greycloud.limiter")

TOKENS = 1  # index of the token dimension in every bucket (requests come first)
DEFAULT_HOLD = 1.0  # seconds to hold new starts after a 429 that gave no retry delay
RECHECK = 0.5  # seconds a waiter sleeps at most under a discovered rate before rechecking


class Waker(Protocol):
    """Anything a queued waiter can be woken through (an event of either half)."""

    def set(self) -> None: ...


class Booking:
    """One booked start: when, and which slot of each dimension it holds.

    Times are on the store's clock (``start``) and on the limiter's clock (``local_start``);
    for the in-memory store they are the same clock.
    """

    __slots__ = (
        "breakdown",
        "cost",
        "epoch",
        "estimate",
        "lease",
        "lengths",
        "local_start",
        "model",
        "rates",
        "reconciled",
        "shift",
        "slot_ends",
        "slot_starts",
        "source",
        "start",
        "ticket",
    )

    def __init__(
        self,
        model: str,
        estimate: int,
        cost: int,
        start: float,
        shift: float,
        epoch: int,
        rates: list[float],
        lengths: list[float],
        slot_starts: list[float],
        slot_ends: list[float],
    ) -> None:
        self.model = model
        self.estimate = estimate
        self.cost = cost
        self.start = start
        self.local_start = start
        self.shift = shift
        self.epoch = epoch
        self.rates = rates
        self.lengths = lengths
        self.slot_starts = slot_starts
        self.slot_ends = slot_ends
        self.lease: str | None = None
        self.source: object = None
        self.reconciled = False
        self.ticket = -1
        self.breakdown: TokenEstimate | None = None  # the estimate by modality, when known

    def move(self, delta: float) -> None:
        """Shift the booking later by ``delta`` seconds (a hold imposed before it started)."""
        self.start += delta
        self.local_start += delta
        self.slot_starts = [value + delta for value in self.slot_starts]
        self.slot_ends = [value + delta for value in self.slot_ends]


class _Bucket:
    """Everything the core keeps for one model."""

    __slots__ = (
        "base_rates",
        "bursts",
        "calibration",
        "dims",
        "discovery",
        "epoch",
        "factor",
        "hold",
        "in_flight",
        "last_start",
        "logged_version",
        "next_ticket",
        "passed",
        "pending",
        "per_day",
        "queue",
        "quota",
        "rate_limited",
        "rates",
        "serving",
        "shift",
        "slots",
        "successes",
        "tats",
        "token_slack",
        "turn_waiters",
        "unit_lengths",
        "wait_seconds",
        "waiting",
    )

    def __init__(
        self, quota: Quota, dims: tuple[Dimension, ...], margin: float, now: float
    ) -> None:
        self.quota = quota
        self.dims = dims
        self.base_rates = [dim.rate(margin) for dim in dims]
        # rpm="auto": the request rate is whatever the discovery says (see ``discovery``).
        self.discovery = None if quota.auto is None else RateDiscovery(quota.auto, now)
        self.logged_version = 0
        if self.discovery is not None:
            self.base_rates[0] = self.discovery.rate(now)
        self.bursts = [dim.burst for dim in dims]
        self.token_slack = dims[TOKENS].slack
        self.rates: list[float] = []
        self.unit_lengths: list[float] = []
        self.set_factor(1.0)
        self.tats = [-math.inf] * len(dims)
        self.last_start = -math.inf  # the latest start booked so far
        self.hold = -math.inf
        self.shift = 0.0
        self.epoch = 0
        self.successes = 0
        self.calibration = Calibration()
        self.slots = 0
        self.queue: OrderedDict[Waker, None] = OrderedDict()
        self.waiting = 0
        self.in_flight = 0
        self.rate_limited = 0
        self.per_day = 0
        self.wait_seconds = 0.0
        # Start order: tickets in booking order; ``serving`` is the next one allowed to start.
        self.next_ticket = 0
        self.serving = 0
        self.passed: set[int] = set()
        self.turn_waiters: dict[int, Waker] = {}
        # rpm="auto": bookings not started yet, in ticket order (a new rate moves them).
        self.pending: dict[int, Booking] = {}

    def set_factor(self, factor: float) -> None:
        """Change the rate factor, and the rates and slot lengths derived from it.

        They are worked out here, once per change, not on every booking. Both lists are
        replaced, never changed in place: bookings keep the ones they were booked with.
        """
        self.factor = factor
        self.rates = [rate * factor for rate in self.base_rates]
        self.unit_lengths = [
            slot_length(1, dim.slack, rate) for dim, rate in zip(self.dims, self.rates, strict=True)
        ]

    def lengths_for(self, cost: int) -> list[float]:
        """Each dimension's slot length for a booking of ``cost`` tokens (one request)."""
        lengths = self.unit_lengths.copy()
        lengths[TOKENS] = slot_length(cost, self.token_slack, self.rates[TOKENS])
        return lengths

    def cost_of(self, tokens: int, estimate: TokenEstimate | None) -> int:
        """The tokens to book for an estimate: calibrated by past usage, within the quota."""
        return min(self.quota.tpm, self.calibration.cost(tokens, estimate))

    def may_start_at_once(self) -> bool:
        """A concurrency slot is free, nobody is queued for one, no booking waits to start."""
        return (
            self.slots < self.quota.max_concurrency
            and not self.queue
            and self.serving == self.next_ticket
        )


class LimiterCore:
    """The quota state of every model a limiter serves, with O(1) atomic operations.

    ``token_slack`` is the share of each token quota kept as slack (see ``gcra``); ``margin`` the
    seconds allowed between a booked start and the server seeing the request. On a 429 the rate
    factor is multiplied by ``backoff`` (at most once per hold) and new starts are held for the
    server's retry delay; each run of successes as long as a minute's requests (at least
    ``recover_after``) adds ``recovery_step`` back. ``calibrate`` scales token estimates by the
    running ratio of real usage to estimate.
    """

    def __init__(
        self,
        default: Quota,
        overrides: Mapping[str, Quota] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        token_slack: float = 0.015,
        margin: float = 0.2,
        backoff: float = 0.7,
        recovery_step: float = 0.05,
        min_factor: float = 0.05,
        recover_after: int = 10,
        calibrate: bool = True,
    ) -> None:
        if not 0.0 <= token_slack < 1.0:
            raise ValueError(f"token_slack must be in [0, 1), got {token_slack}")
        if not 0.0 < backoff < 1.0:
            raise ValueError(f"backoff must be in (0, 1), got {backoff}")
        self.default = default
        self.overrides = dict(overrides or {})
        self.clock = clock
        self.token_slack = token_slack
        self.margin = margin
        self.backoff = backoff
        self.recovery_step = recovery_step
        self.min_factor = min_factor
        self.recover_after = recover_after
        self.calibrate = calibrate
        self._lock = threading.Lock()
        self._buckets: dict[str, _Bucket] = {}

    # -- quotas ---------------------------------------------------------------------------------

    def quota_for(self, model: str) -> Quota:
        return self.overrides.get(model, self.default)

    def dimensions(self, model: str) -> tuple[Dimension, ...]:
        return self._bucket(model).dims

    def _bucket(self, model: str) -> _Bucket:
        bucket = self._buckets.get(model)
        if bucket is None:
            quota = self.quota_for(model)
            dims = quota.dimensions(self.token_slack)
            bucket = _Bucket(quota, dims, self.margin, self.clock())
            bucket = self._buckets.setdefault(model, bucket)
        return bucket

    def check_size(self, model: str, tokens: int) -> None:
        """Fail at once for a request that could never fit in the token quota."""
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
            raise TypeError(f"tokens must be a non-negative int, got {tokens!r}")
        limit = self.quota_for(model).tpm
        if tokens > limit:
            raise RequestTooLargeError(model, tokens, limit)

    def cost_of(self, model: str, tokens: int, estimate: TokenEstimate | None = None) -> int:
        """The tokens to book for an estimate (``estimate``: the same by modality, if known):
        calibrated by past usage, within the quota."""
        with self._lock:
            return self._bucket(model).cost_of(tokens, estimate)

    def media_average(self, model: str, modality: str) -> float | None:
        """Tokens per media part of unknown size learned for ``model`` (None: none seen yet)."""
        with self._lock:
            return self._bucket(model).calibration.average(modality)

    # -- booking --------------------------------------------------------------------------------

    def book(self, model: str, tokens: int, estimate: TokenEstimate | None = None) -> Booking:
        """Book the earliest start that every dimension of ``model``'s quota allows."""
        self.check_size(model, tokens)
        with self._lock:
            bucket = self._bucket(model)
            now = self.clock()
            if bucket.discovery is not None:
                self._follow_discovery(bucket, model, now)
            cost = bucket.cost_of(tokens, estimate)
            lengths = bucket.lengths_for(cost)
            start = earliest_start(max(now, bucket.hold), bucket.tats, lengths, bucket.bursts)
            return self._commit(bucket, model, tokens, cost, lengths, start, estimate)

    def try_start(
        self, model: str, tokens: int, estimate: TokenEstimate | None = None
    ) -> Booking | None:
        """Start at once when nothing stands in the way; otherwise None, and nothing changed.

        The whole way into a ``limit`` block in one step, for the common case: a concurrency
        slot free with nobody queued for one, no earlier booking still waiting to start, and
        a start that is due already. The booking is the one ``book`` would make (same code);
        the rest is what the waiting path then does when there is nothing to wait for: take
        the slot, take the turn and pass it on, count the request in flight. The caller has
        checked the size (``check_size``).
        """
        with self._lock:
            bucket = self._bucket(model)
            if not bucket.may_start_at_once():
                return None
            now = self.clock()
            if bucket.discovery is not None:
                self._follow_discovery(bucket, model, now)
            cost = bucket.cost_of(tokens, estimate)
            lengths = bucket.lengths_for(cost)
            start = earliest_start(max(now, bucket.hold), bucket.tats, lengths, bucket.bursts)
            if start > now:
                return None
            booking = self._commit(bucket, model, tokens, cost, lengths, start, estimate)
            bucket.slots += 1
            bucket.serving += 1  # this booking's turn (nobody before it), passed on
            bucket.pending.pop(booking.ticket, None)
            bucket.in_flight += 1
            return booking

    def _commit(
        self,
        bucket: _Bucket,
        model: str,
        tokens: int,
        cost: int,
        lengths: list[float],
        start: float,
        estimate: TokenEstimate | None,
    ) -> Booking:
        """Place every dimension's slot around ``start`` and take a ticket (lock held)."""
        slot_starts, slot_ends = place(bucket.tats, lengths, start)
        bucket.last_start = start
        booking = Booking(
            model,
            tokens,
            cost,
            start,
            bucket.shift,
            bucket.epoch,
            bucket.rates,
            lengths,
            slot_starts,
            slot_ends,
        )
        booking.ticket = bucket.next_ticket
        booking.breakdown = estimate
        bucket.next_ticket += 1
        if bucket.discovery is not None:
            bucket.discovery.on_start(start)
            bucket.pending[booking.ticket] = booking
        return booking

    def recheck_interval(self, model: str) -> float:
        """How long a waiter may sleep before ``confirm`` (a discovered rate may change)."""
        return RECHECK if self._bucket(model).discovery is not None else math.inf

    def continue_after(self, model: str, at: float) -> None:
        """Book ``model``'s next starts no earlier than ``at``: a fallback taking over a shared
        schedule whose slots up to ``at`` are already handed out."""
        with self._lock:
            bucket = self._bucket(model)
            bucket.tats = [max(tat, at) for tat in bucket.tats]

    def confirm(self, booking: Booking) -> float:
        """Seconds a waiting booking must still wait because a hold was imposed since it booked.

        The booking (and every pending booking) was moved later by that much; 0 when not.
        Under a discovered rate this is also when the rate is brought up to date, which may
        move the booking (either way: the caller rereads its start).
        """
        with self._lock:
            bucket = self._bucket(booking.model)
            if bucket.discovery is not None:
                # A new rate moves waiting bookings in place (``_respace``), either way.
                self._follow_discovery(bucket, booking.model, self.clock())
            delta = bucket.shift - booking.shift
            if delta <= 0:
                return 0.0
            booking.shift += delta
            booking.move(delta)
            return delta

    def refund(self, booking: Booking) -> None:
        """Give back a booking that never started.

        Its slot is returned when it is still the last one booked in a dimension; otherwise
        later bookings are already placed after it and the slot stays (always safe).
        """
        with self._lock:
            bucket = self._bucket(booking.model)
            delta = bucket.shift - booking.shift
            for index, end in enumerate(booking.slot_ends):
                if same_time(bucket.tats[index], end + delta):
                    bucket.tats[index] = booking.slot_starts[index] + delta

    def reconcile(
        self, booking: Booking, actual: int, details: Mapping[str, int] | None = None
    ) -> None:
        """Correct a started booking's tokens with the real count from the response
        (``details``: the prompt tokens by modality, when the response gave them)."""
        with self._lock:
            if booking.reconciled:
                return
            booking.reconciled = True
            bucket = self._bucket(booking.model)
            self._learn(bucket, booking, actual, details)
            if actual == booking.cost:
                return  # the slot was the right length: nothing moves
            new_length = slot_length(actual, bucket.token_slack, booking.rates[TOKENS])
            bucket.tats[TOKENS] = adjusted_tat(
                bucket.tats[TOKENS],
                booking.slot_ends[TOKENS],
                booking.start,
                booking.lengths[TOKENS],
                new_length,
                bucket.last_start,
            )

    def learn(
        self, booking: Booking, actual: int, details: Mapping[str, int] | None = None
    ) -> None:
        """Update the calibration of ``booking``'s model (for stores that keep TATs elsewhere)."""
        with self._lock:
            self._learn(self._bucket(booking.model), booking, actual, details)

    def _learn(
        self, bucket: _Bucket, booking: Booking, actual: int, details: Mapping[str, int] | None
    ) -> None:
        if not self.calibrate or booking.estimate <= 0:
            return
        bucket.calibration.learn(booking.estimate, booking.breakdown, actual, details)

    # -- adaptation -----------------------------------------------------------------------------

    def finish(self, booking: Booking, success: bool) -> None:
        """A started request ended; a success counts towards recovering the rate."""
        with self._lock:
            bucket = self._bucket(booking.model)
            if bucket.discovery is not None:
                if success:
                    bucket.discovery.on_success(self.clock())
                return
            if not success or bucket.factor >= 1.0 or booking.epoch != bucket.epoch:
                return
            bucket.successes += 1
            if bucket.successes >= self.recovery_threshold(bucket.quota, bucket.factor):
                bucket.successes = 0
                bucket.set_factor(min(1.0, bucket.factor + self.recovery_step))
                logger.info(
                    "rate for %s recovering: %.0f%% of the configured quota",
                    booking.model,
                    bucket.factor * 100,
                    extra={"model": booking.model, "rate_factor": bucket.factor},
                )

    def recovery_threshold(self, quota: Quota, factor: float) -> int:
        """Successes in a row before the next recovery step: about a minute of requests."""
        return max(self.recover_after, math.ceil(factor * quota.rpm))

    def report_rate_limited(
        self,
        model: str,
        retry_delay: float | None,
        per_day: bool,
        started_at: float | None = None,
    ) -> None:
        """A 429: slow down and hold new starts until the retry delay (not for per-day quotas).

        For a discovered rate (``rpm="auto"``) the discovery cuts (once per episode: a request
        ``started_at`` before the last cut is part of it) and starts are held only for a retry
        delay the server gave.
        """
        self.count_rate_limited(model, per_day)
        if per_day:
            return
        with self._lock:
            bucket = self._bucket(model)
            now = self.clock()
            if bucket.discovery is not None:
                self._discovery_cut(bucket, model, now, started_at)
                if retry_delay:
                    self._hold(bucket, now, retry_delay)
                return
            delay = DEFAULT_HOLD if retry_delay is None else max(0.0, retry_delay)
            if bucket.hold <= now:
                # A new overload: shrink once; further 429s during the hold are the same episode.
                bucket.set_factor(max(self.min_factor, bucket.factor * self.backoff))
                bucket.epoch += 1
                bucket.successes = 0
                logger.warning(
                    "429 for %s: slowing to %.0f%% of the configured quota, holding new starts "
                    "for %.1fs",
                    model,
                    bucket.factor * 100,
                    delay,
                    extra={
                        "model": model,
                        "status": 429,
                        "delay": delay,
                        "rate_factor": bucket.factor,
                    },
                )
            self._hold(bucket, now, delay)

    def _hold(self, bucket: _Bucket, now: float, delay: float) -> None:
        """Hold new starts until ``now + delay``; pending bookings move later with them."""
        extra = now + delay - max(bucket.hold, now)
        if extra > 0:
            for index, tat in enumerate(bucket.tats):
                if tat > now:
                    bucket.tats[index] = tat + extra
            if bucket.last_start > now:
                bucket.last_start += extra
            bucket.shift += extra
            bucket.hold = now + delay

    # -- discovered rates (rpm="auto") ------------------------------------------------------

    def _follow_discovery(
        self, bucket: _Bucket, model: str, now: float, log: bool = True
    ) -> RateChange | None:
        """Book at the discovery's current rate (lock held); the change it noted since the
        last call, if any, logged once unless ``log`` is False (then the caller logs it)."""
        discovery = bucket.discovery
        assert discovery is not None
        rate = discovery.rate(now)
        if rate != bucket.base_rates[0]:
            bucket.base_rates[0] = rate
            bucket.set_factor(1.0)
        if discovery.version == bucket.logged_version:
            return None
        bucket.logged_version = discovery.version
        self._respace(bucket, now)
        change = discovery.history[-1]
        if log:
            log_change(model, change)
        return change

    def _discovery_cut(
        self, bucket: _Bucket, model: str, now: float, started_at: float | None
    ) -> None:
        """A 429 under a discovered rate (lock held): cut once per episode; the bookings still
        waiting are spaced again for the new rate (``_respace``)."""
        discovery = bucket.discovery
        assert discovery is not None
        if discovery.on_rejected(now, started_at):
            self._follow_discovery(bucket, model, now)

    def discovered_rate(self, model: str) -> float:
        """The request rate ``model`` books at now (units per second)."""
        with self._lock:
            return self._bucket(model).base_rates[0]

    def step_shared_discovery(
        self,
        model: str,
        state: dict[str, Any],
        starts: list[float],
        successes: list[float],
        now: float,
        rejections: list[tuple[float, int | None]],
    ) -> tuple[dict[str, Any], float, RateChange | None]:
        """One step of ``model``'s discovered rate on a state shared by many processes.

        ``state`` and the measurements come from the store (on its clock, ``now`` included);
        ``rejections`` are this process's 429s since the last step: each request's start and
        the shared version its start was spaced by (None: not known). Returns
        the new state, the ratio old rate / new rate and the change made here (if any: the
        caller logs it once the state is written; a change loaded from the state was logged
        where it was made).
        """
        with self._lock:
            bucket = self._bucket(model)
            discovery = bucket.discovery
            assert discovery is not None, "only for a discovered rate (rpm='auto')"
            discovery.load(state, starts, successes, now)
            bucket.logged_version = discovery.version
            before = float(state["rate"]) if state else discovery.rate(now)
            discovery.rate(now)
            for started, version in rejections:
                discovery.on_rejected(now, started, version)
            change = self._follow_discovery(bucket, model, now, log=False)
            return discovery.dump(), before / discovery.rate(now), change

    def shared_step_written(self, model: str) -> None:
        """The state ``step_shared_discovery`` returned was written: its changes stay."""
        with self._lock:
            discovery = self._bucket(model).discovery
            if discovery is not None:
                discovery.shared()

    def _respace(self, bucket: _Bucket, now: float) -> None:
        """Space the bookings still waiting to start for the new rate (lock held).

        They were spaced for the old one; each is placed again in booking order (requests and
        tokens; a per-day slot stays), so start order and ticket order stay the same. The
        schedule restarts from now: what bookings already started still hold beyond now is at
        most half a slot each, which the slack covers.
        """
        floor = max(now, bucket.hold)
        tats = [min(tat, floor) for tat in bucket.tats[: TOKENS + 1]]
        bursts = bucket.bursts[: TOKENS + 1]
        for booking in bucket.pending.values():
            lengths = [bucket.unit_lengths[0], booking.lengths[TOKENS]]
            start = earliest_start(floor, tats, lengths, bursts)
            starts, ends = place(tats, lengths, start)
            booking.move(start - booking.start)
            booking.shift = bucket.shift
            booking.lengths[: TOKENS + 1] = lengths
            booking.slot_starts[: TOKENS + 1] = starts
            booking.slot_ends[: TOKENS + 1] = ends
            bucket.last_start = max(bucket.last_start, start)
        bucket.tats[: TOKENS + 1] = tats

    def count_rate_limited(self, model: str, per_day: bool) -> None:
        with self._lock:
            bucket = self._bucket(model)
            if per_day:
                bucket.per_day += 1
                logger.warning(
                    "429 for %s is a per-day quota: not slowing the per-minute rate",
                    model,
                    extra={"model": model, "status": 429, "per_day": True},
                )
            else:
                bucket.rate_limited += 1

    def observe_factor(self, model: str, factor: float) -> None:
        """Record the rate factor a shared store reported (for ``stats()``)."""
        with self._lock:
            bucket = self._bucket(model)
            if factor != bucket.factor:
                bucket.set_factor(factor)

    # -- concurrency (FIFO) ---------------------------------------------------------------------

    def try_acquire(self, model: str) -> bool:
        """Take a concurrency slot if one is free and nobody is queued before us."""
        with self._lock:
            bucket = self._bucket(model)
            if bucket.slots < bucket.quota.max_concurrency and not bucket.queue:
                bucket.slots += 1
                return True
            return False

    def acquire_or_enqueue(self, model: str, waker: Waker) -> bool:
        """Take a slot now (True) or queue ``waker`` to be handed one in arrival order."""
        with self._lock:
            bucket = self._bucket(model)
            if bucket.slots < bucket.quota.max_concurrency and not bucket.queue:
                bucket.slots += 1
                return True
            bucket.queue[waker] = None
            return False

    def release_slot(self, model: str) -> Waker | None:
        """Free a slot, or hand it straight to the first queued waiter (returned, to be woken)."""
        with self._lock:
            return self._release_slot(self._bucket(model))

    def end(self, model: str) -> Waker | None:
        """A started request's block ended: it is no longer in flight, and its slot is released
        (returned: the queued waiter it was handed to, to be woken)."""
        with self._lock:
            bucket = self._bucket(model)
            bucket.in_flight -= 1
            return self._release_slot(bucket)

    def _release_slot(self, bucket: _Bucket) -> Waker | None:
        if bucket.queue:
            waker, _ = bucket.queue.popitem(last=False)
            return waker
        bucket.slots -= 1
        return None

    def abandon(self, model: str, waker: Waker) -> bool:
        """Leave the queue; False when a slot was already handed over (release it then)."""
        with self._lock:
            return self._bucket(model).queue.pop(waker, False) is None

    # -- start order ----------------------------------------------------------------------------

    def take_ticket(self, booking: Booking) -> None:
        """Give a booking made by another core (a local fallback) its place in the start order."""
        with self._lock:
            bucket = self._bucket(booking.model)
            booking.ticket = bucket.next_ticket
            bucket.next_ticket += 1

    def my_turn(self, booking: Booking, waker: Waker | None = None) -> bool:
        """Whether every earlier booking has started or left, so this one may start now.

        Its booked time has come, but a waiter woken late (a busy loop, a thread waiting for the
        GIL) must not start before one booked earlier: when it is not yet its turn, ``waker``
        (if given) is woken when it is. A booking without a ticket (a shared store's: its
        replies may arrive in another order than its bookings) only waits for its own start.
        """
        if booking.ticket < 0:
            return True
        with self._lock:
            bucket = self._bucket(booking.model)
            if booking.ticket == bucket.serving:
                return True
            if waker is not None:
                bucket.turn_waiters[booking.ticket] = waker
            return False

    def pass_turn(self, booking: Booking) -> Waker | None:
        """The booking started, or left without starting: let the next one go (returned to wake)."""
        if booking.ticket < 0:
            return None
        with self._lock:
            bucket = self._bucket(booking.model)
            bucket.turn_waiters.pop(booking.ticket, None)
            bucket.pending.pop(booking.ticket, None)
            if booking.ticket != bucket.serving:
                bucket.passed.add(booking.ticket)
                return None
            bucket.serving += 1
            while bucket.serving in bucket.passed:
                bucket.passed.remove(bucket.serving)
                bucket.serving += 1
            return bucket.turn_waiters.pop(bucket.serving, None)

    # -- counters -------------------------------------------------------------------------------

    def enter_waiting(self, model: str) -> None:
        with self._lock:
            self._bucket(model).waiting += 1

    def leave_waiting(self, model: str, waited: float, started: bool) -> None:
        with self._lock:
            bucket = self._bucket(model)
            bucket.waiting -= 1
            bucket.wait_seconds += waited
            if started:
                bucket.in_flight += 1

    def stats(self, storage: str) -> LimiterStats:
        """Every model used so far, and every model with limits of its own (used or not)."""
        with self._lock:
            for model in self.overrides:
                self._bucket(model)
            models = {
                model: ModelStats(
                    rpm=bucket.factor * bucket.base_rates[0] * 60.0,
                    tpm=bucket.factor * bucket.base_rates[TOKENS] * 60.0,
                    rate_factor=bucket.factor,
                    waiting=bucket.waiting,
                    in_flight=bucket.in_flight,
                    rate_limited=bucket.rate_limited,
                    rate_limited_per_day=bucket.per_day,
                    wait_seconds=bucket.wait_seconds,
                    calibration=bucket.calibration.ratios(),
                    **_discovery_stats(bucket.discovery),
                )
                for model, bucket in self._buckets.items()
            }
        return LimiterStats(
            waiting=sum(m.waiting for m in models.values()),
            in_flight=sum(m.in_flight for m in models.values()),
            rate_limited=sum(m.rate_limited for m in models.values()),
            wait_seconds=sum(m.wait_seconds for m in models.values()),
            storage=storage,
            models=models,
        )


def log_change(model: str, change: RateChange) -> None:
    """Log one change of a discovered rate (a cut as a warning), with fields for filters."""
    logger.log(
        logging.WARNING if change.reason == "cut" else logging.INFO,
        "discovered rate for %s: %.1f requests/s (%s)",
        model,
        change.rate,
        change.reason,
        extra={"model": model, "rate": change.rate, "reason": change.reason},
    )


def _discovery_stats(discovery: RateDiscovery | None) -> dict[str, Any]:
    if discovery is None:
        return {}
    estimate = discovery.ceiling_estimate
    return {
        "auto": True,
        "ceiling_estimate_rpm": None if estimate is None else estimate * 60.0,
        "history": tuple(discovery.history),
    }


def adjusted_tat(
    tat: float,
    end: float,
    start: float,
    old_length: float,
    new_length: float,
    last_start: float,
) -> float:
    """The token TAT after a started booking's slot changes from ``old_length`` to ``new_length``.

    The difference is applied where the schedule stands now, after every booking so far: more
    tokens than booked push the next starts later, fewer bring them earlier, but never before
    the latest booked start (``last_start``: starts stay in booking order), and, when this is
    still the last slot, never into the middle of what the request really used. The error of
    requests still in flight is the one thing the envelope cannot see; the slack and the margin
    absorb it, and calibration keeps it unbiased.
    """
    if new_length > old_length:
        return max(tat, end) + (new_length - old_length)
    if new_length < old_length:
        floor = start + (1.0 - THETA) * new_length if same_time(tat, end) else last_start
        return max(min(tat, tat - (old_length - new_length)), floor)
    return tat
