"""The Redis store: one quota shared by every process that points at the same Redis.

Each operation is one Lua script (``greycloud._limiter.lua``), atomic on the server and timed by
the server's clock. No lease outlives its owner's interest:

- Every booking carries an id made here before it is sent. A caller that gives up (cancelled,
  timed out, Redis unreachable) hands its id to the background loop, which frees whatever the id
  holds in Redis and leaves a tombstone, so a script that still runs later takes nothing.
- Every wait on Redis ends within ``timeout`` seconds and nothing is resent, so a caller's own
  timeout can always end its call and closing always returns, even while Redis is frozen.
- A background loop (a task, or a thread in the sync twin) registers this process among the
  sharers, renews the leases of calls still running (long streams) and the tickets of waiters
  every ``lease_ttl / 3`` seconds; leases and tickets of a dead process expire after
  ``lease_ttl``. It also listens for freed slots, so waiters are woken, not polling.
- Waiters for a shared concurrency slot take a ticket in Redis and are served in ticket order,
  whichever process they are in.

When Redis cannot be reached, ``unavailable`` decides, and each choice is logged:
"fail" raises ``LimiterStorageError``; "wait" retries with backoff until Redis answers; "local"
books in memory against this process's share of the quota (the quota divided by the processes
registered lately), continuing after the shared schedule it last saw, and tries Redis again
every few seconds. Back in Redis, it keeps to its share (on top of the shared schedule) for as
long as the other processes may still be booking locally.
"""

from __future__ import annotations

import bisect
import logging
import threading
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .._limiter import lua
from .._limiter.calibration import TokenEstimate
from .._limiter.core import TOKENS, Booking, LimiterCore
from .._limiter.gcra import slot_length
from .._primitives import AsyncBackground, AsyncEvent, async_redis_from_url, async_sleep
from ..errors import LimiterStorageError
from .discovery_shared import SharedDiscovery

if TYPE_CHECKING:
    from .._primitives import AsyncPubSub, AsyncRedis

logger = logging.getLogger("greycloud.limiter")

Unavailable = Literal["fail", "wait", "local"]
_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)
# How long a local fallback lasts before Redis is tried again, and the "wait" backoff bounds.
FALLBACK_RETRY = 5.0
WAIT_FIRST, WAIT_MAX = 0.1, 5.0
# The first waiter of this process in line for a slot asks again this often even when no
# wake-up came (one lost while the subscription reconnected, or a dead process's lease expired).
RETRY_QUEUED = 0.5
# How often the background loop looks for wake-ups and clean-up work, and how often at most it
# refreshes this process's registration (and so its count of sharers).
TICK = 0.1
REGISTER_EVERY = 2.0
# A booking script that runs more than this many ``timeout``s after it was sent has been given
# up by its sender (a reply is waited for one timeout at most), so it takes nothing. A slow
# connection can make a live caller's booking late too: it then simply books again.
LATE_AFTER = 1.0


def _number(value: bytes | str | int | float) -> float:
    return float(value)


class _Waiter:
    """A caller of this process in line for a shared slot, under its Redis ticket."""

    __slots__ = ("booking_id", "event", "ticket")

    def __init__(self, booking_id: str, ticket: int) -> None:
        self.booking_id = booking_id
        self.ticket = ticket
        self.event = AsyncEvent()

    def __lt__(self, other: _Waiter) -> bool:
        return self.ticket < other.ticket


