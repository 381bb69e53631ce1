"""Redis faults benchmark: three processes share a quota through Redis, which freezes for 10 s.

    .venv/bin/python bench/bench_redis_faults.py [--seconds 60] [--freeze-at 20] [--freeze 10]

The emulator (own process) enforces RPM 600 over exact rolling 60-second windows and answers
each call after ``--latency`` seconds. Three worker processes, each an async client with
``--tasks`` tasks, share the quota and a concurrency cap of ``--concurrency`` through one
``redis-server``; ``--unavailable`` is what they do while Redis does not answer ("local" by
default: each limits itself to its share). A share ``--cancel`` of the calls is made under
``asyncio.wait_for`` with a random timeout (0-3 s), so calls are cancelled while booking, while
waiting for their start and while running. At ``--freeze-at`` seconds Redis is stopped
(SIGSTOP) for ``--freeze`` seconds, then continued (SIGCONT).

Printed: 429s at the emulator (target 0); the longest any call waited after Redis came back
against twice the fair wait (every task of every process served in turn at the quota's rate);
the calls each process completed (target: within +-15% of their mean); the leases and queue
tickets left in Redis once the workers closed (target 0).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import random
import time
from typing import Any

from bench_limiter_support import MODEL, EmulatorProcess, credentials, local_redis

from greycloud import GreyCloudAsyncClient, GreyCloudConfig
from greycloud._limiter import lua

RPM, PROCESSES = 600, 3


def _worker(
    index: int, base_url: str, redis_url: str, begin: float, options: dict[str, Any]
) -> dict[str, Any]:
    # The limiter logs each outage and each lease it could not free; the figures tell the story.
    logging.getLogger("greycloud").setLevel(logging.ERROR)
    config = GreyCloudConfig(
        project_id="test-project",
        location="us-central1",
        endpoint=base_url,
        api_version="v1",
        model=MODEL,
        rpm=RPM,
        tpm=10**9,
        max_concurrency=options["concurrency"],
        rate_limit_storage=redis_url,
        rate_limit_storage_unavailable=options["unavailable"],
    )
    rng = random.Random(1000 + index)
    done: list[tuple[float, float]] = []  # (called, answered), wall clock
    counts = {"cancelled": 0, "failed": 0}
    end = begin + options["seconds"]

    async def one(text: str) -> None:
        called = time.time()
        await client.generate_content(text)
        done.append((called, time.time()))

    async def task() -> None:
        while time.time() < end:
            try:
                if rng.random() < options["cancel"]:
                    try:
                        await asyncio.wait_for(one("cancel me"), rng.uniform(0.0, 3.0))
                    except TimeoutError:
                        counts["cancelled"] += 1
                else:
                    await one("hello")
            except Exception:  # a 429 or any other failure: counted, and the task goes on
                counts["failed"] += 1

    async def run() -> None:
        nonlocal client
        client = GreyCloudAsyncClient(config, credentials=credentials())
        await asyncio.sleep(max(0.0, begin - time.time()))
        tasks = [asyncio.create_task(task()) for _ in range(options["tasks"])]
        await asyncio.sleep(max(0.0, end - time.time()))
        for running in tasks:
            running.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        closing = time.monotonic()
        await client.aclose()
        counts["close_ms"] = round((time.monotonic() - closing) * 1000)

    client: GreyCloudAsyncClient
    asyncio.run(run())
    return {"done": done, **counts}


def _left_in_redis(port: int) -> tuple[int, int]:
    import redis

    keys = lua.keys("greycloud:limiter", MODEL)
    with redis.Redis(port=port, socket_timeout=5) as client:
        return int(client.zcard(keys.leases)), int(client.zcard(keys.queue))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--freeze-at", type=float, default=20.0)
    parser.add_argument("--freeze", type=float, default=10.0)
    parser.add_argument("--tasks", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--cancel", type=float, default=0.1)
    parser.add_argument("--unavailable", choices=("local", "wait"), default="local")
    args = parser.parse_args()
    options = {
        "seconds": args.seconds,
        "tasks": args.tasks,
        "concurrency": args.concurrency,
        "cancel": args.cancel,
        "unavailable": args.unavailable,
    }
    with (
        local_redis() as redis,
        EmulatorProcess(rpm=RPM, tpm=10**9, latency=args.latency) as server,
    ):
        server.reset()
        context = multiprocessing.get_context("spawn")
        begin = time.time() + 5.0  # every worker imported by then
        with context.Pool(PROCESSES) as pool:
            pending = pool.starmap_async(
                _worker,
                [(i, server.base_url, redis.url, begin, options) for i in range(PROCESSES)],
            )
            time.sleep(max(0.0, begin + args.freeze_at - time.time()))
            redis.pause()
            frozen = time.time()
            time.sleep(args.freeze)
            redis.resume()
            thawed = time.time()
            results = pending.get()
        stats = server.stats()
        leases, tickets = _left_in_redis(redis.port)
    _report(args, results, stats, frozen, thawed, leases, tickets)


def _report(
    args: argparse.Namespace,
    results: list[dict[str, Any]],
    stats: Any,
    frozen: float,
    thawed: float,
    leases: int,
    tickets: int,
) -> None:
    rate = RPM / 60
    fair = PROCESSES * args.tasks / rate  # every task served in turn at the quota's rate
    after = [
        answered - max(called, thawed) - args.latency
        for result in results
        for called, answered in result["done"]
        if answered > thawed
    ]
    during = [
        answered - called - args.latency
        for result in results
        for called, answered in result["done"]
        if frozen < answered <= thawed
    ]
    completed = [len(result["done"]) for result in results]
    mean = sum(completed) / len(completed)
    spread = max(abs(count - mean) / mean for count in completed)
    model = stats[MODEL]
    print(
        f"{PROCESSES} processes x {args.tasks} tasks, RPM {RPM}, {args.seconds:.0f} s, Redis "
        f"frozen {args.freeze:.0f} s from {args.freeze_at:.0f} s, '{args.unavailable}' while "
        f"frozen, {args.cancel:.0%} of calls under wait_for (0-3 s), concurrency cap "
        f"{args.concurrency}, latency {args.latency} s",
        flush=True,
    )
    print(f"  429s at the emulator: {stats.rejected} (accepted {stats.accepted})")
    print(
        f"  busiest 60 s window: {model.peak_rpm} / {RPM} requests; completed "
        f"{sum(completed)} = {sum(completed) / (rate * args.seconds):.1%} of the quota's "
        f"{rate * args.seconds:.0f}"
    )
    print(
        f"  wait after Redis came back: max {max(after):.2f} s, p50 "
        f"{sorted(after)[len(after) // 2]:.2f} s; fair wait {fair:.2f} s, so max / (2 x fair) "
        f"= {max(after) / (2 * fair):.2f}"
    )
    if during:
        print(f"  wait while frozen: max {max(during):.2f} s ({len(during)} calls answered)")
    print(
        f"  completed per process: {completed}, largest deviation from their mean "
        f"{spread:.1%} (target <= 15%)"
    )
    print(
        f"  cancelled per process: {[result['cancelled'] for result in results]}; failed "
        f"{[result['failed'] for result in results]}; close took "
        f"{[result['close_ms'] for result in results]} ms"
    )
    print(f"  left in Redis after the workers closed: {leases} leases, {tickets} queue tickets")


if __name__ == "__main__":
    main()
