"""One batch of a Beam handler: the sync client on threads vs the async client on an event loop.

    .venv/bin/python bench/bench_beam_batch.py [--elements 1600] [--concurrency 64]

Why ``GreyCloudModelHandler`` runs a batch on the sync client and a thread pool: the same batch
(``--elements`` prompts, ``--concurrency`` calls in flight, no quota, the emulator in its own
process answering after 50 ms) through ``run_inference``, and through the async client with
every element a task on an event loop, the other way a worker could run it. Alternating
rounds; printed: wall and CPU seconds of each, and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable

from bench_limiter_support import credentials

from greycloud import GreyCloudAsyncClient, GreyCloudConfig
from greycloud.beam import GreyCloudModelHandler
from greycloud.testing import EmulatorProcess


def threads(config: GreyCloudConfig, prompts: list[str]) -> None:
    handler = GreyCloudModelHandler(config, credentials=credentials())
    worker = handler.load_model()
    try:
        handler.run_inference(prompts[:20], worker)  # connections open, code paths warm
        timed("sync client, threads", lambda: handler.run_inference(prompts, worker))
    finally:
        worker.close()


def event_loop(config: GreyCloudConfig, prompts: list[str]) -> None:
    async def main() -> None:
        async with GreyCloudAsyncClient(config, credentials=credentials()) as client:

            async def batch(items: list[str]) -> None:
                await asyncio.gather(*(client.generate_with_retry(p) for p in items))

            await batch(prompts[:20])
            start, cpu = time.perf_counter(), time.process_time()
            await batch(prompts)
            report("async client, event loop", start, cpu)

    asyncio.run(main())


RESULTS: dict[str, list[float]] = {}


def timed(name: str, work: Callable[[], object]) -> None:
    start, cpu = time.perf_counter(), time.process_time()
    work()
    report(name, start, cpu)


def report(name: str, start: float, cpu: float) -> None:
    wall = time.perf_counter() - start
    RESULTS.setdefault(name, []).append(wall)
    print(f"  {name:<26} {wall:6.2f} s wall  {time.process_time() - cpu:5.2f} s CPU")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--elements", type=int, default=1600)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    prompts = [f"prompt {i}" for i in range(args.elements)]
    with EmulatorProcess(latency=0.05) as server:
        config = server.config(rpm=10**6, tpm=10**9, max_concurrency=args.concurrency)
        print(f"{args.elements} elements, {args.concurrency} in flight, 50 ms per answer")
        for round_number in range(args.rounds):
            print(f"round {round_number + 1}")
            threads(config, prompts)
            event_loop(config, prompts)
    best = {name: min(walls) for name, walls in RESULTS.items()}
    ratio = best["async client, event loop"] / best["sync client, threads"]
    print(f"best of {args.rounds}: the event loop takes {ratio:.2f}x the threads' time")


if __name__ == "__main__":
    main()
