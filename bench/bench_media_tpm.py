"""Media benchmark: tokens per minute with images in the mix, today's estimate against the old one.

    .venv/bin/python bench/bench_media_tpm.py [--seconds 60]

The emulator (own process) enforces TPM=120,000 (and a generous RPM) over exact rolling
60-second windows and counts image tokens by their real dimensions. The workload: one call in
four carries a 1024x1024 PNG (4 tiles, 1,032 tokens on Gemini 2.x) besides its ~150-token text,
the rest are text only. Each client (async, 24 tasks; sync, 12 threads) runs it for ``--seconds``
twice in the same run:

* "by modality": this code; images sized from their header, calibration per modality;
* "text only (old)": the estimate before media were priced, reproduced in-process: only text is
  estimated and one total-based calibration per model learns from every call (what main did).

Every call takes 2 s in the emulator before it is admitted and charged (as the service takes
time with an image), so each run lasts ``--seconds`` plus that latency: the server then sees
``--seconds`` of arrivals. Printed per run: the prompt tokens of the busiest 60-second window the
server saw against its TPM (with ``--seconds 60``, the whole run), the requests, and the 429s it
sent. Targets for "by modality": >= 97% of TPM and zero 429s.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from bench_limiter_support import MODEL, EmulatorProcess, credentials, prompt
from google.genai import types

from greycloud import GreyCloudAsyncClient, GreyCloudClient
from greycloud._async import rate_limiter as async_limiter
from greycloud._core import request as _request
from greycloud._core.token_estimate import PromptEstimate
from greycloud._core.token_rules import TEXT, text_tokens
from greycloud._sync import rate_limiter as sync_limiter
from greycloud.testing import samples

RPM, TPM, TEXT_TOKENS = 100_000, 120_000, 150
LATENCY = 2.0  # seconds per call, about what an image call takes on the service
IMAGE = types.Part.from_bytes(data=samples.png(1024, 1024), mime_type="image/png")


def workload() -> Iterator[Any]:
    """Endless prompts: every fourth one carries the image."""
    rng = random.Random(1)
    number = 0
    while True:
        text = prompt(TEXT_TOKENS, rng)
        yield [text, IMAGE] if number % 4 == 3 else text
        number += 1


@contextmanager
def text_only_estimates() -> Iterator[None]:
    """The old behaviour: text-only estimates, one total-based calibration (no details used)."""
    original_estimate = _request.prompt_estimate
    originals = (async_limiter.prompt_details, sync_limiter.prompt_details)

    def text_only(contents: Any, system: Any, model: str, config: Any) -> PromptEstimate:
        chars = len(_request.text_of(contents)) + len(_request.text_of(system))
        return PromptEstimate({TEXT: max(1, text_tokens(chars))})

    _request.prompt_estimate = text_only  # type: ignore[assignment]
    async_limiter.prompt_details = sync_limiter.prompt_details = lambda usage: None  # type: ignore[assignment]
    try:
        yield
    finally:
        _request.prompt_estimate = original_estimate  # type: ignore[assignment]
        async_limiter.prompt_details, sync_limiter.prompt_details = originals  # type: ignore[assignment]


async def async_load(server: EmulatorProcess, seconds: float, tasks: int) -> None:
    config = server.config(rpm=RPM, tpm=TPM, max_concurrency=64)
    prompts = workload()
    async with GreyCloudAsyncClient(config, credentials=credentials()) as client:

        async def work() -> None:
            while True:
                await client.generate_with_retry(next(prompts), max_retries=20, max_delay=5)

        workers = [asyncio.create_task(work()) for _ in range(tasks)]
        await asyncio.sleep(seconds + LATENCY)
        snapshot.append(server.stats())
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)


def sync_load(server: EmulatorProcess, seconds: float, threads: int) -> None:
    config = server.config(rpm=RPM, tpm=TPM, max_concurrency=64)
    deadline = time.monotonic() + seconds + LATENCY
    prompts = workload()
    lock = threading.Lock()
    with GreyCloudClient(config, credentials=credentials()) as client:

        def work() -> None:
            while time.monotonic() < deadline:
                with lock:
                    contents = next(prompts)
                client.generate_with_retry(contents, max_retries=20, max_delay=5)

        pool = [threading.Thread(target=work) for _ in range(threads)]
        for thread in pool:
            thread.start()
        time.sleep(seconds + LATENCY)
        snapshot.append(server.stats())  # counted at the deadline; threads finish their call
        for thread in pool:
            thread.join()


snapshot: list[Any] = []


def measure(name: str, server: EmulatorProcess, seconds: float, run: Callable[[], None]) -> None:
    server.reset()
    snapshot.clear()
    run()
    stats = snapshot[0] if snapshot else server.stats()
    model = stats.models.get(MODEL)
    peak = model.peak_tpm if model else 0
    ideal = TPM * min(seconds, 60.0) / 60
    print(
        f"{name:<38} busiest 60 s window {peak / ideal:7.2%} of TPM ({peak:,}/{ideal:,.0f} "
        f"tokens); requests {model.accepted if model else 0}; 429s {stats.rejected}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    seconds = args.seconds
    with EmulatorProcess(rpm=RPM, tpm=TPM, latency=LATENCY) as server:
        for label, estimates in (("by modality", None), ("text only (old)", text_only_estimates)):
            for client, run in (
                ("async, 24 tasks", lambda: asyncio.run(async_load(server, seconds, 24))),
                ("sync, 12 threads", lambda: sync_load(server, seconds, 12)),
            ):
                if estimates is None:
                    measure(f"{client}, {label}", server, seconds, run)
                else:
                    with estimates():
                        measure(f"{client}, {label}", server, seconds, run)


if __name__ == "__main__":
    main()
