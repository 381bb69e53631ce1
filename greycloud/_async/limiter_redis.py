# DO NOT EDIT: a copy of _async_src/limiter_redis.py by tools/generate.py.
# Change _async_src/limiter_redis.py and run `make generate`.
# output-sha256: 536cb8046505b2fd
"""The Redis store: one quota shared by every process that points at the same Redis.

Each operation is one Lua script (``greycloud._limiter.lua``), atomic on the server and timed by
the server's clock. Concurrency slots are leases in a sorted set that expire after ``lease_ttl``
seconds, so the slots of a process that was killed come back by themselves.

When Redis cannot be reached, ``unavailable`` decides, and each choice is logged:
"fail" raises ``LimiterStorageError``; "wait" retries with backoff until Redis answers; "local"
books in memory against this process's share of the quota (the quota divided by the processes
seen sharing it lately) and tries Redis again every few seconds.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Literal

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .._limiter import lua
from .._limiter.core import TOKENS, Booking, LimiterCore
from .._limiter.gcra import slot_length
from .._primitives import async_redis_from_url, async_sleep
from ..errors import LimiterStorageError

if TYPE_CHECKING:
    from .._primitives import AsyncRedis

logger = logging.getLogger(__name__)

Unavailable = Literal["fail", "wait", "local"]
_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)
# How long a local fallback lasts before Redis is tried again, and the "wait" backoff bounds.
FALLBACK_RETRY = 5.0
WAIT_FIRST, WAIT_MAX = 0.1, 5.0
# Polling bounds while every shared concurrency slot is leased.
BUSY_FIRST, BUSY_MAX = 0.005, 0.1


def _number(value: bytes | str | int | float) -> float:
    return float(value)


class RedisStore:
    """Quota state in Redis, shared by processes; see the module docstring for outages."""

    def __init__(
        self,
        url: str,
        core: LimiterCore,
        *,
        unavailable: Unavailable = "fail",
        prefix: str = "greycloud:limiter",
        lease_ttl: float = 300.0,
        connect_timeout: float = 1.0,
        client: AsyncRedis | None = None,
    ) -> None:
        self.url = url
        self._core = core
        self._unavailable = unavailable
        self._prefix = prefix
        self._lease_ttl = lease_ttl
        self._redis = (
            client
            if client is not None
            else async_redis_from_url(
                url, socket_connect_timeout=connect_timeout, socket_timeout=connect_timeout
            )
        )
        self._book_script = self._redis.register_script(lua.BOOK)
        self._refund_script = self._redis.register_script(lua.REFUND)
        self._reconcile_script = self._redis.register_script(lua.RECONCILE)
        self._release_script = self._redis.register_script(lua.RELEASE)
        self._report_script = self._redis.register_script(lua.REPORT)
        self._member = uuid.uuid4().hex
        self._members_seen = 1
        self._fallback: LimiterCore | None = None
        self._retry_at = 0.0

    def storage_name(self) -> str:
        return "redis" if self._fallback is None else "local fallback"

    # -- booking ------------------------------------------------------------------------------

    def try_start(self, model: str, tokens: int) -> Booking | None:
        """Never: every shared booking is a round trip to Redis (the waiting path makes it)."""
        return None

    async def book(self, model: str, tokens: int) -> Booking:
        busy_delay, wait_delay = BUSY_FIRST, WAIT_FIRST
        while True:
            if self._fallback is not None and self._core.clock() < self._retry_at:
                return self._book_locally(self._fallback, model, tokens)
            try:
                booking = await self._try_book(model, tokens)
            except _UNREACHABLE as exc:
                if self._unavailable == "fail":
                    raise LimiterStorageError(self.url, _describe(exc)) from exc
                if self._unavailable == "wait":
                    logger.warning(
                        "rate limit storage %s unreachable (%s); retrying in %.1fs",
                        self.url,
                        _describe(exc),
                        wait_delay,
                    )
                    await async_sleep(wait_delay)
                    wait_delay = min(WAIT_MAX, wait_delay * 2)
                    continue
                return self._book_locally(self._enter_fallback(exc), model, tokens)
            if self._fallback is not None:
                logger.warning("rate limit storage %s reachable again; sharing the quota", self.url)
                self._fallback = None
            if booking is not None:
                return booking
            await async_sleep(busy_delay)
            busy_delay = min(BUSY_MAX, busy_delay * 2)

    async def _try_book(self, model: str, tokens: int) -> Booking | None:
        """One booking attempt; None when every shared concurrency slot is leased."""
        core = self._core
        quota = core.quota_for(model)
        dims = core.dimensions(model)
        cost = core.cost_of(model, tokens)
        lease = uuid.uuid4().hex
        args: list[str | int | float] = [
            lease,
            quota.max_concurrency,
            self._lease_ttl,
            self._member,
            core.margin,
            len(dims),
        ]
        for index, dim in enumerate(dims):
            units = cost if index == TOKENS else 1
            args += [dim.name, dim.quota, dim.window, dim.slack, dim.burst, units]
        sent = core.clock()
        reply = await self._book_script(keys=lua.keys(self._prefix, model), args=args)
        received = core.clock()
        if reply[0] == b"busy":
            return None
        server_now, start, shift, factor = (_number(value) for value in reply[1:5])
        epoch, members = int(reply[5]), int(reply[6])
        slots = [_number(value) for value in reply[7:]]
        slot_starts, slot_ends, rates = slots[0::3], slots[1::3], slots[2::3]
        lengths = [end - begin for begin, end in zip(slot_starts, slot_ends, strict=True)]
        booking = Booking(
            model, tokens, cost, start, shift, epoch, rates, lengths, slot_starts, slot_ends
        )
        # The server's "now" was read about halfway through the round trip.
        booking.local_start = (sent + received) / 2 + (start - server_now)
        booking.lease = lease
        booking.source = self
        core.take_ticket(booking)
        self._members_seen = max(1, members)
        core.observe_factor(model, factor)
        return booking

    def _enter_fallback(self, exc: BaseException) -> LimiterCore:
        if self._fallback is None:
            share = 1.0 / self._members_seen
            core = self._core
            self._fallback = LimiterCore(
                core.default.scaled(share),
                {model: quota.scaled(share) for model, quota in core.overrides.items()},
                clock=core.clock,
                token_slack=core.token_slack,
                margin=core.margin,
                backoff=core.backoff,
                recovery_step=core.recovery_step,
                min_factor=core.min_factor,
                recover_after=core.recover_after,
                calibrate=False,
            )
            logger.warning(
                "rate limit storage %s unreachable (%s); limiting locally to 1/%d of the quota "
                "until it is back",
                self.url,
                _describe(exc),
                self._members_seen,
            )
        self._retry_at = self._core.clock() + FALLBACK_RETRY
        return self._fallback

    def _book_locally(self, core: LimiterCore, model: str, tokens: int) -> Booking:
        cost = min(self._core.cost_of(model, tokens), core.quota_for(model).tpm)
        booking = core.book(model, cost)
        booking.estimate = tokens
        booking.source = core
        self._core.take_ticket(booking)
        return booking

    # -- after booking --------------------------------------------------------------------------

    async def confirm(self, booking: Booking) -> float:
        if isinstance(booking.source, LimiterCore):
            return booking.source.confirm(booking)
        try:
            shift = _number(await self._redis.hget(self._state(booking), "shift") or 0)
        except _UNREACHABLE as exc:
            logger.warning("could not check for a hold in %s (%s)", self.url, _describe(exc))
            return 0.0
        delta = shift - booking.shift
        if delta <= 0:
            return 0.0
        booking.shift = shift
        booking.move(delta)
        return delta

    async def refund(self, booking: Booking) -> None:
        if isinstance(booking.source, LimiterCore):
            booking.source.refund(booking)
            return
        state, leases, _ = lua.keys(self._prefix, booking.model)
        args: list[str | int | float] = [booking.lease or "", booking.shift, len(booking.rates)]
        for dim, begin, end in zip(
            self._core.dimensions(booking.model),
            booking.slot_starts,
            booking.slot_ends,
            strict=True,
        ):
            args += [dim.name, begin, end]
        try:
            await self._refund_script(keys=[state, leases], args=args)
        except _UNREACHABLE as exc:
            logger.warning(
                "could not refund a booking in %s (%s); its lease expires by itself",
                self.url,
                _describe(exc),
            )

    async def reconcile(self, booking: Booking, actual: int) -> None:
        if isinstance(booking.source, LimiterCore):
            booking.source.reconcile(booking, actual)
            return
        if booking.reconciled:
            return
        booking.reconciled = True
        self._core.learn(booking.model, booking.estimate, actual)
        slack = self._core.dimensions(booking.model)[TOKENS].slack
        new_length = slot_length(actual, slack, booking.rates[TOKENS])
        args: list[str | float] = [
            "tokens",
            booking.slot_ends[TOKENS],
            booking.start,
            booking.lengths[TOKENS],
            new_length,
        ]
        try:
            await self._reconcile_script(keys=[self._state(booking)], args=args)
        except _UNREACHABLE as exc:
            logger.warning("could not correct token usage in %s (%s)", self.url, _describe(exc))

    async def release(self, booking: Booking, success: bool) -> None:
        if isinstance(booking.source, LimiterCore):
            booking.source.finish(booking, success)
            return
        core = self._core
        state, leases, _ = lua.keys(self._prefix, booking.model)
        args: list[str | int | float] = [
            booking.lease or "",
            int(success),
            booking.epoch,
            core.quota_for(booking.model).rpm,
            core.recover_after,
            core.recovery_step,
        ]
        try:
            factor, recovered = await self._release_script(keys=[state, leases], args=args)
        except _UNREACHABLE as exc:
            logger.warning(
                "could not release a lease in %s (%s); it expires by itself",
                self.url,
                _describe(exc),
            )
            return
        core.observe_factor(booking.model, _number(factor))
        if int(recovered):
            logger.info(
                "rate for %s recovering: %.0f%% of the configured quota",
                booking.model,
                _number(factor) * 100,
            )

    async def report_rate_limited(
        self, model: str, retry_delay: float | None, per_day: bool
    ) -> None:
        core = self._core
        if self._fallback is not None:
            self._fallback.report_rate_limited(model, retry_delay, per_day)
        core.count_rate_limited(model, per_day)
        if per_day:
            return
        delay = 1.0 if retry_delay is None else max(0.0, retry_delay)
        names = [dim.name for dim in core.dimensions(model)]
        args: list[str | int | float] = [
            delay,
            core.backoff,
            core.min_factor,
            len(names),
            *names,
        ]
        try:
            factor, decreased = await self._report_script(
                keys=[lua.keys(self._prefix, model)[0]], args=args
            )
        except _UNREACHABLE as exc:
            logger.warning("could not share a 429 through %s (%s)", self.url, _describe(exc))
            return
        core.observe_factor(model, _number(factor))
        if int(decreased):
            logger.warning(
                "429 for %s: slowing to %.0f%% of the configured quota, holding new starts "
                "for %.1fs",
                model,
                _number(factor) * 100,
                delay,
            )

    async def aclose(self) -> None:
        await self._redis.aclose()

    def _state(self, booking: Booking) -> str:
        return lua.keys(self._prefix, booking.model)[0]


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
