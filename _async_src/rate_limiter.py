"""``VertexRateLimiter``: every call waits here for a start inside its model's quota.

Each request books its start across requests per minute, tokens per minute and (optionally)
requests per day in one O(1) step (``greycloud._limiter``), then sleeps exactly until that start:
first come, first served, with no polling. A concurrency slot, handed out in arrival order, is
held from before the booking until the ``limit`` block ends in any way. After the response,
``Permit.reconcile`` corrects the token estimate with the real usage; a request cancelled before
its start gives its booking back. 429s slow the rate and hold new starts until the server's
retry delay; successes bring the rate back step by step.

The quota lives in memory, or in Redis (``storage="redis://..."``) so that many processes share
one quota. One limiter may be shared by every task of an event loop (or, for the generated sync
twin, every thread).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Literal, TypeVar

from google.genai import types

from .._extras import missing_extra
from .._limiter.calibration import TokenEstimate
from .._limiter.core import Booking, LimiterCore
from .._limiter.quota import Limit, TokenCounting, build_quotas, counted_tokens, prompt_details
from .._limiter.stats import LimiterStats
from .._primitives import AsyncEvent, AsyncWork, async_run_work, async_sleep
from ..config import STORAGE_UNAVAILABLE, TOKEN_COUNTING, GreyCloudConfig
from ..errors import ConfigError
from .limiter_store import LimiterStore, MemoryStore

T = TypeVar("T")
DEFAULT_MODEL_KEY = "default"
# Seconds allowed between a booked start and the server receiving the request.
CLOCK_MARGIN = 0.2


class Permit:
    """A granted start, valid for the whole ``limit`` block."""

    def __init__(self, limiter: VertexRateLimiter, booking: Booking, waited: float) -> None:
        self._limiter = limiter
        self._booking = booking
        self.model = booking.model
        self.tokens = booking.estimate
        self.start = booking.local_start
        """When the request was booked to start, on the limiter's clock."""
        self.waited = waited
        """Seconds spent waiting for the start (concurrency slot included)."""

    async def reconcile(self, usage: types.GenerateContentResponseUsageMetadata | None) -> None:
        """Correct the booked tokens with the response's usage (once; None is ignored).

        The usage's prompt tokens by modality, when given, calibrate each modality apart.
        """
        actual = counted_tokens(usage, self._limiter.token_counting)
        if actual is not None:
            await self.reconcile_tokens(actual, prompt_details(usage))

    async def reconcile_tokens(self, actual: int, details: Mapping[str, int] | None = None) -> None:
        """Correct the booked tokens with a count the service reported (e.g. an embedding
        response's), by modality when ``details`` gives them."""
        await self._limiter._store.reconcile(self._booking, actual, details)


class _LimitBlock:
    """What ``limit`` returns: the way into a limited block (waiting for its start) and out.

    A plain class rather than a generator-based context manager: this runs on every call.
    """

    __slots__ = ("_booking", "_estimate", "_limiter", "_model", "_tokens")

    def __init__(self, limiter: VertexRateLimiter, model: str, tokens: int | TokenEstimate) -> None:
        self._limiter = limiter
        self._model = model
        self._estimate: TokenEstimate | None = None
        if isinstance(tokens, TokenEstimate):
            self._estimate = tokens
            tokens = tokens.total
        self._tokens = tokens
        self._booking: Booking | None = None

    async def __aenter__(self) -> Permit:
        limiter, model, tokens, estimate = self._limiter, self._model, self._tokens, self._estimate
        limiter._core.check_size(model, tokens)
        # Nothing to wait for (the common case): slot, booking, start and turn in one step.
        booking = limiter._store.try_start(model, tokens, estimate)
        waited = 0.0
        if booking is None:
            booking, waited = await limiter._wait_for_slot_and_start(model, tokens, estimate)
        self._booking = booking
        return Permit(limiter, booking, waited)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        booking, limiter = self._booking, self._limiter
        assert booking is not None, "a limit block is left only after it was entered"
        self._booking = None
        # However the block ended: out of flight, the slot freed (or handed on), then the store.
        waker = limiter._core.end(booking.model)
        if waker is not None:
            waker.set()
        await limiter._store.release(booking, exc_type is None)


