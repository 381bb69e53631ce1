"""Limiter benchmark (2): four processes share one quota through Redis, or overshoot without it.

    .venv/bin/python bench/bench_limiter_shared.py [--seconds 60]

The emulator (own process) enforces RPM=600 and TPM=60,000 (150-token prompts: the token quota
binds at 400 requests a minute). Four worker processes, each an async client with 16 tasks and
the whole quota configured, run for ``--seconds``: once sharing the quota through a Redis store
(``rate_limit_storage="redis://..."``), once each with its own in-memory store. Printed: the
tokens the server accepted against the ideal, the busiest 60-second window, and the 429s.
Targets: Redis, zero 429s and >= 95% of the quota; in memory, the overshoot it causes.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import time

from bench_limiter_support import EmulatorProcess, credentials, local_redis, prompt

from greycloud import GreyCloudAsyncClient

RPM, TPM, PROMPT_TOKENS, WORKERS, TASKS = 600, 60_000, 150, 4, 16


def _worker(base_url: str, storage: str | None, begin: float, seconds: float) -> int:
    from greycloud import GreyCloudConfig

    config = GreyCloudConfig(
        project_id="test-project",
        location="us-central1",
        endpoint=base_url,
        api_version="v1",
        model="gemini-2.5-flash",
        rpm=RPM,
        tpm=TPM,
        max_concurrency=64,
        rate_limit_storage=storage,
    )
    text = prompt(PROMPT_TOKENS, random.Random(1))
    done = 0

    async def run() -> None:
        nonlocal done
        async with GreyCloudAsyncClient(config, credentials=credentials()) as client:

            async def work() -> None:
                nonlocal done
                while True:
                    await client.generate_with_retry(text, max_retries=20, max_delay=5.0)
                    done += 1

            await asyncio.sleep(max(0.0, begin - time.time()))
            tasks = [asyncio.create_task(work()) for _ in range(TASKS)]
            await asyncio.sleep(seconds)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(run())
    return done


def measure(server: EmulatorProcess, storage: str | None, seconds: float) -> None:
    server.reset()
    context = multiprocessing.get_context("spawn")
    begin = time.time() + 3.0  # every worker imported and connected by then
    with context.Pool(WORKERS) as pool:
        pending = pool.starmap_async(
            _worker, [(server.base_url, storage, begin, seconds)] * WORKERS
        )
        time.sleep(max(0.0, begin - time.time()) + seconds)
        stats = server.stats()  # at the deadline
        pending.get()
    model = stats["gemini-2.5-flash"]
    ideal = TPM * seconds / 60
    name = "4 processes, Redis store" if storage else "4 processes, in-memory stores"
    print(
        f"{name:<31} tokens {model.prompt_tokens / ideal:7.2%} of ideal; busiest window "
        f"{model.peak_tpm:,}/{TPM:,} tokens, {model.peak_rpm}/{RPM} requests; "
        f"429s {stats.rejected} (attempts {stats.accepted + stats.rejected})",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    with local_redis() as redis, EmulatorProcess(rpm=RPM, tpm=TPM) as server:
        measure(server, redis.url, args.seconds)
        measure(server, None, args.seconds)


if __name__ == "__main__":
    main()
