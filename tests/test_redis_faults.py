"""The shared quota under Redis faults, in one world only: calls cancelled by ``asyncio.wait_for``
while Redis is frozen, and a Redis that is killed and comes back.

Each test has a ``redis-server`` of its own (``own_redis``) and the emulator; see
tests/_async/test_redis_faults.py for the faults that both clients share.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time

from greycloud import GreyCloudAsyncClient
from greycloud.testing import VertexEmulator
from tests.redis_fixture import RedisServer

MODEL = "gemini-2.5-flash"
PREFIX = "greycloud:limiter"


async def _give_up_after(client: GreyCloudAsyncClient, seconds: float, prompt: str) -> float:
    """Call, giving up after ``seconds``; how long it took to get control back."""
    began = time.monotonic()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(client.generate_content(prompt), seconds)
    return time.monotonic() - began


async def test_wait_for_always_ends_a_call_and_close_returns_while_redis_is_frozen(
    own_redis: RedisServer, vertex_emulator: VertexEmulator
) -> None:
    config = vertex_emulator.config(
        rpm=60_000,
        tpm=10**8,
        max_concurrency=8,
        rate_limit_storage=own_redis.url,
        rate_limit_storage_unavailable="wait",
    )
    client = GreyCloudAsyncClient(config, credentials=vertex_emulator.credentials)
    rng = random.Random(16)
    # Calls cancelled at every stage while Redis answers: booking, waiting, running.
    await asyncio.gather(
        *(_give_up_after(client, rng.uniform(0, 0.01), f"cancelled {i}") for i in range(300))
    )
    # Calls that complete, so that Redis is frozen with connections open: what is sent then
    # waits in Redis's sockets and runs when it thaws, after its callers left.
    await asyncio.gather(*(client.generate_content(f"complete {i}") for i in range(16)))
    await asyncio.sleep(0.5)  # what the cancelled calls gave up reaches Redis meanwhile
    own_redis.pause()
    frozen_at = time.monotonic()
    try:
        took = await asyncio.wait_for(
            asyncio.gather(*(_give_up_after(client, 0.3, f"frozen {i}") for i in range(32))), 20
        )
        assert max(took) < 1.0  # each caller's timeout ended its call
        began = time.monotonic()
        await asyncio.wait_for(client.aclose(), 20)
        assert time.monotonic() - began < 5  # closing returned, Redis still frozen
        await asyncio.sleep(3 - (time.monotonic() - frozen_at))  # frozen for 3 s in all
    finally:
        own_redis.resume()
    # The bookings that sat in Redis's sockets run now, for callers that left: they take nothing,
    # and a process that starts now finds every slot free.
    async with GreyCloudAsyncClient(config, credentials=vertex_emulator.credentials) as fresh:
        began = time.monotonic()
        await asyncio.wait_for(
            asyncio.gather(*(fresh.generate_content(f"after {i}") for i in range(8))), 10
        )
        assert time.monotonic() - began < 2
    assert own_redis.leases(PREFIX, MODEL) == 0


async def test_calls_go_on_when_redis_is_killed_and_share_again_when_it_is_back(
    own_redis: RedisServer, vertex_emulator: VertexEmulator
) -> None:
    config = vertex_emulator.config(
        rpm=60_000,
        tpm=10**8,
        max_concurrency=4,
        rate_limit_storage=own_redis.url,
        rate_limit_storage_unavailable="local",
    )
    done = 0
    stop = asyncio.Event()
    async with GreyCloudAsyncClient(config, credentials=vertex_emulator.credentials) as client:

        async def work() -> None:
            nonlocal done
            while not stop.is_set():
                assert (await client.generate_content("go on")).text
                done += 1

        tasks = [asyncio.create_task(work()) for _ in range(4)]
        await asyncio.sleep(0.3)
        own_redis.kill()
        await asyncio.sleep(1.0)
        before = done
        await asyncio.sleep(1.0)
        assert done > before  # still answering, on this process's share
        assert client.rate_limiter.stats().storage == "local fallback"
        revived = await asyncio.to_thread(lambda: RedisServer(port=own_redis.port))
        try:
            # Back on Redis within one fallback period (5 s), sharing again.
            deadline = time.monotonic() + 8
            while client.rate_limiter.stats().storage != "redis":
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), 10)
        finally:
            stop.set()
            await client.aclose()
            assert revived.leases(PREFIX, MODEL) == 0
            revived.stop()
