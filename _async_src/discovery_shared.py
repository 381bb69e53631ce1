"""rpm="auto" shared through Redis: one discovered rate per model for every process.

The law (``greycloud._limiter.discovery``) runs in the processes; Redis keeps its one state per
model, in the quota's state hash, with the starts and successes of the last seconds counted by
all processes together (``lua.DISCOVERY``). Every ``SYNC_EVERY`` seconds, and at once after a
429, a process adds its counts, loads the shared state (its times moved from the server's clock
to its own), steps the law and writes the result back only over the version it read (compare
and set; on a conflict it reads again). So N processes probe as one client, and a 429 seen by
one slows all of them, once.

Bookings go to the shared schedule at the discovered rate. A new rate rescales the part of the
schedule still ahead: Redis rescales its requests TAT when the rate is written (and moves the
last start and the tokens TAT with it), and each process moves its own waiting bookings by the
same map (``adjust``), so bookings made before a cut are spaced for the new rate wherever they
were made.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import TYPE_CHECKING, Any

from .._limiter import lua
from .._limiter.core import Booking, LimiterCore, log_change
from .._limiter.discovery import spread

if TYPE_CHECKING:
    from .._primitives import AsyncRedis

logger = logging.getLogger("greycloud.limiter")

SYNC_EVERY = 0.25  # seconds between two steps of the shared law (a 429 steps it at once)
CONFLICTS = 3  # compare-and-set attempts per step before leaving it to the next one


class SharedDiscovery:
    """The shared discovered rates of one Redis store's auto models."""

    def __init__(self, redis: AsyncRedis, core: LimiterCore, prefix: str) -> None:
        self._core = core
        self._prefix = prefix
        self._script = redis.register_script(lua.DISCOVERY)
        # Touched by callers and by the store's background loop (a thread in the sync twin).
        self._lock = threading.Lock()
        self._starts: dict[str, int] = {}
        self._successes: dict[str, int] = {}
        # 429s: the local start and the shared version each request's start was spaced by.
        self._rejections: dict[str, list[tuple[float, int | None]]] = {}
        self._next: dict[str, float] = {}  # when each model steps next, on the local clock
        self._version: dict[str, int] = {}
        self._changes: dict[str, list[tuple[int, float, float]]] = {}  # on the local clock
        self._hold_for: dict[str, float] = {}  # retry delays to share (seconds)
        self._hold: dict[str, float] = {}  # no start before, on the local clock

    def applies_to(self, model: str) -> bool:
        return self._core.quota_for(model).auto is not None

    # -- what callers tell (no waiting on Redis) ------------------------------------------------

    def booked(self, booking: Booking) -> None:
        """A shared booking was made: a start to count; its schedule is that of the version seen
        (its ``epoch`` from now on, moved on by ``adjust``)."""
        with self._lock:
            model = booking.model
            self._starts[model] = self._starts.get(model, 0) + 1
            self._next.setdefault(model, 0.0)
            booking.epoch = self._version.get(model, 0)

    def succeeded(self, model: str) -> None:
        with self._lock:
            self._successes[model] = self._successes.get(model, 0) + 1

    def rejected(
        self, model: str, started_at: float | None, version: int | None, retry_delay: float | None
    ) -> None:
        """A 429: stepped into the shared law by the background loop within a tick; a retry
        delay the server gave holds every process's new starts.

        ``version`` (the refused booking's ``epoch``, when known) says whether its start was
        spaced for the last cut: one booked at the old spacing before this process heard of a
        cut is part of that cut's episode, however late it started."""
        now = self._core.clock()
        with self._lock:
            started = now if started_at is None else started_at
            self._rejections.setdefault(model, []).append((started, version))
            self._next[model] = 0.0
            if retry_delay:
                self._hold_for[model] = max(self._hold_for.get(model, 0.0), retry_delay)
                self._hold[model] = max(self._hold.get(model, 0.0), now + retry_delay)

    def quota(self, model: str, window: float, slack: int, burst: float) -> float:
        """The requests quota to book with, so that the store's GCRA runs at the shared rate."""
        rate = self._core.discovered_rate(model)
        return rate * (window + self._core.margin + burst) + slack - 1 + 1e-6

    def adjust(self, booking: Booking) -> float:
        """Move a waiting booking by the rate changes made since it was booked, and past a hold
        (seconds later; negative: earlier)."""
        with self._lock:
            changes = [c for c in self._changes.get(booking.model, ()) if c[0] > booking.epoch]
            hold = self._hold.get(booking.model, 0.0)
            if changes:
                booking.epoch = changes[-1][0]
        moved = 0.0
        for _, at, ratio in changes:
            start = booking.local_start
            if start > at:
                delta = (start - at) * ratio - (start - at)
                booking.move(delta)
                moved += delta
        if booking.local_start < hold:
            moved += hold - booking.local_start
            booking.move(hold - booking.local_start)
        return moved

    # -- the background loop --------------------------------------------------------------------

    def due(self) -> list[str]:
        now = self._core.clock()
        with self._lock:
            return [model for model, at in self._next.items() if at <= now]

    async def step(self, model: str, offset: float) -> None:
        """One step of ``model``'s shared law; ``offset`` is the server's clock minus ours."""
        with self._lock:
            starts = self._starts.pop(model, 0)
            successes = self._successes.pop(model, 0)
            rejections = self._rejections.pop(model, [])
            hold_for = self._hold_for.pop(model, 0.0)
            self._next[model] = self._core.clock() + SYNC_EVERY
        keys = [lua.keys(self._prefix, model).state]
        try:
            for _ in range(CONFLICTS):
                reply = await self._script(keys=keys, args=[starts, successes, "", "", 1, hold_for])
                starts = successes = 0  # counted now, whatever happens next
                hold_for = 0.0
                server_now, version, state = _parse(reply)
                with self._lock:
                    hold = float(reply[4]) - offset
                    self._hold[model] = max(self._hold.get(model, 0.0), hold)
                starts_at, successes_at = _measurements(reply, server_now)
                # The law runs on this process's clock; Redis keeps the state on its own.
                new_state, ratio, change = self._core.step_shared_discovery(
                    model,
                    _shifted(state, -offset),
                    [at - offset for at in starts_at],
                    [at - offset for at in successes_at],
                    server_now - offset,
                    rejections,
                )
                shared = json.dumps(_shifted(new_state, offset))
                written = await self._script(keys=keys, args=[0, 0, version, shared, ratio, 0])
                if int(written[3]):
                    self._core.shared_step_written(model)
                    self._seen(model, new_state)
                    if change is not None:
                        log_change(model, change)
                    return
        except BaseException:
            with self._lock:  # what Redis was not told yet, it is told next time
                self._starts[model] = self._starts.get(model, 0) + starts
                self._successes[model] = self._successes.get(model, 0) + successes
                self._rejections.setdefault(model, []).extend(rejections)
                if hold_for:
                    self._hold_for[model] = max(self._hold_for.get(model, 0.0), hold_for)
            raise
        logger.debug("discovered rate for %s: state busy, stepping again next tick", model)

    def _seen(self, model: str, state: dict[str, Any]) -> None:
        changes = [(int(v), float(at), float(ratio)) for v, at, ratio in state["changes"]]
        with self._lock:
            self._version[model] = int(state["version"])
            self._changes[model] = changes


def _shifted(state: dict[str, Any], delta: float) -> dict[str, Any]:
    """The law's state with its times moved to another clock."""
    if not state:
        return state
    moved = dict(state)
    for name in ("updated", "computed", "cut"):
        if moved.get(name) is not None:
            moved[name] = float(moved[name]) + delta
    moved["changes"] = [[v, float(at) + delta, ratio] for v, at, ratio in state["changes"]]
    return moved


def _parse(reply: list[Any]) -> tuple[float, int, dict[str, Any]]:
    raw = reply[2].decode() if isinstance(reply[2], bytes) else str(reply[2])
    return float(reply[0]), int(reply[1]), json.loads(raw) if raw else {}


def _measurements(reply: list[Any], now: float) -> tuple[list[float], list[float]]:
    """Event times from the per-second counts (starts and successes of each whole second)."""
    counts = [int(value) for value in reply[5:]]
    first = int(now) - len(counts) // 2 + 1
    return spread(counts[0::2], first, now), spread(counts[1::2], first, now)
