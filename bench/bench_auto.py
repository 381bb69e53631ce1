"""rpm="auto" against a pool whose capacity nobody states and which changes (Dynamic Shared Quota).

    .venv/bin/python bench/bench_auto.py [--scale 1.0] [--candidates auto,sre,fixed,fixed10]
    .venv/bin/python bench/bench_auto.py --processes 4 --candidates auto   # sharing Redis
    .venv/bin/python bench/bench_auto.py --processes 4 --candidates auto --slots 64  # 64 shared

Each candidate runs at the same time as the others, in a process of its own, against an emulator
(own process) in capacity mode: a hidden pool serving 20 requests/s that drops to 10 at minute 2
and rises to 40 at minute 3.5, for 5 minutes (``--scale`` shortens the phases, for iterating),
with 64 tasks calling as fast as they are let. Candidates:

- ``auto``: greycloud with ``rpm="auto"`` (retries on);
- ``sre``: the client-side adaptive throttling of the SRE book, as Apache Beam's Gemini handler
  ships it: each attempt is refused locally with probability
  max(0, (requests - K * accepts) / (requests + 1)), K = 2, over a 60 s window, and a refused
  one waits 5 s before asking again; 429s are retried with greycloud's backoff; greycloud's
  limiter is set out of the way;
- ``fixed``: greycloud with ``rpm`` = the initial capacity (1200), retries on;
- ``fixed10``: greycloud with ``rpm`` = 10 times it (12000), retries on.

Printed per candidate and phase: goodput (calls served) as a share of the capacity after the
phase's first 30 s, the 429 share of the calls sent, and, after each step, the seconds until the
first 5-second window that serves >= 90% of the capacity with <= 5% 429s (re-converged).
Targets for auto: goodput >= 90% in every phase after its first 30 s, 429s <= 2% overall,
re-converged within 30 s of each step.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing
import random
import time
from collections import deque
from typing import Any

from bench_limiter_support import MODEL, EmulatorProcess, credentials, local_redis

from greycloud import GreyCloudAsyncClient, GreyCloudConfig

STEPS = ((0.0, 20.0), (120.0, 10.0), (210.0, 40.0))
DURATION = 300.0
TASKS = 64
LATENCY = 0.25  # seconds the emulator takes per call
SETTLE = 30.0  # seconds at the start of a phase left out of its goodput
WINDOW = 5  # seconds per window when judging re-convergence
CANDIDATES = ("auto", "sre", "fixed", "fixed10")


class AdaptiveThrottle:
    """The SRE book's client-side throttling (Apache Beam's ``AdaptiveThrottler``), K = 2."""

    def __init__(self, overload_ratio: float = 2.0, window: float = 60.0) -> None:
        self.ratio = overload_ratio
        self.window = window
        self.requests: deque[float] = deque()
        self.accepts: deque[float] = deque()
        self.random = random.Random(1)

    def _forget(self, now: float) -> None:
        for events in (self.requests, self.accepts):
            while events and events[0] <= now - self.window:
                events.popleft()

    def throttle(self, now: float) -> bool:
        """Count a request; True when it must be refused locally."""
        self._forget(now)
        requests, accepts = len(self.requests), len(self.accepts)
        self.requests.append(now)
        probability = max(0.0, (requests - self.ratio * accepts) / (requests + 1))
        return self.random.random() < probability

    def accepted(self, now: float) -> None:
        self.accepts.append(now)


def _config(candidate: str, base_url: str, storage: str | None, slots: int) -> GreyCloudConfig:
    rpm: int | str = {"auto": "auto", "sre": 10**7, "fixed": 1200, "fixed10": 12000}[candidate]
    return GreyCloudConfig(
        project_id="test-project",
        location="us-central1",
        endpoint=base_url,
        api_version="v1",
        model=MODEL,
        rpm=rpm,  # type: ignore[arg-type]
        tpm=10**9,
        max_concurrency=slots,  # in Redis the slots are shared: one cap for all processes
        rate_limit_storage=storage,
    )


def worker(
    candidate: str,
    base_url: str,
    storage: str | None,
    tasks: int,
    slots: int,
    begin: float,
    seconds: float,
) -> dict[str, Any]:
    """One client process: ``tasks`` tasks calling from ``begin`` (wall clock) for ``seconds``."""
    import logging

    from greycloud._core.retry import backoff_delay, classify

    logging.getLogger("greycloud").setLevel(logging.ERROR)

    async def run() -> dict[str, Any]:
        config = _config(candidate, base_url, storage, slots)
        throttle = AdaptiveThrottle()
        async with GreyCloudAsyncClient(config, credentials=credentials()) as client:
            await asyncio.sleep(max(0.0, begin - time.time()))
            deadline = time.monotonic() + seconds

            async def sre_call() -> None:
                attempt = 0
                while time.monotonic() < deadline:
                    while throttle.throttle(time.monotonic()):
                        await asyncio.sleep(5.0)
                    attempt += 1
                    try:
                        await client.generate_content("hello")
                    except Exception as exc:
                        await asyncio.sleep(backoff_delay(attempt, 1.0, 60.0, None))
                        if not classify(exc).transient:
                            raise
                        continue
                    throttle.accepted(time.monotonic())
                    return

            async def work() -> None:
                while time.monotonic() < deadline:
                    if candidate == "sre":
                        await sre_call()
                    else:
                        await client.generate_with_retry("hello", max_retries=50)

            jobs = [asyncio.create_task(work()) for _ in range(tasks)]
            await asyncio.sleep(max(0.0, deadline - time.monotonic()))
            for job in jobs:
                job.cancel()
            await asyncio.gather(*jobs, return_exceptions=True)
            stats = client.rate_limiter.stats().models.get(MODEL)
            origin = deadline - seconds
            history = (
                [(round(c.at - origin), round(c.rate * 60)) for c in stats.history] if stats else []
            )
            return {"rpm": stats.rpm if stats else None, "history": history}

    return asyncio.run(run())


def analyse(seconds: list[Any], steps: list[tuple[float, float]], duration: float) -> str:
    accepted = [0] * int(math.ceil(duration) + 1)
    rejected = [0] * len(accepted)
    for second in seconds:
        if second.second < len(accepted):
            accepted[second.second] += second.accepted
            rejected[second.second] += second.rejected
    parts = []
    bounds = [*(at for at, _ in steps), duration]
    for index, (at, capacity) in enumerate(steps):
        end = int(bounds[index + 1])
        settle = int(at + min(SETTLE, (end - at) / 2))
        served = sum(accepted[settle:end])
        refused = sum(rejected[int(at) : end])
        sent = sum(accepted[int(at) : end]) + refused
        goodput = served / (capacity * (end - settle))
        converged = "-"
        if index > 0:
            for start in range(int(at), end - WINDOW + 1):
                ok, bad = (
                    sum(accepted[start : start + WINDOW]),
                    sum(rejected[start : start + WINDOW]),
                )
                if ok >= 0.9 * capacity * WINDOW and bad <= 0.05 * max(1, ok + bad):
                    converged = f"{start - at:.0f}s"
                    break
            else:
                converged = "never"
        parts.append(
            f"{capacity:>4.0f}/s: goodput {goodput:6.1%}, 429s {refused / max(1, sent):6.1%}, "
            f"re-converged {converged:>5}"
        )
    total_ok, total_bad = sum(accepted), sum(rejected)
    parts.append(
        f"overall 429s {total_bad / max(1, total_ok + total_bad):.1%} of {total_ok + total_bad}"
    )
    return " | ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="phase lengths times this")
    parser.add_argument("--candidates", default=",".join(CANDIDATES))
    parser.add_argument("--processes", type=int, default=1, help=">1: share one Redis")
    parser.add_argument(
        "--slots",
        type=int,
        default=0,
        help="max_concurrency of each process (default: its tasks); Redis shares one cap",
    )
    parser.add_argument("--trace", action="store_true", help="print served/429 per second")
    args = parser.parse_args()
    candidates = args.candidates.split(",")
    steps = [(at * args.scale, capacity) for at, capacity in STEPS]
    duration = DURATION * args.scale
    redis = local_redis() if args.processes > 1 else None
    storage = redis.url if redis is not None else None
    servers = {name: EmulatorProcess(capacity=list(steps), latency=LATENCY) for name in candidates}
    try:
        context = multiprocessing.get_context("spawn")
        begin = time.time() + 5.0  # every worker imported and connected by then
        per_process = TASKS // args.processes
        with context.Pool(len(candidates) * args.processes) as pool:
            results = {
                name: [
                    pool.apply_async(
                        worker,
                        (
                            name,
                            servers[name].base_url,
                            storage,
                            per_process,
                            args.slots or per_process,
                            begin,
                            duration,
                        ),
                    )
                    for _ in range(args.processes)
                ]
                for name in candidates
            }
            time.sleep(max(0.0, begin - time.time()))
            for server in servers.values():
                server.reset()  # the capacity schedule counts from here
            outcome = {name: [job.get() for job in jobs] for name, jobs in results.items()}
        print(
            f"bench_auto: {duration:.0f} s, capacity "
            + " -> ".join(f"{c:.0f}/s at {at:.0f}s" for at, c in steps)
            + f", {TASKS} tasks in {args.processes} process(es), latency {LATENCY}s"
        )
        for name in candidates:
            seconds = servers[name].stats()[MODEL].seconds
            print(f"{name:>8}: {analyse(list(seconds), steps, duration)}")
            if args.trace:
                print(
                    "          per second (served/429):",
                    " ".join(f"{s.accepted}/{s.rejected}" for s in seconds),
                )
            if name == "auto":
                for index, result in enumerate(outcome[name]):
                    print(f"          process {index}: rate history (s, rpm) {result['history']}")
    finally:
        for server in servers.values():
            server.stop()
        if redis is not None:
            redis.stop()


if __name__ == "__main__":
    main()
