"""The client-side limiter every call passes: requests and tokens per minute, and concurrency.

A simple, correct limiter: per model, a rolling 60-second log of (start, tokens); a request starts
when both its request and its token count fit in the window. Concurrency is one semaphore.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

from google.genai import types

from .._primitives import AsyncLock, AsyncSemaphore, AsyncWork, async_run_work, async_sleep
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

    async def reconcile(self, usage: types.GenerateContentResponseUsageMetadata | None) -> None:
        if usage is not None and usage.prompt_token_count is not None:
            self._entry[1] = float(usage.prompt_token_count)


class VertexRateLimiter:
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
        self._lock = AsyncLock()
        self._slots = AsyncSemaphore(max_concurrency)
        self._logs: dict[str, deque[list[float]]] = {}

    @classmethod
    def from_config(cls, config: GreyCloudConfig) -> VertexRateLimiter:
        return cls(config.rpm, config.tpm, config.max_concurrency)

    async def _book(self, model: str, tokens: int) -> list[float]:
        if tokens > self.tpm:
            raise RequestTooLargeError(model, tokens, self.tpm)
        while True:
            async with self._lock:
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
            await async_sleep(wait)

    @asynccontextmanager
    async def limit(self, model: str, tokens: int) -> AsyncIterator[Permit]:
        """Wait for a start inside the limits and hold a concurrency slot until the block ends."""
        async with self._slots:
            entry = await self._book(model, tokens)
            yield Permit(model, tokens, entry)

    async def report_rate_limited(
        self, model: str, retry_delay: float | None, *, per_day: bool = False
    ) -> None:
        """The server said 429 for ``model``; this simple limiter only lets the retry wait."""

    async def aclose(self) -> None:
        """Release what the limiter holds (nothing, in memory)."""

    async def call_with_limits(
        self, prompt_tokens_est: int, coro: AsyncWork[T], model: str = DEFAULT_MODEL_KEY
    ) -> T:
        """Run ``coro`` once the limits allow a request of ``prompt_tokens_est`` tokens."""
        async with self.limit(model, prompt_tokens_est):
            return await async_run_work(coro)
