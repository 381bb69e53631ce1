"""Discovering a capacity nobody states: the control law behind ``rpm="auto"``.

Under Vertex AI's Dynamic Shared Quota there is no per-project number: a 429 only says that the
shared pool is busy right now. ``RateDiscovery`` finds the rate the pool serves and follows it
as it changes. Pure: no I/O, no sleeping; every method takes the time, so tests drive it with
an injected clock, and many processes can step one state shared through Redis (``dump`` and
``load``).

The law (chosen by measurement, see ``bench/bench_auto.py`` and ``bench/RESULTS.md``):

- **Ramp.** From a safe ``start`` the rate doubles every ``doubling`` seconds until the first
  429 (the pool's size is unknown, so find its order of magnitude fast).
- **Cut.** A 429 marks the pool's edge. The rate served just before it (the successes of the
  last ``window`` seconds, or since the last cut when refused again soon after it; never more
  than the rate in force) becomes the *ceiling estimate* ``w``, and the rate drops to
  ``backoff * w``. Only a 429 for a request spaced for the rate after the last cut is news:
  the others were sent at the old rate and are the same episode, so one overload costs one
  cut, not one per request in flight. A request says so by the version of the law its start
  was spaced by (a process sharing the law learns of a cut made elsewhere a little late, and
  starts at the old spacing meanwhile), or else by when it started.
- **Return and probe.** After a cut the rate climbs back along a cubic (as in TCP CUBIC): fast at
  first, flat near ``w`` (where the last 429 was, so it stays just under it for a while), then
  faster and faster above it, reaching ``2 w`` ``probe`` seconds after passing ``w``. A pool
  that shrank answers with a 429 near ``w``; one that grew is found within seconds.
- **Only while used.** The rate grows only while the caller actually sends at least half of it,
  so an idle or slow client does not "discover" a rate it never tried.

Rates are in requests per second and stay within ``[floor, ceiling]``: ``ceiling`` is the
``auto_max`` that caps spend.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# A 429 with no start time (or from a caller that cannot say) within this many seconds after a
# cut counts as the same episode.
EPISODE_GRACE = 1.0
# The rate is recomputed at most this often (it is read on every booking).
TICK = 0.1
# Share of the rate the caller must use for the rate to keep growing.
USED_SHARE = 0.5
HISTORY = 64  # rate changes kept for stats()
SHARED_CHANGES = 16  # rate changes a shared state keeps, for processes that were not looking
MIN_SAMPLE = 0.5  # seconds of successes that make an estimate of their own


@dataclass(frozen=True)
class DiscoverySettings:
    """The bounds and shape of one discovered dimension (units per second)."""

    start: float
    floor: float
    ceiling: float
    backoff: float = 0.9
    plateau: float = 10.0
    """Seconds from a cut back to the ceiling estimate."""
    probe: float = 9.0
    """Seconds from passing the ceiling estimate to twice it (no 429 meanwhile)."""
    doubling: float = 3.0
    """Seconds per doubling while ramping up before the first 429."""
    window: float = 2.0
    """Seconds of successes that estimate the rate the pool served at a 429."""

    def __post_init__(self) -> None:
        if not 0 < self.floor <= self.ceiling:
            raise ValueError(
                f"the floor ({self.floor}) must be positive and at most the ceiling "
                f"({self.ceiling})"
            )
        if not 0.0 < self.backoff < 1.0:
            raise ValueError(f"backoff must be in (0, 1), got {self.backoff}")
        for name in ("plateau", "probe", "doubling", "window"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


@dataclass(frozen=True)
class RateChange:
    """One step of a discovered rate, for ``stats()`` and the log."""

    at: float
    """When, on the limiter's clock."""
    rate: float
    """Units per second from then on."""
    reason: str
    """"start", "cut" (a 429), "grow" (10% or more above the last change)."""


def curve(settings: DiscoverySettings, ceiling_estimate: float, grown: float) -> float:
    """The rate ``grown`` seconds (of use) after a cut to ``backoff * ceiling_estimate``."""
    plateau = settings.plateau
    if grown < plateau:
        below = (plateau - grown) / plateau
        return ceiling_estimate * (1.0 - (1.0 - settings.backoff) * below**3)
    return ceiling_estimate * (1.0 + ((grown - plateau) / settings.probe) ** 3)


