"""Limiter benchmark (5): what greycloud's wrapper (limiter included) costs per call.

    .venv/bin/python bench/bench_limiter_overhead.py [--calls 400] [--latency 0]

The emulator (own process, no quota, optional ``--latency`` seconds per answer) answers small
prompts. greycloud's limits are far above the load, so the limiter books but never waits.
Printed: median latency of ``generate_content`` (sync and async) against the raw google-genai
SDK's, and of the first chunk of ``generate_with_retry(streaming=True)`` against the raw SDK's
first streamed chunk. Target: every ratio <= 1.05.

Each round makes one call of every kind in a freshly shuffled order (fixed seed), so that drift
and cache effects hit all kinds alike: a call that directly follows a call of its own kind runs
on warm caches and comes out some 20-30 us faster at zero latency, which a fixed order gives to
one side only. One more kind, the raw SDK given greycloud's ``HttpOptions`` (its default
300-second timeout, which the SDK turns into a per-request httpx timeout and an
``X-Server-Timeout`` header), separates the SDK's own per-client difference from greycloud's
code: "vs raw SDK, same HttpOptions" is greycloud's wrapper alone.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections.abc import Awaitable, Callable

from bench_limiter_support import MODEL, EmulatorProcess, credentials
from google import genai
from google.genai import types

from greycloud import GreyCloudAsyncClient, GreyCloudClient, GreyCloudConfig

PROMPT = "Say something short about lanterns."
SEED = 5


def raw_sdk(server: EmulatorProcess, timeout: float | None = None) -> genai.Client:
    """The raw SDK against the emulator; ``timeout`` in seconds as greycloud's config has it."""
    return genai.Client(
        vertexai=True,
        project="test-project",
        location="us-central1",
        credentials=credentials(),
        http_options=types.HttpOptions(
            base_url=server.base_url,
            api_version="v1",
            timeout=None if timeout is None else int(timeout * 1000),
            retry_options=types.HttpRetryOptions(attempts=1),
        ),
    )


def greycloud_config(server: EmulatorProcess) -> GreyCloudConfig:
    return server.config(rpm=10**6, tpm=10**9, max_concurrency=100)


def _ratio(name: str, ours: list[float], theirs: list[float]) -> None:
    a, b = statistics.median(ours), statistics.median(theirs)
    print(
        f"{name:<40} greycloud {a * 1e3:7.3f} ms, raw SDK {b * 1e3:7.3f} ms: "
        f"ratio {a / b:.3f} ({(a - b) * 1e6:+.0f} us)"
    )


def _report(world: str, times: dict[str, list[float]]) -> None:
    _ratio(f"{world} generate_content (median)", times["ours"], times["theirs"])
    _ratio("  vs raw SDK, same HttpOptions", times["ours"], times["same_options"])
    _ratio(f"{world} first streamed chunk (median)", times["ours_stream"], times["theirs_stream"])
    _ratio("  vs raw SDK, same HttpOptions", times["ours_stream"], times["same_options_stream"])


def sync_rounds(server: EmulatorProcess, calls: int) -> None:
    config = greycloud_config(server)
    sdk, same_options = raw_sdk(server), raw_sdk(server, config.timeout)
    with GreyCloudClient(config, credentials=credentials()) as client:

        def timed(call: Callable[[], object]) -> float:
            began = time.perf_counter()
            call()
            return time.perf_counter() - began

        def first_chunk(stream: Callable[[], object]) -> float:
            began = time.perf_counter()
            iterator = iter(stream())  # type: ignore[call-overload]
            next(iterator)
            elapsed = time.perf_counter() - began
            for _ in iterator:
                pass
            return elapsed

        kinds: dict[str, Callable[[], float]] = {
            "ours": lambda: timed(lambda: client.generate_content(PROMPT)),
            "theirs": lambda: timed(
                lambda: sdk.models.generate_content(model=MODEL, contents=PROMPT)
            ),
            "same_options": lambda: timed(
                lambda: same_options.models.generate_content(model=MODEL, contents=PROMPT)
            ),
            "ours_stream": lambda: first_chunk(
                lambda: client.generate_with_retry(PROMPT, streaming=True)
            ),
            "theirs_stream": lambda: first_chunk(
                lambda: sdk.models.generate_content_stream(model=MODEL, contents=PROMPT)
            ),
            "same_options_stream": lambda: first_chunk(
                lambda: same_options.models.generate_content_stream(model=MODEL, contents=PROMPT)
            ),
        }
        times: dict[str, list[float]] = {name: [] for name in kinds}
        order = list(kinds)
        rng = random.Random(SEED)
        for round_ in range(20 + calls):  # the first 20 rounds warm up connections
            rng.shuffle(order)
            for name in order:
                elapsed = kinds[name]()
                if round_ >= 20:
                    times[name].append(elapsed)
    _report("sync", times)
    sdk.close()
    same_options.close()


async def async_rounds(server: EmulatorProcess, calls: int) -> None:
    config = greycloud_config(server)
    sdk, same_options = raw_sdk(server), raw_sdk(server, config.timeout)
    async with GreyCloudAsyncClient(config, credentials=credentials()) as client:

        async def timed(call: Callable[[], Awaitable[object]]) -> float:
            began = time.perf_counter()
            await call()
            return time.perf_counter() - began

        async def ours_first() -> float:
            began = time.perf_counter()
            stream = await client.generate_with_retry(PROMPT, streaming=True)
            await stream.__anext__()
            elapsed = time.perf_counter() - began
            async for _ in stream:
                pass
            return elapsed

        async def theirs_first(raw: genai.Client) -> float:
            began = time.perf_counter()
            stream = await raw.aio.models.generate_content_stream(model=MODEL, contents=PROMPT)
            await stream.__anext__()
            elapsed = time.perf_counter() - began
            async for _ in stream:
                pass
            return elapsed

        kinds: dict[str, Callable[[], Awaitable[float]]] = {
            "ours": lambda: timed(lambda: client.generate_content(PROMPT)),
            "theirs": lambda: timed(
                lambda: sdk.aio.models.generate_content(model=MODEL, contents=PROMPT)
            ),
            "same_options": lambda: timed(
                lambda: same_options.aio.models.generate_content(model=MODEL, contents=PROMPT)
            ),
            "ours_stream": ours_first,
            "theirs_stream": lambda: theirs_first(sdk),
            "same_options_stream": lambda: theirs_first(same_options),
        }
        times: dict[str, list[float]] = {name: [] for name in kinds}
        order = list(kinds)
        rng = random.Random(SEED)
        for round_ in range(20 + calls):
            rng.shuffle(order)
            for name in order:
                elapsed = await kinds[name]()
                if round_ >= 20:
                    times[name].append(elapsed)
    _report("async", times)
    for raw in (sdk, same_options):
        await raw.aio.aclose()
        raw.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    with EmulatorProcess(latency=args.latency) as server:
        print(f"emulator latency {args.latency * 1e3:.0f} ms, {args.calls} calls of each kind")
        sync_rounds(server, args.calls)
        asyncio.run(async_rounds(server, args.calls))


if __name__ == "__main__":
    main()
