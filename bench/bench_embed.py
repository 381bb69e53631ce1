"""Embedding benchmark: how much of an emulator's embedding quota ``embed_content`` uses.

    .venv/bin/python bench/bench_embed.py [--texts 20000] [--tpm 160000]

The emulator (own process) enforces a token quota per rolling 60-second window on
``gemini-embedding-001`` (Vertex AI: up to 100 inputs a request); the request quota is set far
above what the run needs, so tokens bind. Each client embeds ``--texts`` short texts (8 to 16
tokens each, about 12 on average) in ONE ``embed_content`` call, configured with the same
quota. Printed per client: the tokens the server accepted against the ideal (TPM x elapsed /
60, elapsed from the call to its return), the busiest 60-second window, the requests and the
429s. Targets: >= 97% of the ideal, zero 429s. With the defaults (about 248,000 tokens at
160,000 a minute) each run takes about 95 s, so the rolling window binds for its second half.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections.abc import Callable

from bench_limiter_support import EmulatorProcess, credentials

from greycloud import GreyCloudAsyncClient, GreyCloudClient

MODEL = "gemini-embedding-001"
RPM = 100_000
WORDS = ("alpha", "bravo", "delta", "echo", "lima", "oscar", "tango", "kilo")


def texts(count: int) -> list[str]:
    """Distinct short texts of 32 to 64 characters (8 to 16 tokens at four characters each)."""
    rng = random.Random(3)
    out = []
    for number in range(count):
        length = rng.randint(32, 64)
        words = f"{number} " + " ".join(rng.choice(WORDS) for _ in range(16))
        out.append(words[:length])
    return out


async def async_run(server: EmulatorProcess, inputs: list[str], tpm: int) -> tuple[int, float]:
    """(embeddings returned, seconds the embed_content call took)."""
    config = server.config(rpm=RPM, tpm=tpm, max_concurrency=8, embedding_model=MODEL)
    async with GreyCloudAsyncClient(config, credentials=credentials()) as client:
        started = time.monotonic()
        response = await client.embed_content(inputs, output_dimensionality=8)
        elapsed = time.monotonic() - started
    return len(response.embeddings or []), elapsed


def sync_run(server: EmulatorProcess, inputs: list[str], tpm: int) -> tuple[int, float]:
    config = server.config(rpm=RPM, tpm=tpm, max_concurrency=8, embedding_model=MODEL)
    with GreyCloudClient(config, credentials=credentials()) as client:
        started = time.monotonic()
        response = client.embed_content(inputs, output_dimensionality=8)
        elapsed = time.monotonic() - started
    return len(response.embeddings or []), elapsed


def measure(
    name: str,
    server: EmulatorProcess,
    tpm: int,
    inputs: list[str],
    run: Callable[[], tuple[int, float]],
) -> None:
    server.reset()
    embedded, elapsed = run()
    stats = server.stats()
    model = stats.models.get(MODEL)
    tokens = model.prompt_tokens if model else 0
    ideal = tpm * elapsed / 60
    print(
        f"{name:<14} {embedded:,}/{len(inputs):,} embedded in {elapsed:5.1f}s; tokens "
        f"{tokens:,} = {tokens / ideal:7.2%} of ideal; busiest window "
        f"{model.peak_tpm if model else 0:,}/{tpm:,} tokens; requests "
        f"{model.accepted if model else 0}; 429s {stats.rejected}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=20_000)
    parser.add_argument("--tpm", type=int, default=160_000)
    args = parser.parse_args()
    inputs = texts(args.texts)
    with EmulatorProcess(rpm=RPM, tpm=args.tpm) as server:
        measure(
            "async client",
            server,
            args.tpm,
            inputs,
            lambda: asyncio.run(async_run(server, inputs, args.tpm)),
        )
        measure("sync client", server, args.tpm, inputs, lambda: sync_run(server, inputs, args.tpm))


if __name__ == "__main__":
    main()