def ramp(settings: DiscoverySettings, grown: float) -> float:
    """The rate ``grown`` seconds (of use) into the ramp before the first 429."""
    return settings.start * math.pow(2.0, min(grown / settings.doubling, 64.0))


def spread(counts: Iterable[int], first: int, now: float) -> list[float]:
    """Event times from counts per whole second (``first``, ``first + 1``, ...; the last may be
    the second under way at ``now``): each second's events evenly over the part of it that
    has passed. Then a cut in the middle of a second counts as served after it the share of
    that second's successes that came after it, not all or none of them."""
    times: list[float] = []
    for index, count in enumerate(counts):
        begin = first + index
        length = min(1.0, max(0.0, now - begin))
        times += [begin + (k + 0.5) * length / count for k in range(count)]
    return times


class RateDiscovery:
    """One dimension's discovered rate (see the module docstring for the law)."""

    __slots__ = (
        "_ceiling_estimate",
        "_computed_at",
        "_cut_at",
        "_cut_version",
        "_grown",
        "_logged_rate",
        "_rate",
        "_starts",
        "_successes",
        "_updated",
        "changes",
        "cuts",
        "history",
        "settings",
        "unshared",
        "version",
    )

    def __init__(self, settings: DiscoverySettings, now: float) -> None:
        self.settings = settings
        self._ceiling_estimate: float | None = None  # None: still ramping
        self._cut_at = -math.inf
        self._cut_version = 0  # the version the last cut made
        self._grown = 0.0  # seconds of use since the ramp began or the last cut
        self._updated = now
        self._computed_at = now
        self._starts: deque[float] = deque()
        self._successes: deque[float] = deque()
        self.cuts = 0
        self.version = 0  # bumped on every change noted in history
        self.unshared = 0  # changes noted since the shared state was last loaded or written
        # (version, when, old rate / new rate) of the latest changes, for shared schedules.
        self.changes: deque[tuple[int, float, float]] = deque(maxlen=SHARED_CHANGES)
        self._rate = self._clamp(settings.start)
        self._logged_rate = self._rate
        self.history: deque[RateChange] = deque([RateChange(now, self._rate, "start")], HISTORY)

    @property
    def ceiling_estimate(self) -> float | None:
        """Where the last 429 put the pool's edge (None before the first 429)."""
        return self._ceiling_estimate

    def _clamp(self, rate: float) -> float:
        return min(self.settings.ceiling, max(self.settings.floor, rate))

    def _forget(self, events: deque[float], now: float) -> None:
        horizon = now - self.settings.window
        while events and events[0] <= horizon:
            events.popleft()

    def _used(self, now: float) -> bool:
        """Whether the caller sent at least ``USED_SHARE`` of the rate lately."""
        self._forget(self._starts, now)
        window = min(self.settings.window, max(TICK, now - self._cut_at))
        return len(self._starts) >= max(1.0, USED_SHARE * self._rate * window - 1.0)

    def rate(self, now: float) -> float:
        """Units per second allowed at ``now`` (recomputed at most every ``TICK`` seconds)."""
        if now - self._computed_at < TICK:
            return self._rate
        elapsed = max(0.0, now - self._updated)
        self._updated = now
        self._computed_at = now
        if elapsed and self._used(now) and self._rate < self.settings.ceiling:
            self._grown += elapsed
        settings = self.settings
        if self._ceiling_estimate is None:
            target = ramp(settings, self._grown)
        else:
            target = curve(settings, self._ceiling_estimate, self._grown)
        self._rate = self._clamp(target)
        if self._rate >= 1.1 * self._logged_rate:
            self._note(now, "grow")
        return self._rate

    def _note(self, now: float, reason: str) -> None:
        self.unshared += 1
        self.changes.append((self.version + 1, now, self._logged_rate / self._rate))
        self._logged_rate = self._rate
        self.version += 1
        self.history.append(RateChange(now, self._rate, reason))

    def on_start(self, now: float) -> None:
        """A request started: counts towards "in use"."""
        self._starts.append(now)

    def on_success(self, now: float) -> None:
        self._successes.append(now)
        if len(self._successes) > 4096:
            self._forget(self._successes, now)

    def served_rate(self, now: float) -> float:
        """Successes per second over the last ``window`` seconds."""
        self._forget(self._successes, now)
        since = now - self._cut_at
        if MIN_SAMPLE <= since < self.settings.window:
            # Still refused soon after a cut: the pool is drained, so what it served since
            # that cut is its capacity (older successes may include a burst it had saved).
            recent = sum(1 for at in self._successes if at > self._cut_at)
            return recent / since
        return len(self._successes) / self.settings.window

    def on_rejected(
        self, now: float, started_at: float | None = None, version: int | None = None
    ) -> bool:
        """A 429; True when it cut the rate (False: part of the episode already cut for).

        ``version`` is the ``version`` the refused request's start was spaced by (known
        before the last cut: the same episode); without it, ``started_at`` (before the last
        cut: the same episode); without either, a 429 soon after a cut is part of it.
        """
        if version is not None:
            if version < self._cut_version:
                return False
        elif started_at is not None:
            if started_at < self._cut_at:
                return False
        elif now - self._cut_at < EPISODE_GRACE:
            return False
        current = self.rate(now)
        served = self.served_rate(now)
        estimate = current if served <= 0 else min(current, served)
        self._ceiling_estimate = max(self.settings.floor, estimate)
        self._cut_at = now
        self._grown = 0.0
        self._updated = self._computed_at = now
        self._rate = self._clamp(self.settings.backoff * self._ceiling_estimate)
        self.cuts += 1
        self._note(now, "cut")
        self._cut_version = self.version
        return True

    # -- one state shared by many processes (the Redis store) --------------------------------

    def dump(self) -> dict[str, Any]:
        """The law's state as plain JSON values (measurements excluded: they are shared apart)."""
        cut = self._cut_at
        return {
            "w": self._ceiling_estimate,
            "cut": cut if math.isfinite(cut) else None,
            "grown": self._grown,
            "updated": self._updated,
            "computed": self._computed_at,
            "rate": self._rate,
            "logged": self._logged_rate,
            "cuts": self.cuts,
            "version": self.version,
            "cut_version": self._cut_version,
            "reason": self.history[-1].reason,
            "changes": [list(change) for change in self.changes],
        }

    def load(
        self,
        state: dict[str, Any],
        starts: Iterable[float],
        successes: Iterable[float],
        now: float,
    ) -> None:
        """Take over a shared state and the shared measurements (times of starts and successes,
        on the same clock as the state). A change made elsewhere enters this history too; one
        made here that was never written (``shared`` not called) leaves it."""
        for _ in range(min(self.unshared, len(self.history) - 1)):
            self.history.pop()
        self.version -= self.unshared
        self.unshared = 0
        self._starts = deque(sorted(starts))
        self._successes = deque(sorted(successes))
        if not state:  # the first to share: the law starts over on the state's clock
            self._updated = self._computed_at = now
            self._cut_at = -math.inf
            self._grown = 0.0
            return
        version = int(state["version"])
        self._ceiling_estimate = state["w"]
        self._cut_at = -math.inf if state["cut"] is None else float(state["cut"])
        self._grown = float(state["grown"])
        self._updated = float(state["updated"])
        self._computed_at = float(state["computed"])
        self._rate = float(state["rate"])
        self._logged_rate = float(state["logged"])
        self.cuts = int(state["cuts"])
        self._cut_version = int(state.get("cut_version", 0))
        self.changes = deque(
            ((int(v), float(at), float(ratio)) for v, at, ratio in state["changes"]),
            maxlen=SHARED_CHANGES,
        )
        if version != self.version:
            self.version = version
            self.history.append(RateChange(self._updated, self._rate, str(state["reason"])))

    def shared(self) -> None:
        """The state dumped after the last changes was written: they are history for good."""
        self.unshared = 0
