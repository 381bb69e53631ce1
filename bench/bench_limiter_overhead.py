"""Limiter benchmark (5): what greycloud's wrapper (limiter included) costs per call.

    .venv/bin/python bench/bench_limiter_overhead.py [--calls 300] [--latency 0]

The emulator (own process, no quota, optional ``--latency`` seconds per answer) answers small
prompts. Each round calls greycloud and the raw google-genai SDK alternately, so drift hits
both alike; greycloud's limits are far above the load, so the limiter books but never waits.
Printed: median latency of ``generate_content`` (sync and async), and of the first chunk of
``generate_with_retry(streaming=True)`` against the raw SDK's first streamed chunk.
Target: every ratio <= 1.05. A second line compares with the raw SDK given the same empty
``GenerateContentConfig`` that greycloud always sends (the SDK's conversion of it is most of
the difference).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

from bench_limiter_support import MODEL, EmulatorProcess, credentials
from google import genai
from google.genai import types

from greycloud import GreyCloudAsyncClient, GreyCloudClient

PROMPT = "Say something short about lanterns."


def raw_sdk(server: EmulatorProcess) -> genai.Client:
    return genai.Client(
        vertexai=True,
        project="test-project",
        location="us-central1",
        credentials=credentials(),
        http_options=types.HttpOptions(
            base_url=server.base_url,
            api_version="v1",
            retry_options=types.HttpRetryOptions(attempts=1),
        ),
    )


def _ratio(name: str, ours: list[float], theirs: list[float]) -> None:
    a, b = statistics.median(ours), statistics.median(theirs)
    print(f"{name:<44} greycloud {a * 1e3:7.3f} ms, raw SDK {b * 1e3:7.3f} ms: ratio {a / b:.3f}")


def sync_rounds(server: EmulatorProcess, calls: int) -> None:
    sdk = raw_sdk(server)
    config = server.config(rpm=10**6, tpm=10**9, max_concurrency=100)
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

        ours, theirs, configured, ours_stream, theirs_stream = [], [], [], [], []
        for _ in range(20):  # warm up connections
            client.generate_content(PROMPT)
            sdk.models.generate_content(model=MODEL, contents=PROMPT)
        for _ in range(calls):
            ours.append(timed(lambda: client.generate_content(PROMPT)))
            configured.append(
                timed(
                    lambda: sdk.models.generate_content(
                        model=MODEL, contents=PROMPT, config=types.GenerateContentConfig()
                    )
                )
            )
            theirs.append(timed(lambda: sdk.models.generate_content(model=MODEL, contents=PROMPT)))
            ours_stream.append(
                first_chunk(lambda: client.generate_with_retry(PROMPT, streaming=True))
            )
            theirs_stream.append(
                first_chunk(
                    lambda: sdk.models.generate_content_stream(model=MODEL, contents=PROMPT)
                )
            )
    _ratio("sync generate_content (median)", ours, theirs)
    _ratio("  vs raw SDK given the same (empty) config", ours, configured)
    _ratio("sync first streamed chunk (median)", ours_stream, theirs_stream)
    sdk.close()


async def async_rounds(server: EmulatorProcess, calls: int) -> None:
    sdk = raw_sdk(server)
    config = server.config(rpm=10**6, tpm=10**9, max_concurrency=100)
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

        async def theirs_first() -> float:
            began = time.perf_counter()
            stream = await sdk.aio.models.generate_content_stream(model=MODEL, contents=PROMPT)
            await stream.__anext__()
            elapsed = time.perf_counter() - began
            async for _ in stream:
                pass
            return elapsed

        for _ in range(20):
            await client.generate_content(PROMPT)
            await sdk.aio.models.generate_content(model=MODEL, contents=PROMPT)
        ours, theirs, configured, ours_stream, theirs_stream = [], [], [], [], []
        for _ in range(calls):
            ours.append(await timed(lambda: client.generate_content(PROMPT)))
            theirs.append(
                await timed(lambda: sdk.aio.models.generate_content(model=MODEL, contents=PROMPT))
            )
            configured.append(
                await timed(
                    lambda: sdk.aio.models.generate_content(
                        model=MODEL, contents=PROMPT, config=types.GenerateContentConfig()
                    )
                )
            )
            ours_stream.append(await ours_first())
            theirs_stream.append(await theirs_first())
    _ratio("async generate_content (median)", ours, theirs)
    _ratio("  vs raw SDK given the same (empty) config", ours, configured)
    _ratio("async first streamed chunk (median)", ours_stream, theirs_stream)
    await sdk.aio.aclose()
    sdk.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    with EmulatorProcess(latency=args.latency) as server:
        print(f"emulator latency {args.latency * 1e3:.0f} ms, {args.calls} calls of each kind")
        sync_rounds(server, args.calls)
        asyncio.run(async_rounds(server, args.calls))


if __name__ == "__main__":
    main()
