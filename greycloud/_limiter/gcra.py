"""GCRA arithmetic: where a booking may start so that no rolling window exceeds its quota.

Each dimension of a quota (requests per minute, tokens per minute, requests per day) keeps one
number, its *theoretical arrival time* (TAT): the end of the last slot booked on a virtual
timeline that fills at ``rate`` units per second. A booking of cost ``c`` takes the next slot of
length ``L`` and starts at the middle of it (``THETA``). A request with several dimensions starts
at the latest of their earliest starts, and every dimension then places its slot around that
common start: one decision for all dimensions, O(1) whatever the cost.

Why this never overfills a rolling window of ``W`` seconds (the server's rule, Vertex and the
emulator alike). Take the requests that start inside one window, first ``m`` and last ``n``. The
slots of the requests between them lie inside ``[end(m), start_of_slot(n)]`` and do not overlap,
so together they cost at most ``rate * (s_n - s_m)`` minus the halves of the first and last slot
that stick out, which leaves::

    sum < rate * (W + margin + burst) + (c_m - tail_m) + (c_n - head_n)

where ``head``/``tail`` are the parts of a slot (in units) before/after its start. With the start
in the middle of a slot of cost ``c <= slack`` both terms are at most ``slack / 2``; a larger
request gets a longer slot (``2c - slack``, the part above the slack counted twice) so that its
head and tail each cover all but ``slack / 2`` of it. Costs are integers, so ``sum <= quota``
whenever ``rate * (W + margin + burst) + slack <= quota + 1``, which is how ``Dimension.rate``
chooses the rate. ``margin`` covers the spread between booked start and arrival at the server
(timer wake-up, sending, network); ``burst`` lets a start run ahead of its slot (used for the
per-day quota, where half the day's quota may go at once).

A request larger than the quota could never fit and is refused before it reaches this module.
"""

from __future__ import annotations

from dataclasses import dataclass

# Where a start sits inside its slot: the middle, so the first and the last request of a window
# each stick out of it by at most half the slack.
THETA = 0.5
# Keeps float rounding on the safe side of the integer bound.
_EPSILON = 1e-6


@dataclass(frozen=True)
class Dimension:
    """One quota dimension: at most ``quota`` units in any ``window`` seconds."""

    name: str
    quota: int
    window: float
    slack: int
    burst: float = 0.0

    def rate(self, margin: float) -> float:
        """Units per second at full speed, the largest that keeps every window within quota."""
        return (self.quota + 1 - self.slack - _EPSILON) / (self.window + margin + self.burst)


def slot_length(cost: float, slack: float, rate: float) -> float:
    """Seconds of the virtual timeline a booking of ``cost`` occupies at ``rate``."""
    over = cost - slack
    return (cost + over if over > 0 else cost) / rate


def earliest_start(
    now: float, tats: list[float], lengths: list[float], bursts: list[float]
) -> float:
    """The earliest common start, at or after ``now``, that every dimension allows."""
    start = now
    for tat, length, burst in zip(tats, lengths, bursts, strict=True):
        half = THETA * length
        slot_start = tat if tat > now - half else now - half
        candidate = slot_start + half - burst
        if candidate > start:
            start = candidate
    return start


def place(tats: list[float], lengths: list[float], start: float) -> tuple[list[float], list[float]]:
    """Book every dimension's slot around ``start``: (slot starts, slot ends = new TATs).

    ``tats`` is updated in place; the slot starts and ends are what a refund or a
    reconciliation needs later.
    """
    starts: list[float] = []
    ends: list[float] = []
    for index, (tat, length) in enumerate(zip(tats, lengths, strict=True)):
        earliest = start - THETA * length
        slot_start = tat if tat > earliest else earliest
        end = slot_start + length
        tats[index] = end
        starts.append(slot_start)
        ends.append(end)
    return starts, ends


def same_time(a: float, b: float) -> bool:
    """Whether two stored times are the same instant (they round-trip through text in Redis)."""
    return abs(a - b) <= 1e-6
