# DO NOT EDIT: generated from _async_src/rate_limiter.py by tools/generate.py.
# Change _async_src/rate_limiter.py and run `make generate`.
# source-sha256: f32c3481df8d0666
"""The client-side limiter every call passes: requests and tokens per minute, and concurrency.

A simple, correct limiter: per model, a rolling 60-second log of (start, tokens); a request starts
when both its request and its token count fit in the window. Concurrency is one semaphore.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from google.genai import types

from .._primitives import SyncLock, SyncSemaphore, SyncWork, sync_run_work, sync_sleep
from ..config import GreyCloudConfig
from ..errors import RequestTooLargeError

T = TypeVar("T")
WINDOW = 60.0
DEFAULT_MODEL_KEY = "default"


@dataclass
class Permit:
    """A granted start. ``reconcile`` corrects the token estimate with the real usage."""

    model: str
    tokens: int
    _entry: list[float]

    def reconcile(self, usage: types.GenerateContentResponseUsageMetadata | None) -> None:
        if usage is not None and usage.prompt_token_count is not None:
            self._entry[1] = float(usage.prompt_token_count)


class SyncVertexRateLimiter:
    """Keeps calls inside requests-per-minute, tokens-per-minute and concurrency limits."""

    def __init__(
        self,
        rpm: int = 60,
        tpm: int = 250_000,
        max_concurrency: int = 10,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rpm = rpm
        self.tpm = tpm
        self.max_concurrency = max_concurrency
        self._clock = clock
        self._lock = SyncLock()
        self._slots = SyncSemaphore(max_concurrency)
        self._logs: dict[str, deque[list[float]]] = {}

    @classmethod
    def from_config(cls, config: GreyCloudConfig) -> SyncVertexRateLimiter:
        return cls(config.rpm, config.tpm, config.max_concurrency)

    def _book(self, model: str, tokens: int) -> list[float]:
        if tokens > self.tpm:
            raise RequestTooLargeError(model, tokens, self.tpm)
        while True:
            with self._lock:
                now = self._clock()
                log = self._logs.setdefault(model, deque())
                while log and log[0][0] <= now - WINDOW:
                    log.popleft()
                used = sum(entry[1] for entry in log)
                if len(log) < self.rpm and used + tokens <= self.tpm:
                    entry = [now, float(tokens)]
                    log.append(entry)
                    return entry
                wait = log[0][0] + WINDOW - now
            sync_sleep(wait)

    @contextmanager
    def limit(self, model: str, tokens: int) -> Iterator[Permit]:
        """Wait for a start inside the limits and hold a concurrency slot until the block ends."""
        with self._slots:
            entry = self._book(model, tokens)
            yield Permit(model, tokens, entry)

    def report_rate_limited(
        self, model: str, retry_delay: float | None, *, per_day: bool = False
    ) -> None:
        """The server said 429 for ``model``; this simple limiter only lets the retry wait."""

    def close(self) -> None:
        """Release what the limiter holds (nothing, in memory)."""

    def call_with_limits(
        self, prompt_tokens_est: int, coro: SyncWork[T], model: str = DEFAULT_MODEL_KEY
    ) -> T:
        """Run ``coro`` once the limits allow a request of ``prompt_tokens_est`` tokens."""
        with self.limit(model, prompt_tokens_est):
            return sync_run_work(coro)
