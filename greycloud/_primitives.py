"""The only hand-written async/sync pairs in greycloud.

The async source under ``_async_src/`` never names ``asyncio``, ``.aio``, ``sleep`` or ``gather``:
it calls the ``async_*`` / ``Async*`` names below. The generator maps each of them to its ``sync_*``
/ ``Sync*`` twin (see ``tools/generate.py``), and every pair here has the same call shape, so
``await async_sleep(x)`` becomes ``sync_sleep(x)`` and means the same thing.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeAlias, TypeVar

from google import genai
from google.genai.client import AsyncClient as _SdkAsyncClient

from .errors import ConfigError

T = TypeVar("T")
R = TypeVar("R")
T_co = TypeVar("T_co", covariant=True)


# -- sleeping ----------------------------------------------------------------------------------


async def async_sleep(seconds: float) -> None:
    """Wait with the event loop free."""
    await asyncio.sleep(max(0.0, seconds))


def sync_sleep(seconds: float) -> None:
    """Wait in the calling thread."""
    time.sleep(max(0.0, seconds))


# -- locks and events ---------------------------------------------------------------------------


class AsyncLock:
    """A mutual-exclusion lock for tasks (``async with lock:``)."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> None:
        await self._lock.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._lock.release()


class SyncLock:
    """A mutual-exclusion lock for threads (``with lock:``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._lock.release()


class AsyncEvent:
    """A flag tasks can wait on, with a timeout in seconds (True when set)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        self._event.clear()

    def is_set(self) -> bool:
        return self._event.is_set()

    async def wait(self, timeout: float | None = None) -> bool:
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            return False
        return True


class SyncEvent:
    """A flag threads can wait on, with a timeout in seconds (True when set)."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        self._event.clear()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._event.wait(timeout)


# -- blocking work -----------------------------------------------------------------------------


async def async_run_blocking(func: Callable[..., R], *args: object) -> R:
    """Run blocking I/O (files, Cloud Storage, gcloud) in a worker thread."""
    return await asyncio.to_thread(func, *args)


def sync_run_blocking(func: Callable[..., R], *args: object) -> R:
    """In sync code blocking work simply runs in the caller's thread."""
    return func(*args)


async def async_map_bounded(
    func: Callable[[T], Awaitable[R]], items: Iterable[T], limit: int
) -> list[R]:
    """``[await func(x) for x in items]`` with at most ``limit`` running at once, in order.

    The first failure is raised once the calls still running are cancelled; the rest never
    start.
    """
    pending = list(enumerate(items))
    results: list[R | None] = [None] * len(pending)
    queue = iter(pending)  # shared: each worker takes the next item when it is free

    async def work() -> None:
        for index, item in queue:
            results[index] = await func(item)

    await gather_or_cancel(*(work() for _ in range(min(limit, len(pending)))))
    return results  # type: ignore[return-value]  # every slot was filled


async def gather_or_cancel(*coroutines: Awaitable[object]) -> None:
    """Run the coroutines at once until all are done; the first failure (or the caller's
    cancellation) cancels the others, and is raised once they have ended."""
    tasks = [asyncio.ensure_future(coroutine) for coroutine in coroutines]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def sync_map_bounded(func: Callable[[T], R], items: Iterable[T], limit: int) -> list[R]:
    """``[func(x) for x in items]`` on at most ``limit`` threads, in order.

    The first failure is raised once the calls already running end; the rest never start.
    """
    pending = list(enumerate(items))
    results: list[R | None] = [None] * len(pending)
    queue = iter(pending)  # shared: each thread takes the next item when it is free
    lock = threading.Lock()
    failures: list[BaseException] = []

    def work() -> None:
        while True:
            with lock:
                taken = None if failures else next(queue, None)
            if taken is None:
                return
            index, item = taken
            try:
                results[index] = func(item)
            except BaseException as exc:
                with lock:
                    failures.append(exc)
                return

    with ThreadPoolExecutor(max_workers=max(1, limit)) as pool:
        for worker in [pool.submit(work) for _ in range(min(limit, len(pending)))]:
            worker.result()
    if failures:
        raise failures[0]
    return results  # type: ignore[return-value]  # every slot was filled


