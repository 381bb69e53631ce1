# DO NOT EDIT: a copy of _async_src/limiter_store.py by tools/generate.py.
# Change _async_src/limiter_store.py and run `make generate`.
# output-sha256: 725fe55dee40e894
"""Where the limiter keeps its quota state: the ``LimiterStore`` interface and the in-memory store.

A store books starts, gives back bookings that never started, corrects tokens after the
response and adapts to 429s. The in-memory store is the pure ``LimiterCore`` behind the same
interface as the Redis store (``limiter_redis``), whose operations are network calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from .._limiter.calibration import TokenEstimate
from .._limiter.core import Booking, LimiterCore


class LimiterStore(Protocol):
    """The operations the limiter needs from its quota state."""

    def storage_name(self) -> str: ...

    def try_start(
        self, model: str, tokens: int, estimate: TokenEstimate | None = None
    ) -> Booking | None:
        """Book and start at once when nothing must be waited for (else None, nothing taken)."""
        ...

    async def book(
        self, model: str, tokens: int, estimate: TokenEstimate | None = None
    ) -> Booking: ...

    async def confirm(self, booking: Booking) -> float: ...

    async def refund(self, booking: Booking) -> None: ...

    async def reconcile(
        self, booking: Booking, actual: int, details: Mapping[str, int] | None = None
    ) -> None: ...

    async def release(self, booking: Booking, success: bool) -> None: ...

    async def report_rate_limited(
        self,
        model: str,
        retry_delay: float | None,
        per_day: bool,
        started_at: float | None,
        booking: Booking | None = None,
    ) -> None:
        """A 429; ``booking`` (the refused request's, when known) says more than ``started_at``."""
        ...

    async def aclose(self) -> None: ...


class MemoryStore:
    """The quota of this process only, in a ``LimiterCore``: every operation is O(1) and local."""

    def __init__(self, core: LimiterCore) -> None:
        self._core = core

    def storage_name(self) -> str:
        return "memory"

    def try_start(
        self, model: str, tokens: int, estimate: TokenEstimate | None = None
    ) -> Booking | None:
        return self._core.try_start(model, tokens, estimate)

    async def book(self, model: str, tokens: int, estimate: TokenEstimate | None = None) -> Booking:
        return self._core.book(model, tokens, estimate)

    async def confirm(self, booking: Booking) -> float:
        return self._core.confirm(booking)

    async def refund(self, booking: Booking) -> None:
        self._core.refund(booking)

    async def reconcile(
        self, booking: Booking, actual: int, details: Mapping[str, int] | None = None
    ) -> None:
        self._core.reconcile(booking, actual, details)

    async def release(self, booking: Booking, success: bool) -> None:
        self._core.finish(booking, success)

    async def report_rate_limited(
        self,
        model: str,
        retry_delay: float | None,
        per_day: bool,
        started_at: float | None,
        booking: Booking | None = None,
    ) -> None:
        # In one process a new rate respaces every waiting booking at once: the start says all.
        if booking is not None:
            started_at = booking.local_start
        self._core.report_rate_limited(model, retry_delay, per_day, started_at)

    async def aclose(self) -> None:
        return None
