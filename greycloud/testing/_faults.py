"""Scripted faults: what can go wrong, and the queue that decides which request gets it.

A :class:`Fault` is a plain description; the server acts it out. Faults are matched in the
order they were injected; the first one that matches a request and has uses left applies, and
one use is consumed. Stream-only faults (``event_delay``, ``cut_stream``, ``half_event``,
``error_event``) only match streaming requests, so a plain call never consumes them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ._rpc import (
    REQUESTS_QUOTA_ID,
    RETRY_INFO,
    error_body,
    expired_token_body,
    format_duration,
    quota_details,
    status_for,
)

if TYPE_CHECKING:
    from ._records import RequestRecord

FaultKind = Literal[
    "status", "delay", "event_delay", "cut_stream", "half_event", "error_event", "drop"
]
_STREAM_ONLY = frozenset({"event_delay", "cut_stream", "half_event", "error_event"})


@dataclass(frozen=True)
class Fault:
    """One thing to go wrong. Build with the class methods; pass to ``VertexEmulator.inject``."""

    kind: FaultKind
    seconds: float = 0.0
    after_events: int = 0
    reset: bool = False
    code: int = 500
    body: dict[str, Any] | None = None
    retry_after: float | None = None

    @property
    def stream_only(self) -> bool:
        return self.kind in _STREAM_ONLY

    @classmethod
    def status(
        cls,
        code: int,
        message: str | None = None,
        *,
        retry_delay: float | None = None,
        status: str | None = None,
        quota_id: str | None = None,
    ) -> Fault:
        """Answer with HTTP ``code`` and a google.rpc error body.

        A 429 carries a QuotaFailure (``quota_id``, default a per-minute id), a RetryInfo when
        ``retry_delay`` is given, and a ``Retry-After`` header. Any code may carry a RetryInfo.
        """
        details: list[dict[str, Any]] = []
        if code == 429:
            details = quota_details(quota_id or REQUESTS_QUOTA_ID, retry_delay)
        elif retry_delay is not None:
            details = [{"@type": RETRY_INFO, "retryDelay": format_duration(retry_delay)}]
        body = error_body(code, message, status=status or status_for(code), details=details)
        return cls("status", code=code, body=body, retry_after=retry_delay)

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """Wait ``seconds`` before the first byte, then answer normally."""
        return cls("delay", seconds=seconds)

    @classmethod
    def event_delay(cls, seconds: float) -> Fault:
        """Streams: wait ``seconds`` before each event."""
        return cls("event_delay", seconds=seconds)

    @classmethod
    def cut_stream(cls, after_events: int, reset: bool = False) -> Fault:
        """Streams: send ``after_events`` events, then close (``reset=True``: with a TCP RST)."""
        return cls("cut_stream", after_events=after_events, reset=reset)

    @classmethod
    def half_event(cls, after_events: int) -> Fault:
        """Streams: send ``after_events`` events, then half of the next one, then close."""
        return cls("half_event", after_events=after_events)

    @classmethod
    def error_event(cls, after_events: int, code: int = 500, message: str | None = None) -> Fault:
        """Streams: send ``after_events`` events, then a ``data:`` event with an error, then end."""
        return cls(
            "error_event", after_events=after_events, code=code, body=error_body(code, message)
        )

    @classmethod
    def drop(cls) -> Fault:
        """Close the connection before sending anything."""
        return cls("drop")

    @classmethod
    def expired_token(cls) -> Fault:
        """401 UNAUTHENTICATED with ACCESS_TOKEN_EXPIRED, as for a token past its expiry."""
        return cls("status", code=401, body=expired_token_body())


@dataclass
class _Armed:
    fault: Fault
    remaining: int | None
    path: str | None
    model: str | None
    match: Callable[[RequestRecord], bool] | None


class FaultQueue:
    """Injected faults in order; thread-safe because tests inject from their own thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: list[_Armed] = []

    def __bool__(self) -> bool:
        return bool(self._armed)

    def add(
        self,
        fault: Fault,
        *,
        times: int | None,
        path: str | None,
        model: str | None,
        match: Callable[[RequestRecord], bool] | None,
    ) -> None:
        if times is not None and times < 1:
            raise ValueError(f"times must be a positive count or None (forever), got {times}")
        with self._lock:
            self._armed.append(_Armed(fault, times, path, model, match))

    def clear(self) -> None:
        with self._lock:
            self._armed.clear()

    def take(self, record: RequestRecord, streaming: bool) -> Fault | None:
        """The fault for this request, consuming one use, or None."""
        with self._lock:
            for armed in self._armed:
                fault = armed.fault
                if fault.stream_only and not streaming:
                    continue
                if armed.path is not None and armed.path not in record.path:
                    continue
                if armed.model is not None and armed.model != record.model:
                    continue
                if armed.match is not None and not armed.match(record):
                    continue
                if armed.remaining is not None:
                    armed.remaining -= 1
                    if armed.remaining == 0:
                        self._armed.remove(armed)
                return fault
        return None