async def async_close_iterator(iterator: AsyncIterator[Any]) -> None:
    """Close an iterator early (an SDK stream: its HTTP response is released now, not at GC)."""
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()


def sync_close_iterator(iterator: Iterator[Any]) -> None:
    """Close an iterator early (an SDK stream: its HTTP response is released now, not at GC)."""
    close = getattr(iterator, "close", None)
    if close is not None:
        close()


# A unit of work handed to a limiter: a coroutine object, or in sync code a function to call.
AsyncWork: TypeAlias = Awaitable[T]
SyncWork: TypeAlias = Callable[[], T]


async def async_run_work(work: AsyncWork[T]) -> T:
    return await work


def sync_run_work(work: SyncWork[T]) -> T:
    return work()


# What a method that does I/O returns: something to await, or in sync code the value itself.
AsyncResult: TypeAlias = Awaitable[T]
SyncResult: TypeAlias = T


# -- streams -----------------------------------------------------------------------------------


class AsyncStream(Generic[T_co]):
    """A stream usable both ways: ``async for x in stream`` and ``async for x in await stream``
    (awaiting gives the stream itself, as google-genai's ``generate_content_stream`` does).

    Nothing starts until the first item is asked for: a stream that is never iterated sends no
    request, books no limiter slot and opens no connection.
    """

    __slots__ = ("_iterator", "_start")

    def __init__(self, start: Callable[[], AsyncIterator[T_co]]) -> None:
        self._start: Callable[[], AsyncIterator[T_co]] | None = start
        self._iterator: AsyncIterator[T_co] | None = None

    def __aiter__(self) -> AsyncStream[T_co]:
        return self

    async def __anext__(self) -> T_co:
        if self._iterator is None:
            if self._start is None:
                raise StopAsyncIteration
            self._iterator, self._start = self._start(), None
        return await self._iterator.__anext__()

    def __await__(self) -> Generator[Any, None, AsyncStream[T_co]]:
        return self._itself().__await__()

    async def _itself(self) -> AsyncStream[T_co]:
        return self

    async def aclose(self) -> None:
        """Stop early: the request under way (if any) ends and its limiter slot is freed."""
        iterator, self._iterator, self._start = self._iterator, None, None
        if iterator is not None:
            await async_close_iterator(iterator)


class SyncStream(Generic[T_co]):
    """A stream to iterate with ``for``. Nothing starts until the first item is asked for: a
    stream that is never iterated sends no request, books no limiter slot, opens no connection.
    """

    __slots__ = ("_iterator", "_start")

    def __init__(self, start: Callable[[], Iterator[T_co]]) -> None:
        self._start: Callable[[], Iterator[T_co]] | None = start
        self._iterator: Iterator[T_co] | None = None

    def __iter__(self) -> SyncStream[T_co]:
        return self

    def __next__(self) -> T_co:
        if self._iterator is None:
            if self._start is None:
                raise StopIteration
            self._iterator, self._start = self._start(), None
        return next(self._iterator)

    def close(self) -> None:
        """Stop early: the request under way (if any) ends and its limiter slot is freed."""
        iterator, self._iterator, self._start = self._iterator, None, None
        if iterator is not None:
            sync_close_iterator(iterator)


# -- the user's functions (function calling) ---------------------------------------------------


def async_check_tool(function: Callable[..., Any]) -> None:
    """Plain and ``async def`` functions may both be called from async code."""


def sync_check_tool(function: Callable[..., Any]) -> None:
    """Sync code cannot run an ``async def`` function: refuse it before any request is sent."""
    if inspect.iscoroutinefunction(function):
        raise ConfigError(
            "tools",
            f"{function.__name__} is an async def function, which the sync client cannot run; "
            "use GreyCloudAsyncClient, or pass a plain function",
        )


