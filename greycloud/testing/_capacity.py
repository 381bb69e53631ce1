"""Capacity mode: a hidden shared pool per model, like Vertex AI's Dynamic Shared Quota.

Under Dynamic Shared Quota there is no per-project number: the pool serves what it can and
answers 429 RESOURCE_EXHAUSTED when it is busy. Here each model's pool is a token bucket
refilled at ``requests_per_second`` (and, separately, ``tokens_per_second`` input tokens)
holding at most ``burst_seconds`` of it, so a client sending faster than the pool gets the
excess refused whatever its pacing. The capacity can change while the emulator runs
(``set``), or follow a schedule of ``(at_seconds, capacity)`` steps counted from ``start``.

Per second of the run the book counts the calls served (goodput) and refused: two integer
increments per call, so the emulator stays cheap on a busy machine.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

EXHAUSTED_MESSAGE = "Resource exhausted, please try again later."


@dataclass(frozen=True)
class Capacity:
    """What one model's shared pool serves per second; None: that dimension is unlimited."""

    requests_per_second: float | None = None
    tokens_per_second: float | None = None

    def __post_init__(self) -> None:
        for name in ("requests_per_second", "tokens_per_second"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or value < 0
            ):
                raise ValueError(f"{name} must be a non-negative number or None, got {value!r}")


CapacityLike = Capacity | float | int
CapacityStep = tuple[float, CapacityLike]
CapacitySchedule = Iterable[CapacityStep]


def as_capacity(value: CapacityLike) -> Capacity:
    """A ``Capacity`` from itself or a plain number of requests per second."""
    if isinstance(value, Capacity):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(
            f"capacity must be a Capacity or requests per second (a number), got {value!r}"
        )
    return Capacity(requests_per_second=float(value))


@dataclass(frozen=True)
class SecondStats:
    """One second of a capacity-mode run for one model: what the pool allowed and did."""

    second: int
    """Whole seconds since the emulator started (or the capacity was last reset)."""
    capacity: float | None
    """The pool's requests per second when that second's first call came (None: unlimited)."""
    accepted: int
    """Calls served (the goodput of that second)."""
    rejected: int
    """Calls refused with 429 RESOURCE_EXHAUSTED by the pool."""


class _Second:
    __slots__ = ("accepted", "capacity", "rejected")

    def __init__(self, capacity: float | None) -> None:
        self.capacity = capacity
        self.accepted = 0
        self.rejected = 0


class _Pool:
    """One model's token buckets (requests and tokens), refilled lazily on each call."""

    __slots__ = ("level_requests", "level_tokens", "updated")

    def __init__(self, now: float) -> None:
        self.level_requests = math.inf
        self.level_tokens = math.inf
        self.updated = now

    def try_take(self, now: float, tokens: int, capacity: Capacity, burst: float) -> bool:
        elapsed = max(0.0, now - self.updated)
        self.updated = now
        rps, tps = capacity.requests_per_second, capacity.tokens_per_second
        requests_ok = tokens_ok = True
        if rps is not None:
            top = max(1.0, rps * burst)
            self.level_requests = min(top, self.level_requests + elapsed * rps)
            requests_ok = self.level_requests >= 1.0
        if tps is not None:
            top = max(1.0, tps * burst)
            self.level_tokens = min(top, self.level_tokens + elapsed * tps)
            # A request larger than the bucket passes once the bucket is full (never starves).
            tokens_ok = self.level_tokens >= min(tokens, top)
        if not (requests_ok and tokens_ok):
            return False
        if rps is not None:
            self.level_requests -= 1.0
        if tps is not None:
            self.level_tokens -= tokens
        return True


class CapacityBook:
    """Every model's pool, the capacity (default, per model, scheduled) and per-second counts.

    Not thread-safe by itself: the emulator calls it under its state lock.
    """

    def __init__(
        self,
        capacity: CapacityLike | Mapping[str, CapacityLike] | None,
        schedule: CapacitySchedule | None,
        burst_seconds: float,
        now: float,
    ) -> None:
        if burst_seconds <= 0:
            raise ValueError(f"burst_seconds must be positive, got {burst_seconds!r}")
        self.burst = burst_seconds
        self._default: Capacity | None = None
        self._per_model: dict[str, Capacity] = {}
        if isinstance(capacity, Mapping):
            self._per_model = {model: as_capacity(value) for model, value in capacity.items()}
        elif capacity is not None:
            self._default = as_capacity(capacity)
        steps = sorted(
            ((float(at), as_capacity(value)) for at, value in schedule or ()),
            key=lambda step: step[0],
        )
        self._steps = steps
        self._pools: dict[str, _Pool] = {}
        self._seconds: dict[str, dict[int, _Second]] = {}
        self.restart(now)

    @property
    def active(self) -> bool:
        return self._default is not None or bool(self._per_model) or bool(self._steps)

    def restart(self, now: float) -> None:
        """Start the schedule and the per-second counts again from ``now``."""
        self.origin = now
        self._next_step = 0
        self._pools.clear()
        self._seconds.clear()

    def set(self, capacity: CapacityLike | None, model: str | None = None) -> None:
        """Change the capacity of every model (``model=None``) or of one; None lifts it."""
        value = None if capacity is None else as_capacity(capacity)
        if model is None:
            self._default = value
            self._per_model.clear()
        elif value is None:
            self._per_model.pop(model, None)
        else:
            self._per_model[model] = value

    def capacity_for(self, model: str) -> Capacity | None:
        return self._per_model.get(model, self._default)

    def _follow_schedule(self, now: float) -> None:
        steps, elapsed = self._steps, now - self.origin
        while self._next_step < len(steps) and steps[self._next_step][0] <= elapsed:
            self._default = steps[self._next_step][1]  # per-model settings stay
            self._next_step += 1

    def try_admit(self, model: str, now: float, tokens: int) -> bool:
        """Serve the call (True) or refuse it because the pool is busy (False); both counted."""
        if self._next_step < len(self._steps):
            self._follow_schedule(now)
        capacity = self.capacity_for(model)
        admitted = True
        if capacity is not None:
            pool = self._pools.get(model)
            if pool is None:
                pool = self._pools[model] = _Pool(now)
            admitted = pool.try_take(now, tokens, capacity, self.burst)
        per_second = self._seconds.get(model)
        if per_second is None:
            per_second = self._seconds[model] = {}
        second = int(now - self.origin)
        counts = per_second.get(second)
        if counts is None:
            rps = None if capacity is None else capacity.requests_per_second
            counts = per_second[second] = _Second(rps)
        if admitted:
            counts.accepted += 1
        else:
            counts.rejected += 1
        return admitted

    def seconds(self, model: str) -> tuple[SecondStats, ...]:
        """The per-second counts of ``model``, oldest first (seconds without calls left out)."""
        return tuple(
            SecondStats(second, counts.capacity, counts.accepted, counts.rejected)
            for second, counts in sorted(self._seconds.get(model, {}).items())
        )