class RedisStore:
    """Quota state in Redis, shared by processes; see the module docstring for faults."""

    def __init__(
        self,
        url: str,
        core: LimiterCore,
        *,
        unavailable: Unavailable = "fail",
        prefix: str = "greycloud:limiter",
        lease_ttl: float = 60.0,
        timeout: float = 1.0,
        client: AsyncRedis | None = None,
    ) -> None:
        self.url = url
        self._core = core
        self._unavailable = unavailable
        self._prefix = prefix
        self._lease_ttl = lease_ttl
        self._timeout = timeout
        self._redis = client if client is not None else async_redis_from_url(url, timeout)
        self._book_script = self._redis.register_script(lua.BOOK)
        self._refund_script = self._redis.register_script(lua.REFUND)
        self._abandon_script = self._redis.register_script(lua.ABANDON)
        self._renew_script = self._redis.register_script(lua.RENEW)
        self._reconcile_script = self._redis.register_script(lua.RECONCILE)
        self._release_script = self._redis.register_script(lua.RELEASE)
        self._report_script = self._redis.register_script(lua.REPORT)
        self._register_script = self._redis.register_script(lua.REGISTER)
        self._discovery = SharedDiscovery(self._redis, core, prefix)  # rpm="auto" models
        self._member = uuid.uuid4().hex
        self._members_key = lua.members_key(prefix)
        # Processes registered, as last seen (the larger of the last two counts: a share errs low).
        self._sharers = 0
        self._last_count = 0
        # The server's clock minus the limiter's, as last seen (None until a first answer).
        self._server_offset: float | None = None
        self._fallback: LimiterCore | None = None
        self._retry_at = 0.0
        # On the limiter's clock: how far the shared schedule ran when last seen.
        self._shared_end: dict[str, float] = {}
        # Back from a fallback, this process keeps to its share until every other process has
        # had the time to come back too (their local starts are not in Redis).
        self._rejoining: LimiterCore | None = None
        self._rejoin_until = 0.0
        # Shared with the background loop (a thread in the sync twin), so under a lock.
        self._lock = threading.Lock()
        self._held: dict[str, set[str]] = {}  # leases of running calls, by model
        self._lines: dict[str, list[_Waiter]] = {}  # this process's waiters, by model and ticket
        self._given_up: dict[str, set[str]] = {}  # ids to free in Redis, by model
        self._channels: dict[str, str] = {}  # wake-up channel -> model
        self._background = AsyncBackground()
        self._poke = AsyncEvent()
        self._pubsub: AsyncPubSub | None = None
        self._subscribed: set[str] = set()
        self._closing = False

    def storage_name(self) -> str:
        return "redis" if self._fallback is None else "local fallback"

    def _keys(self, model: str) -> lua.QuotaKeys:
        return lua.keys(self._prefix, model)

    # -- booking ------------------------------------------------------------------------------

    def try_start(
        self, model: str, tokens: int, estimate: TokenEstimate | None = None
    ) -> Booking | None:
        """Never: every shared booking is a round trip to Redis (the waiting path makes it)."""
        return None

    async def book(self, model: str, tokens: int, estimate: TokenEstimate | None = None) -> Booking:
        self._start(model)
        wait_delay = WAIT_FIRST
        while True:
            if self._fallback is not None and self._core.clock() < self._retry_at:
                return self._book_locally(self._fallback, model, tokens, estimate)
            try:
                booking = await self._book_shared(
                    model, tokens, self._not_before(model, tokens), estimate
                )
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
                return self._book_locally(self._enter_fallback(exc), model, tokens, estimate)
            if self._fallback is not None:
                self._leave_fallback()
            return booking

    def _not_before(self, model: str, tokens: int) -> float:
        """The local clock time before which a shared booking may not start: just back from a
        fallback, the start this process's share allows (0 otherwise)."""
        rejoining = self._rejoining
        if rejoining is None:
            return 0.0
        if self._core.clock() >= self._rejoin_until:
            self._rejoining = None
            return 0.0
        cost = min(self._core.cost_of(model, tokens), rejoining.quota_for(model).tpm)
        return rejoining.book(model, cost).local_start

    async def _book_shared(
        self, model: str, tokens: int, not_before: float, estimate: TokenEstimate | None
    ) -> Booking:
        """Book in Redis, in line by ticket while every shared concurrency slot is leased."""
        core = self._core
        keys = self._keys(model)
        quota = core.quota_for(model)
        dims = core.dimensions(model)
        cost = core.cost_of(model, tokens, estimate)
        booking_id = uuid.uuid4().hex
        waiter: _Waiter | None = None
        try:
            while True:
                now = core.clock()
                offset = self._server_offset
                args: list[str | int | float] = [
                    booking_id,
                    quota.max_concurrency,
                    self._lease_ttl,
                    core.margin,
                    max(0.0, not_before - now),
                    0 if offset is None else now + offset + LATE_AFTER * self._timeout,
                    len(dims),
                ]
                for index, dim in enumerate(dims):
                    units = cost if index == TOKENS else 1
                    amount: float = dim.quota
                    if index == 0 and quota.auto is not None:  # the shared discovered rate
                        amount = self._discovery.quota(model, dim.window, dim.slack, dim.burst)
                    args += [dim.name, amount, dim.window, dim.slack, dim.burst, units]
                if waiter is not None:
                    waiter.event.clear()
                sent = core.clock()
                reply = await self._book_script(keys=keys, args=args)
                received = core.clock()
                if reply[0] == b"ok":
                    booking = self._booked(reply, booking_id, model, tokens, cost, sent, received)
                    booking.breakdown = estimate
                    return booking
                if reply[0] in (b"late", b"gone"):  # only after a stall; again with a fresh id
                    if reply[0] == b"late":  # (a clock that jumped would make every one late)
                        self._server_offset = _number(reply[1]) - received
                    self._give_up(model, booking_id)  # its ticket, if it had one
                    if waiter is not None:
                        self._leave_line(model, waiter)
                        waiter = None
                    booking_id = uuid.uuid4().hex
                    continue
                if waiter is None:
                    waiter = _Waiter(booking_id, int(reply[1]))
                    self._join_line(model, waiter)
                first = self._first_in_line(model) is waiter
                await waiter.event.wait(RETRY_QUEUED if first else self._lease_ttl / 3)
        except BaseException:
            # Cancelled, timed out, unreachable: what the id holds, or will hold when a script
            # sent for it runs late, is freed in Redis by the background loop.
            self._give_up(model, booking_id)
            raise
        finally:
            if waiter is not None:
                self._leave_line(model, waiter)

    def _booked(
        self,
        reply: list[bytes],
        booking_id: str,
        model: str,
        tokens: int,
        cost: int,
        sent: float,
        received: float,
    ) -> Booking:
        server_now, start, shift, factor = (_number(value) for value in reply[1:5])
        epoch = int(reply[5])
        slots = [_number(value) for value in reply[6:]]
        slot_starts, slot_ends, rates = slots[0::3], slots[1::3], slots[2::3]
        lengths = [end - begin for begin, end in zip(slot_starts, slot_ends, strict=True)]
        booking = Booking(
            model, tokens, cost, start, shift, epoch, rates, lengths, slot_starts, slot_ends
        )
        # The server's "now" was read about halfway through the round trip.
        offset = (sent + received) / 2 - server_now
        booking.local_start = start + offset
        self._server_offset = server_now - received
        booking.lease = booking_id
        booking.source = self
        with self._lock:
            self._held.setdefault(model, set()).add(booking_id)
            end = max(slot_ends) + offset
            if end > self._shared_end.get(model, end - 1):
                self._shared_end[model] = end
        # No place in this process's start order: replies to bookings sent at once can arrive
        # in another order than Redis booked them, and each start is already its own.
        if self._discovery.applies_to(model):
            self._discovery.booked(booking)
        else:
            self._core.observe_factor(model, factor)
        return booking

    # -- this process's line for a shared slot ---------------------------------------------------

    def _join_line(self, model: str, waiter: _Waiter) -> None:
        with self._lock:
            bisect.insort(self._lines.setdefault(model, []), waiter)

    def _first_in_line(self, model: str) -> _Waiter | None:
        with self._lock:
            line = self._lines.get(model)
            return line[0] if line else None

    def _leave_line(self, model: str, waiter: _Waiter) -> None:
        """Leave the line, and let the next one ask (a slot may be free for it too)."""
        with self._lock:
            line = self._lines.get(model, [])
            if waiter in line:
                line.remove(waiter)
        self._wake_first(model)

    def _wake_first(self, model: str) -> None:
        first = self._first_in_line(model)
        if first is not None:
            first.event.set()

    # -- local fallback ---------------------------------------------------------------------------

    def _enter_fallback(self, exc: BaseException) -> LimiterCore:
        if self._fallback is None and self._rejoining is not None:
            self._fallback, self._rejoining = self._rejoining, None  # Redis flapped: go on
        if self._fallback is None:
            sharers = max(1, self._sharers)
            share = 1.0 / sharers
            core = self._core
            fallback = LimiterCore(
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
            # Slots of the shared schedule up to where this process last saw it are taken.
            with self._lock:
                for model, end in self._shared_end.items():
                    fallback.continue_after(model, end)
            self._fallback = fallback
            logger.warning(
                "rate limit storage %s unreachable (%s); limiting locally to 1/%d of the quota "
                "(%s) until it is back",
                self.url,
                _describe(exc),
                sharers,
                "processes registered lately"
                if self._sharers
                else "no other process was seen registered",
            )
        self._retry_at = self._core.clock() + FALLBACK_RETRY
        return self._fallback

    def _leave_fallback(self) -> None:
        fallback = self._fallback
        if fallback is None:
            return
        self._fallback = None
        # Its starts come after the local ones already booked, at its share for as long as the
        # others may still be limiting themselves locally (they try Redis every FALLBACK_RETRY).
        self._rejoining = fallback
        self._rejoin_until = self._core.clock() + FALLBACK_RETRY + self._timeout
        logger.warning("rate limit storage %s reachable again; sharing the quota", self.url)

    def _book_locally(
        self, core: LimiterCore, model: str, tokens: int, estimate: TokenEstimate | None
    ) -> Booking:
        cost = min(self._core.cost_of(model, tokens, estimate), core.quota_for(model).tpm)
        booking = core.book(model, cost)
        booking.estimate = tokens
        booking.breakdown = estimate
        booking.source = core
        self._core.take_ticket(booking)
        return booking

    # -- after booking --------------------------------------------------------------------------

    async def confirm(self, booking: Booking) -> float:
        if isinstance(booking.source, LimiterCore):
            return booking.source.confirm(booking)
        if self._discovery.applies_to(booking.model):
            # No retry delay to hold for under a discovered rate: only its changes move it.
            return self._discovery.adjust(booking)
        try:
            shift = _number(await self._redis.hget(self._keys(booking.model).state, "shift") or 0)
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
        """Give back a booking that never started; never waits on Redis (the caller may be
        leaving because it was cancelled)."""
        if isinstance(booking.source, LimiterCore):
            booking.source.refund(booking)
            return
        self._drop_held(booking)
        self._background.run_soon(self._refund_now, booking)

    async def _refund_now(self, booking: Booking) -> None:
        args: list[str | int | float] = [booking.lease or "", booking.shift, len(booking.rates)]
        for dim, begin, end in zip(
            self._core.dimensions(booking.model),
            booking.slot_starts,
            booking.slot_ends,
            strict=True,
        ):
            args += [dim.name, begin, end]
        try:
            await self._refund_script(keys=self._keys(booking.model), args=args)
        except _UNREACHABLE as exc:
            logger.warning(
                "could not refund a booking in %s (%s); freeing its lease later",
                self.url,
                _describe(exc),
            )
            self._give_up(booking.model, booking.lease or "")
        except BaseException:  # cut short by closing: the lease is freed by id instead
            self._give_up(booking.model, booking.lease or "")
            raise

    async def reconcile(
        self, booking: Booking, actual: int, details: Mapping[str, int] | None = None
    ) -> None:
        if isinstance(booking.source, LimiterCore):
            booking.source.reconcile(booking, actual, details)
            return
        if booking.reconciled:
            return
        booking.reconciled = True
        self._core.learn(booking, actual, details)
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
            await self._reconcile_script(keys=[self._keys(booking.model).state], args=args)
        except _UNREACHABLE as exc:
            logger.warning("could not correct token usage in %s (%s)", self.url, _describe(exc))

    async def release(self, booking: Booking, success: bool) -> None:
        """Free the lease of a call that ended; never waits on Redis (the call may have ended
        by being cancelled)."""
        if isinstance(booking.source, LimiterCore):
            booking.source.finish(booking, success)
            return
        self._drop_held(booking)
        if success and self._discovery.applies_to(booking.model):
            self._discovery.succeeded(booking.model)
        self._background.run_soon(self._release_now, booking, success)

    async def _release_now(self, booking: Booking, success: bool) -> None:
        core = self._core
        args: list[str | int | float] = [
            booking.lease or "",
            int(success),
            booking.epoch,
            core.quota_for(booking.model).rpm,
            core.recover_after,
            core.recovery_step,
        ]
        try:
            factor, recovered = await self._release_script(
                keys=self._keys(booking.model), args=args
            )
        except _UNREACHABLE as exc:
            logger.warning(
                "could not release a lease in %s (%s); freeing it later",
                self.url,
                _describe(exc),
            )
            self._give_up(booking.model, booking.lease or "")
            return
        except BaseException:  # cut short by closing: the lease is freed by id instead
            self._give_up(booking.model, booking.lease or "")
            raise
        core.observe_factor(booking.model, _number(factor))
        if int(recovered):
            logger.info(
                "rate for %s recovering: %.0f%% of the configured quota",
                booking.model,
                _number(factor) * 100,
                extra={"model": booking.model, "rate_factor": _number(factor)},
            )

    def _drop_held(self, booking: Booking) -> None:
        with self._lock:
            self._held.get(booking.model, set()).discard(booking.lease or "")

    async def report_rate_limited(
        self,
        model: str,
        retry_delay: float | None,
        per_day: bool,
        started_at: float | None,
        booking: Booking | None = None,
    ) -> None:
        core = self._core
        version = None  # the shared version the refused start was spaced by, when known
        if booking is not None:
            started_at = booking.local_start
            if booking.source is self:  # not booked by a fallback
                version = booking.epoch
        if self._fallback is not None:
            self._fallback.report_rate_limited(model, retry_delay, per_day, started_at)
        core.count_rate_limited(model, per_day)
        if per_day:
            return
        if self._discovery.applies_to(model):
            # The next tick shares it.
            self._discovery.rejected(model, started_at, version, retry_delay)
            self._poke.set()
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
            factor, decreased = await self._report_script(keys=self._keys(model), args=args)
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
                extra={
                    "model": model,
                    "status": 429,
                    "delay": delay,
                    "rate_factor": _number(factor),
                },
            )

    # -- the background loop: heartbeat, clean-up, wake-ups ---------------------------------------

    def _start(self, model: str) -> None:
        """Register this process and listen for ``model``'s freed slots (from its first use)."""
        with self._lock:
            self._channels.setdefault(self._keys(model).queue, model)
            if self._closing or self._background.loop_running():
                return
            self._background.run_loop(self._run)

    def _give_up(self, model: str, booking_id: str) -> None:
        with self._lock:
            self._given_up.setdefault(model, set()).add(booking_id)
            self._held.get(model, set()).discard(booking_id)
        self._poke.set()

    async def _run(self) -> None:
        next_register = next_renew = 0.0
        while not self._closing:
            try:
                now = self._core.clock()
                if now >= next_register:
                    next_register = now + min(REGISTER_EVERY, self._lease_ttl / 3)
                    await self._register()
                if now >= next_renew:
                    next_renew = now + self._lease_ttl / 3
                    await self._renew()
                await self._clean_up()
                for model in self._discovery.due():
                    await self._discovery.step(model, self._server_offset or 0.0)
                await self._listen()
            except Exception as exc:  # the loop must outlive any fault; it tries again
                logger.debug("rate limit storage %s: %s", self.url, _describe(exc))
                await self._drop_pubsub()
                await self._poke.wait(TICK)
                self._poke.clear()

    async def _register(self) -> None:
        """Register this process among the sharers for ``lease_ttl``, and count them."""
        count, server_now = await self._register_script(
            keys=[self._members_key], args=[self._member, self._lease_ttl]
        )
        self._server_offset = _number(server_now) - self._core.clock()
        self._sharers = max(int(count), self._last_count)
        self._last_count = int(count)

    async def _renew(self) -> None:
        """Renew the leases of this process's running calls and the tickets of its waiters."""
        with self._lock:
            holding = {model: set(ids) for model, ids in self._held.items() if ids}
            for model, line in self._lines.items():
                holding.setdefault(model, set()).update(waiter.booking_id for waiter in line)
        for model, ids in holding.items():
            if ids:
                await self._renew_script(keys=self._keys(model), args=[self._lease_ttl, *ids])

    async def _clean_up(self) -> None:
        """Tell Redis which ids callers gave up (kept for the next try when it cannot be told)."""
        with self._lock:
            given_up, self._given_up = self._given_up, {}
        try:
            for model in list(given_up):
                await self._abandon_script(
                    keys=self._keys(model), args=[2 * self._lease_ttl, *sorted(given_up[model])]
                )
                del given_up[model]
        finally:
            if given_up:
                with self._lock:
                    for model, ids in given_up.items():
                        self._given_up.setdefault(model, set()).update(ids)

    async def _listen(self) -> None:
        """Wait one tick for a freed slot's announcement, and wake this process's first waiter."""
        with self._lock:
            wanted = set(self._channels)
        if self._pubsub is None and wanted:
            self._pubsub = self._redis.pubsub()  # type: ignore[no-untyped-call, unused-ignore]
            self._subscribed = set()
        pubsub = self._pubsub
        if pubsub is None:
            await self._poke.wait(TICK)
            self._poke.clear()
            return
        new = wanted - self._subscribed
        if new:
            await pubsub.subscribe(*sorted(new))
            self._subscribed |= new
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=TICK)
        while message is not None:
            channel = message.get("channel")
            if isinstance(channel, bytes):
                channel = channel.decode()
            model = self._channels.get(str(channel))
            if model is not None:
                self._wake_first(model)
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0)

    async def _drop_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            try:
                await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]
            except Exception as exc:  # closing a broken connection: nothing left to do
                logger.debug("closing the wake-up subscription: %s", _describe(exc))

    async def aclose(self) -> None:
        """Stop the background loop, tell Redis what is still to tell (once), leave the
        sharers, close the connections. Returns within a few ``timeout``s even when Redis
        does not answer."""
        self._closing = True
        self._poke.set()
        await self._background.close(self._timeout + TICK)
        with self._lock:  # calls still running are over for Redis once the store is closed
            for model, ids in self._held.items():
                self._given_up.setdefault(model, set()).update(ids)
            self._held.clear()
        try:
            await self._clean_up()
            await self._register_script(keys=[self._members_key], args=[self._member, 0])
        except _UNREACHABLE as exc:
            logger.warning(
                "could not tell %s that this process left (%s); its leases expire by themselves",
                self.url,
                _describe(exc),
            )
        await self._drop_pubsub()
        await self._redis.aclose()


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