async def async_call_tool(function: Callable[..., Any], arguments: dict[str, Any]) -> Any:
    """Run one of the user's functions: awaited when it is ``async def``, else in a worker
    thread so that a slow function does not stall the event loop (as google-genai does)."""
    if inspect.iscoroutinefunction(function):
        return await function(**arguments)
    return await asyncio.to_thread(function, **arguments)


def sync_call_tool(function: Callable[..., Any], arguments: dict[str, Any]) -> Any:
    """Run one of the user's functions in the calling thread."""
    return function(**arguments)


# -- the SDK surface ---------------------------------------------------------------------------

AsyncSdk = _SdkAsyncClient
SyncSdk = genai.Client


def async_sdk(client: genai.Client) -> AsyncSdk:
    """The SDK's async surface (``client.aio``): ``.models``, ``.caches``, ``.batches``."""
    return client.aio


def sync_sdk(client: genai.Client) -> SyncSdk:
    """The SDK's sync surface: the client itself."""
    return client


async def async_close_sdk(client: genai.Client) -> None:
    """Close the HTTP connections of the SDK (the async ones and the idle sync ones)."""
    await client.aio.aclose()
    client.close()


def sync_close_sdk(client: genai.Client) -> None:
    """Close the HTTP connections of the SDK's sync surface."""
    client.close()


# -- background work ---------------------------------------------------------------------------


class AsyncBackground:
    """Work that goes on beside the callers: a task each, on the running event loop.

    ``run_soon`` starts a short job and returns at once (a caller that is being cancelled never
    waits for it); ``run_loop`` starts a long-running one. ``close`` waits for both at most
    ``timeout`` seconds, then cancels what is left.
    """

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.Task[None] | None = None

    def _start(self, work: Awaitable[None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def run_soon(self, func: Callable[..., Awaitable[None]], *args: object) -> None:
        self._start(func(*args))

    def run_loop(self, func: Callable[[], Awaitable[None]]) -> None:
        self._loop = self._start(func())

    def loop_running(self) -> bool:
        loop = self._loop
        return loop is not None and not loop.done() and loop.get_loop() is _running_loop()

    async def close(self, timeout: float) -> None:
        tasks = set(self._tasks)
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=timeout)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class SyncBackground:
    """Work that goes on beside the callers: short jobs run in the caller's thread at once,
    the long-running one in a daemon thread. ``close`` waits for it at most ``timeout`` seconds.
    """

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None

    def run_soon(self, func: Callable[..., None], *args: object) -> None:
        func(*args)

    def run_loop(self, func: Callable[[], None]) -> None:
        self._thread = threading.Thread(target=func, name="greycloud-limiter", daemon=True)
        self._thread.start()

    def loop_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def close(self, timeout: float) -> None:
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)


# -- Redis (an optional extra: imported only when a limiter is given redis:// storage) ----------

if TYPE_CHECKING:
    import redis
    import redis.asyncio
    import redis.asyncio.client
    import redis.client

    AsyncRedis: TypeAlias = redis.asyncio.Redis
    SyncRedis: TypeAlias = redis.Redis
    AsyncPubSub: TypeAlias = redis.asyncio.client.PubSub
    SyncPubSub: TypeAlias = redis.client.PubSub


def async_redis_from_url(url: str, timeout: float) -> AsyncRedis:
    """A ``redis.asyncio`` client for ``url`` (connects lazily, on the first command).

    Every wait on the server ends within ``timeout`` seconds, and nothing is sent twice: a
    command that timed out may still run later, so the caller decides what to do, not redis-py.
    """
    import redis.asyncio
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return redis.asyncio.Redis.from_url(
        url,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )


def sync_redis_from_url(url: str, timeout: float) -> SyncRedis:
    """A ``redis`` client for ``url`` (connects lazily, on the first command).

    Every wait on the server ends within ``timeout`` seconds, and nothing is sent twice: a
    command that timed out may still run later, so the caller decides what to do, not redis-py.
    """
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(
        url,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )
