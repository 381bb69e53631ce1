"""Function-calling benchmark: greycloud's hop-by-hop loop against google-genai's own loop.

    .venv/bin/python bench/bench_function_calling.py [--exchanges 300] [--latency 0]

The emulator (own process, no quota) is scripted to call two functions, one per hop, then
answer: three model requests per exchange. greycloud runs the loop itself (each hop one
limited request, the functions run once) with ``generate_content(tools=[...])``; the raw SDK
runs its automatic function calling inside one ``models.generate_content`` call with the same
functions. Printed: the median time of a whole exchange, sync and async, and the ratio.
Target: <= 1.05 at zero latency. As in bench_limiter_overhead.py, each round runs one exchange
of every kind in a freshly shuffled order, and "same HttpOptions" is the raw SDK given
greycloud's default timeout, which isolates greycloud's own code.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench_limiter_overhead import greycloud_config, raw_sdk
from bench_limiter_support import MODEL, EmulatorProcess, credentials
from google.genai import types

from greycloud import GreyCloudAsyncClient, GreyCloudClient

PROMPT = "How warm is it in Paris, in Fahrenheit?"
SEED = 11
WARM_UP = 10
STEPS = [
    {"name": "get_weather", "args": {"city": "Paris"}},
    {"name": "to_fahrenheit", "args": {"celsius": 21}},
]


def get_weather(city: str) -> dict[str, Any]:
    """The weather in a city."""
    return {"city": city, "celsius": 21}


def to_fahrenheit(celsius: float) -> float:
    """Celsius to Fahrenheit."""
    return celsius * 9 / 5 + 32


TOOLS: list[Any] = [get_weather, to_fahrenheit]
SDK_CONFIG = types.GenerateContentConfig(tools=TOOLS)


def _ratio(name: str, ours: list[float], theirs: list[float]) -> None:
    a, b = statistics.median(ours), statistics.median(theirs)
    print(
        f"{name:<42} greycloud {a * 1e3:7.3f} ms, SDK loop {b * 1e3:7.3f} ms: "
        f"ratio {a / b:.3f} ({(a - b) * 1e6:+.0f} us)"
    )


def _report(world: str, times: dict[str, list[float]]) -> None:
    _ratio(f"{world} 3-hop exchange (median)", times["ours"], times["theirs"])
    _ratio("  vs SDK loop, same HttpOptions", times["ours"], times["same_options"])


def _check(response: types.GenerateContentResponse) -> None:
    history = response.automatic_function_calling_history or []
    assert response.text and len(history) == 5, "the exchange did not take three hops"


def sync_rounds(server: EmulatorProcess, exchanges: int) -> None:
    config = greycloud_config(server)
    sdk, same_options = raw_sdk(server), raw_sdk(server, config.timeout)
    with GreyCloudClient(config, credentials=credentials()) as client:

        def timed(call: Callable[[], types.GenerateContentResponse]) -> float:
            began = time.perf_counter()
            response = call()
            elapsed = time.perf_counter() - began
            _check(response)
            return elapsed

        kinds: dict[str, Callable[[], float]] = {
            "ours": lambda: timed(lambda: client.generate_content(PROMPT, tools=TOOLS)),
            "theirs": lambda: timed(
                lambda: sdk.models.generate_content(model=MODEL, contents=PROMPT, config=SDK_CONFIG)
            ),
            "same_options": lambda: timed(
                lambda: same_options.models.generate_content(
                    model=MODEL, contents=PROMPT, config=SDK_CONFIG
                )
            ),
        }
        times: dict[str, list[float]] = {name: [] for name in kinds}
        order = list(kinds)
        rng = random.Random(SEED)
        for round_ in range(WARM_UP + exchanges):
            rng.shuffle(order)
            for name in order:
                elapsed = kinds[name]()
                if round_ >= WARM_UP:
                    times[name].append(elapsed)
    _report("sync", times)
    sdk.close()
    same_options.close()


async def async_rounds(server: EmulatorProcess, exchanges: int) -> None:
    config = greycloud_config(server)
    sdk, same_options = raw_sdk(server), raw_sdk(server, config.timeout)
    async with GreyCloudAsyncClient(config, credentials=credentials()) as client:

        async def timed(call: Callable[[], Awaitable[types.GenerateContentResponse]]) -> float:
            began = time.perf_counter()
            response = await call()
            elapsed = time.perf_counter() - began
            _check(response)
            return elapsed

        kinds: dict[str, Callable[[], Awaitable[float]]] = {
            "ours": lambda: timed(lambda: client.generate_content(PROMPT, tools=TOOLS)),
            "theirs": lambda: timed(
                lambda: sdk.aio.models.generate_content(
                    model=MODEL, contents=PROMPT, config=SDK_CONFIG
                )
            ),
            "same_options": lambda: timed(
                lambda: same_options.aio.models.generate_content(
                    model=MODEL, contents=PROMPT, config=SDK_CONFIG
                )
            ),
        }
        times: dict[str, list[float]] = {name: [] for name in kinds}
        order = list(kinds)
        rng = random.Random(SEED)
        for round_ in range(WARM_UP + exchanges):
            rng.shuffle(order)
            for name in order:
                elapsed = await kinds[name]()
                if round_ >= WARM_UP:
                    times[name].append(elapsed)
    _report("async", times)
    for raw in (sdk, same_options):
        await raw.aio.aclose()
        raw.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exchanges", type=int, default=300)
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    # google-genai warns once that its loop is "not recommended" outside chats: not news here.
    logging.getLogger("google_genai.models").setLevel(logging.ERROR)
    with EmulatorProcess(latency=args.latency) as server:
        server.script_function_calls(STEPS)
        print(
            f"emulator latency {args.latency * 1e3:.0f} ms, {args.exchanges} exchanges of each "
            "kind (3 model requests and 2 function calls each)"
        )
        sync_rounds(server, args.exchanges)
        asyncio.run(async_rounds(server, args.exchanges))


if __name__ == "__main__":
    main()
