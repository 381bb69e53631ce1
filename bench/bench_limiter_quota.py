"""Limiter benchmark (1): how much of a server quota the clients use, with no 429s.

    .venv/bin/python bench/bench_limiter_quota.py [--seconds 60]

The emulator (own process) enforces RPM=1200 and TPM=120,000 over exact rolling 60-second
windows; every prompt is 150 tokens, so the token quota binds (800 requests a minute). Each
client is configured with the same quota and offered more load than that for ``--seconds``:
the async client with 32 tasks, the sync client with 16 threads, each once with exact token
estimates and once with estimates off by up to +-30% at random. Printed per run: tokens the
server accepted against the ideal (TPM x seconds / 60), requests likewise, the busiest 60-second
window the server saw, and the 429s. Targets: >= 97% of ideal, zero 429s.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from bench_limiter_support import EmulatorProcess, credentials, noisy_estimates, prompt

from greycloud import GreyCloudAsyncClient, GreyCloudClient

RPM, TPM, PROMPT_TOKENS = 1_200, 120_000, 150


async def async_load(server: EmulatorProcess, seconds: float, tasks: int) -> None:
    text = prompt(PROMPT_TOKENS, random.Random(1))
    config = server.config(rpm=RPM, tpm=TPM, max_concurrency=64)
    async with GreyCloudAsyncClient(config, credentials=credentials()) as client:

        async def work() -> None:
            while True:
                await client.generate_with_retry(text, max_retries=10)

        workers = [asyncio.create_task(work()) for _ in range(tasks)]
        await asyncio.sleep(seconds)
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)


def sync_load(server: EmulatorProcess, seconds: float, threads: int) -> None:
    text = prompt(PROMPT_TOKENS, random.Random(1))
    config = server.config(rpm=RPM, tpm=TPM, max_concurrency=64)
    deadline = time.monotonic() + seconds
    with GreyCloudClient(config, credentials=credentials()) as client:

        def work() -> None:
            while time.monotonic() < deadline:
                client.generate_with_retry(text, max_retries=10)

        pool = [threading.Thread(target=work) for _ in range(threads)]
        for thread in pool:
            thread.start()
        time.sleep(seconds)
        snapshot.append(server.stats())  # counted at the deadline; threads finish their call
        for thread in pool:
            thread.join()


snapshot: list[Any] = []


def measure(name: str, server: EmulatorProcess, seconds: float, run: Callable[[], None]) -> None:
    server.reset()
    snapshot.clear()
    run()
    stats = snapshot[0] if snapshot else server.stats()
    model = stats.models.get("gemini-2.5-flash")
    accepted = model.accepted if model else 0
    tokens = model.prompt_tokens if model else 0
    ideal_tokens = TPM * seconds / 60
    ideal_requests = min(RPM, TPM / PROMPT_TOKENS) * seconds / 60
    print(
        f"{name:<34} tokens {tokens / ideal_tokens:7.2%} of ideal, requests "
        f"{accepted / ideal_requests:7.2%} ({accepted}); busiest window "
        f"{model.peak_tpm if model else 0:,}/{TPM:,} tokens, {model.peak_rpm if model else 0}"
        f"/{RPM} requests; 429s {stats.rejected}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    seconds = args.seconds
    with EmulatorProcess(rpm=RPM, tpm=TPM) as server:
        for noise in (0.0, 0.3):
            undo = noisy_estimates(noise) if noise else (lambda: None)
            label = "estimates +-30%" if noise else "exact estimates"
            try:
                measure(
                    f"async, 32 tasks, {label}",
                    server,
                    seconds,
                    lambda: asyncio.run(async_load(server, seconds, 32)),
                )
                measure(
                    f"sync, 16 threads, {label}",
                    server,
                    seconds,
                    lambda: sync_load(server, seconds, 16),
                )
            finally:
                undo()


if __name__ == "__main__":
    main()