class VertexRateLimiter:
    """Keeps calls inside each model's requests, tokens and concurrency limits.

    ``rpm``, ``tpm`` and ``max_concurrency`` apply to every model; ``model_limits`` overrides
    them per model (keys rpm, tpm, rpd, max_concurrency, auto_max, auto_floor). ``rpm="auto"``
    discovers the rate a shared pool serves (Vertex AI's Dynamic Shared Quota), between
    ``auto_floor`` and ``auto_max`` requests per minute; ``tpm="auto"`` sets no token limit
    (the discovered request rate absorbs token pressure). ``token_counting`` says which tokens
    a response used: "input" (how Vertex counts) or "total" (input, output and thinking).
    ``storage`` is None (this process only) or a redis:// URL shared by many processes, with
    ``storage_unavailable`` choosing what happens when Redis cannot be reached.

    Tuning, rarely needed: ``token_slack`` (share of the token quota kept so that no 60-second
    window can overfill; requests larger than it occupy a longer slot), ``clock_margin``
    (seconds allowed between a booked start and the server receiving the request), ``backoff``
    and ``recovery_step`` (rate change on a 429 and per recovery step), ``lease_ttl`` (seconds
    after which the Redis concurrency leases and queue tickets of a dead process expire; a live
    one renews its own every ``lease_ttl / 3``), ``redis_timeout`` (the longest any one wait on
    Redis may take), ``calibrate`` (scale token estimates by the observed ratio of real usage
    to estimate).
    """

    def __init__(
        self,
        rpm: Limit = 60,
        tpm: Limit = 250_000,
        max_concurrency: int = 10,
        *,
        model_limits: Mapping[str, Mapping[str, Limit]] | None = None,
        auto_max: int | None = None,
        auto_floor: int | None = None,
        token_counting: TokenCounting = "input",
        storage: str | None = None,
        storage_unavailable: Literal["fail", "wait", "local"] = "fail",
        clock: Callable[[], float] = time.monotonic,
        token_slack: float = 0.015,
        clock_margin: float = CLOCK_MARGIN,
        backoff: float = 0.7,
        recovery_step: float = 0.05,
        lease_ttl: float = 60.0,
        redis_timeout: float = 1.0,
        redis_prefix: str = "greycloud:limiter",
        calibrate: bool = True,
    ) -> None:
        if token_counting not in TOKEN_COUNTING:
            raise ConfigError("token_counting", f"must be input or total, got {token_counting!r}")
        if storage_unavailable not in STORAGE_UNAVAILABLE:
            raise ConfigError(
                "rate_limit_storage_unavailable",
                f"must be fail, wait or local, got {storage_unavailable!r}",
            )
        default, overrides = build_quotas(
            rpm, tpm, max_concurrency, model_limits, auto_max=auto_max, auto_floor=auto_floor
        )
        self.rpm = rpm
        self.tpm = tpm
        self.max_concurrency = max_concurrency
        self.model_limits = model_limits
        self.token_counting: TokenCounting = token_counting
        self._clock = clock
        self._core = LimiterCore(
            default,
            overrides,
            clock=clock,
            token_slack=token_slack,
            margin=clock_margin,
            backoff=backoff,
            recovery_step=recovery_step,
            calibrate=calibrate,
        )
        self._store: LimiterStore
        if storage is None:
            self._store = MemoryStore(self._core)
        else:
            try:
                from .limiter_redis import RedisStore
            except ImportError as exc:
                raise ConfigError(
                    "rate_limit_storage", missing_extra("Redis storage", "redis", exc.name)
                ) from exc
            self._store = RedisStore(
                storage,
                self._core,
                unavailable=storage_unavailable,
                prefix=redis_prefix,
                lease_ttl=lease_ttl,
                timeout=redis_timeout,
            )

    @classmethod
    def from_config(
        cls, config: GreyCloudConfig, *, clock_margin: float = CLOCK_MARGIN
    ) -> VertexRateLimiter:
        """A limiter with the limits, token counting and storage of ``config``."""
        return cls(
            config.rpm,
            config.tpm,
            config.max_concurrency,
            model_limits=config.model_limits,
            auto_max=config.auto_max,
            auto_floor=config.auto_floor,
            token_counting=config.token_counting,
            storage=config.rate_limit_storage,
            storage_unavailable=config.rate_limit_storage_unavailable,
            clock_margin=clock_margin,
        )

    # -- waiting for a start --------------------------------------------------------------------

    def limit(self, model: str, tokens: int | TokenEstimate) -> _LimitBlock:
        """Wait for a start inside ``model``'s limits; hold a concurrency slot for the block.

        ``tokens`` is the prompt's token estimate: a number, or a ``TokenEstimate`` by modality
        (calibrated per modality against the response's usage).

        Entering the returned context manager gives the ``Permit``. A request larger than the
        whole token quota raises ``RequestTooLargeError`` at once. Leaving the block normally
        counts as a success; leaving it before the start (cancelled) gives the booking back.
        """
        return _LimitBlock(self, model, tokens)

    async def _wait_for_slot_and_start(
        self, model: str, tokens: int, estimate: TokenEstimate | None
    ) -> tuple[Booking, float]:
        """The way in when something must be waited for: (the started booking, seconds waited).

        A concurrency slot first (in arrival order), then the booking, its start and its turn;
        leaving before the start gives back whatever was taken.
        """
        core = self._core
        entered = self._clock()
        core.enter_waiting(model)
        booking: Booking | None = None
        holds_slot = started = False
        try:
            await self._acquire_slot(model)
            holds_slot = True
            booking = await self._store.book(model, tokens, estimate)
            await self._wait_for_start(booking)
            await self._wait_for_turn(booking)
            started = True
        finally:
            waited = self._clock() - entered
            core.leave_waiting(model, waited, started)
            if booking is not None:
                self._pass_turn(booking)
            if not started:
                try:
                    if booking is not None:
                        await self._store.refund(booking)
                finally:
                    if holds_slot:
                        self._release_slot(model)
        assert booking is not None
        return booking, waited

    async def _wait_for_start(self, booking: Booking) -> None:
        recheck = self._core.recheck_interval(booking.model)
        while True:
            delay = booking.local_start - self._clock()
            if delay > 0:
                await async_sleep(min(delay, recheck))
            # A 429 reported meanwhile may have moved every pending start later (or, under a
            # discovered rate, a new rate moved it either way).
            moved = await self._store.confirm(booking)
            if moved <= 0 and booking.local_start <= self._clock():
                return

    async def _wait_for_turn(self, booking: Booking) -> None:
        """Start strictly in booking order, even when an earlier waiter was woken late."""
        if self._core.my_turn(booking):
            return
        event = AsyncEvent()
        if not self._core.my_turn(booking, event):
            await event.wait()

    def _pass_turn(self, booking: Booking) -> None:
        waker = self._core.pass_turn(booking)
        if waker is not None:
            waker.set()

    async def _acquire_slot(self, model: str) -> None:
        if self._core.try_acquire(model):
            return
        event = AsyncEvent()
        if self._core.acquire_or_enqueue(model, event):
            return
        try:
            await event.wait()
        except BaseException:
            if not self._core.abandon(model, event):
                # The slot was handed over just as we left: pass it on.
                self._release_slot(model)
            raise

    def _release_slot(self, model: str) -> None:
        waker = self._core.release_slot(model)
        if waker is not None:
            waker.set()

    # -- feedback -------------------------------------------------------------------------------

    async def report_rate_limited(
        self,
        model: str,
        retry_delay: float | None,
        *,
        per_day: bool = False,
        started_at: float | None = None,
        permit: Permit | None = None,
    ) -> None:
        """The server answered 429 for ``model``: slow down and hold new starts.

        ``retry_delay`` is the server's RetryInfo in seconds (None: a short default hold). A
        per-day quota is only counted: waiting minutes cannot help it. The refused request's
        ``permit`` (or at least its ``Permit.start`` as ``started_at``) lets a discovered rate
        (``rpm="auto"``) cut once per overload rather than once per request that was already
        in flight or spaced for the rate before the last cut.
        """
        booking = None if permit is None else permit._booking
        await self._store.report_rate_limited(model, retry_delay, per_day, started_at, booking)

    async def call_with_limits(
        self, prompt_tokens_est: int, coro: AsyncWork[T], model: str = DEFAULT_MODEL_KEY
    ) -> T:
        """Run ``coro`` once the limits allow a request of ``prompt_tokens_est`` tokens.

        A result with ``usage_metadata`` reconciles the estimate by itself.
        """
        started = False
        try:
            async with self.limit(model, prompt_tokens_est) as permit:
                started = True
                result = await async_run_work(coro)
                usage = getattr(result, "usage_metadata", None)
                if isinstance(usage, types.GenerateContentResponseUsageMetadata):
                    await permit.reconcile(usage)
                return result
        finally:
            if not started and inspect.iscoroutine(coro):
                coro.close()  # never run: close it rather than leave it un-awaited

    def media_average(self, model: str, modality: str) -> float | None:
        """Tokens per media part of unknown size learned for ``model`` (None: none seen yet)."""
        return self._core.media_average(model, modality)

    # -- state ----------------------------------------------------------------------------------

    def stats(self) -> LimiterStats:
        """Waiting and in-flight requests, effective rates per model, 429s and time waited."""
        return self._core.stats(self._store.storage_name())

    async def aclose(self) -> None:
        """Release the storage's connections (Redis); the limiter must not be used after."""
        await self._store.aclose()

    async def __aenter__(self) -> VertexRateLimiter:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
