"""Limiter benchmark (4): booking cost, and waiting in arrival order, with no server involved.

    .venv/bin/python bench/bench_limiter_core.py

Measures, in one run:
  * booking + reconciliation in memory (``LimiterCore.book`` then ``reconcile``): p50 / p99;
  * 10,000 tasks waiting on one ``VertexRateLimiter`` (all booked at once; and again through a
    100-slot concurrency queue): do they start in arrival order, and how long from the first
    start to the last against the ideal, (N - 1) starts spaced exactly 60 / rpm apart;
  * 1,000 threads on one ``SyncVertexRateLimiter``: the same.
Targets: p50 <= 10 us, p99 <= 50 us; exact arrival order; drain within 2% of ideal.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import threading
import time

from greycloud import SyncVertexRateLimiter, VertexRateLimiter
from greycloud._limiter.core import LimiterCore
from greycloud._limiter.quota import Quota


def booking_latency(samples: int) -> tuple[float, float]:
    core = LimiterCore(Quota(60_000, 10_000_000, 10))
    timer = time.perf_counter_ns
    durations = []
    for index in range(samples):
        tokens = 500 + index % 1_000
        began = timer()
        booking = core.book("gemini-2.5-flash", tokens)
        core.reconcile(booking, tokens + 37)
        durations.append(timer() - began)
    durations.sort()
    return durations[len(durations) // 2] / 1e3, durations[int(len(durations) * 0.99)] / 1e3


def _report(
    what: str, arrivals: list[int] | list[float], entries: list[float], began: float, ideal: float
) -> None:
    wrong = sum(1 for a, b in itertools.pairwise(arrivals) if b < a)
    order = "kept" if arrivals == sorted(arrivals) else f"BROKEN ({wrong} out of order)"
    drain = entries[-1] - entries[0]
    print(
        f"{what}: arrival order {order}; first start to last {drain:.3f} s vs ideal {ideal:.3f} s"
        f" = {drain / ideal:.4f}x (target <= 1.02); from the first arrival "
        f"{entries[-1] - began:.3f} s"
    )


async def async_drain(count: int, rpm: int, max_concurrency: int) -> None:
    limiter = VertexRateLimiter(rpm=rpm, tpm=10**9, max_concurrency=max_concurrency)
    arrivals: list[int] = []
    entries: list[float] = []

    async def call(index: int) -> None:
        async with limiter.limit("m", 100):
            arrivals.append(index)
            entries.append(time.monotonic())

    began = time.monotonic()
    tasks = [asyncio.create_task(call(index)) for index in range(count)]  # arrival order
    await asyncio.gather(*tasks)
    _report(
        f"{count:,} tasks, rpm {rpm:,}, max_concurrency {max_concurrency:,}",
        arrivals,
        entries,
        began,
        (count - 1) * 60 / rpm,
    )


def thread_drain(count: int, rpm: int) -> None:
    limiter = SyncVertexRateLimiter(rpm=rpm, tpm=10**9, max_concurrency=count)
    lock = threading.Lock()
    arrivals: list[float] = []  # booked starts: bookings are made in arrival order, atomically
    entries: list[float] = []

    def call() -> None:
        with limiter.limit("m", 100) as permit, lock:
            arrivals.append(permit.start)
            entries.append(time.monotonic())

    threads = [threading.Thread(target=call) for _ in range(count)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    _report(f"{count:,} threads, rpm {rpm:,}", arrivals, entries, began, (count - 1) * 60 / rpm)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200_000)
    args = parser.parse_args()

    p50, p99 = booking_latency(args.samples)
    print(
        f"booking+reconcile ({args.samples:,} samples): p50 {p50:.2f} us, p99 {p99:.2f} us "
        "(targets 10 / 50 us)"
    )
    asyncio.run(async_drain(10_000, 300_000, 10_000))
    asyncio.run(async_drain(10_000, 300_000, 100))
    thread_drain(1_000, 60_000)


if __name__ == "__main__":
    main()
