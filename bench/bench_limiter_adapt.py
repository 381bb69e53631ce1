"""Limiter benchmark (3): the server's quota is half what the client was told; it adapts.

    .venv/bin/python bench/bench_limiter_adapt.py [--warmup 60] [--seconds 120]

The emulator (own process) enforces RPM=300 and TPM=30,000; the async client (16 tasks, 150-token
prompts, ``generate_with_retry``) is configured with RPM=600 and TPM=60,000. The first
``--warmup`` seconds are for learning (429s expected); over the next ``--seconds`` the benchmark
counts the share of attempts answered 429 and the tokens accepted against the real quota, then
stops issuing and waits for every request to complete. Targets: < 1% 429s after the first
minute, >= 85% of the real quota, every request completes.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time

from bench_limiter_support import EmulatorProcess, credentials, prompt

from greycloud import GreyCloudAsyncClient

REAL_RPM, REAL_TPM, PROMPT_TOKENS, TASKS = 300, 30_000, 150, 16


async def run(server: EmulatorProcess, warmup: float, seconds: float) -> None:
    text = prompt(PROMPT_TOKENS, random.Random(1))
    config = server.config(rpm=2 * REAL_RPM, tpm=2 * REAL_TPM, max_concurrency=64)
    completed = failed = 0
    async with GreyCloudAsyncClient(config, credentials=credentials()) as client:
        deadline = time.monotonic() + warmup + seconds

        async def work() -> None:
            nonlocal completed, failed
            while time.monotonic() < deadline:
                try:
                    await client.generate_with_retry(text, max_retries=30, max_delay=60.0)
                    completed += 1
                except Exception:
                    failed += 1

        tasks = [asyncio.create_task(work()) for _ in range(TASKS)]
        await asyncio.sleep(warmup)
        before = server.stats()["gemini-2.5-flash"]
        await asyncio.sleep(seconds)
        after = server.stats()["gemini-2.5-flash"]
        drain_began = time.monotonic()
        await asyncio.gather(*tasks)
        stats = client.rate_limiter.stats().models["gemini-2.5-flash"]
    accepted = after.accepted - before.accepted
    rejected = after.rejected - before.rejected
    tokens = after.prompt_tokens - before.prompt_tokens
    ideal = REAL_TPM * seconds / 60
    print(
        f"after {warmup:.0f} s of learning, over {seconds:.0f} s: 429s {rejected} of "
        f"{accepted + rejected} attempts = {rejected / max(1, accepted + rejected):.2%}; "
        f"tokens {tokens / ideal:.2%} of the real quota; busiest window {after.peak_tpm:,}"
        f"/{REAL_TPM:,} tokens (whole run, learning included)"
    )
    print(
        f"requests completed {completed}, failed {failed} (in-flight ones drained in "
        f"{time.monotonic() - drain_began:.1f} s); final rate factor {stats.rate_factor:.2f}, "
        f"429s seen by the limiter {stats.rate_limited}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warmup", type=float, default=60.0)
    parser.add_argument("--seconds", type=float, default=120.0)
    args = parser.parse_args()
    with EmulatorProcess(rpm=REAL_RPM, tpm=REAL_TPM) as server:
        asyncio.run(run(server, args.warmup, args.seconds))


if __name__ == "__main__":
    main()
