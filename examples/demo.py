"""greycloud's tour on the embedded Vertex AI emulator: no credentials, no network.

    python examples/demo.py

Sync and async generation, streaming, token counting, a stream that breaks mid-way and resumes
without repeating itself, and a burst of requests kept inside the server's quota.
"""

from __future__ import annotations

import asyncio
import time

from greycloud import GreyCloudAsyncClient, GreyCloudClient
from greycloud.testing import Fault, VertexEmulator

BURST = 40
RPM = 240  # what the emulated server enforces, and what the client is told

BANNER = """\
greycloud demo: every answer below is made up by greycloud's local Vertex AI emulator
(greycloud.testing), not by a model: words picked from a fixed list by a hash of the request,
so the same prompt always gets the same text. No credentials, no network, no cost.
In streamed output, each | marks where one streamed chunk ends and the next begins.
"""


def sync_part(emulator: VertexEmulator) -> None:
    # A quota well above what the tour needs, so that its calls never wait for a start.
    config = emulator.config(rpm=600)
    with GreyCloudClient(config, credentials=emulator.credentials) as client:
        answer = client.generate_content("What is a rate limit?")
        print(f"sync generate_content: {answer.text!r}")
        print("sync stream:          ", end="")
        for text in client.generate_content_stream("Describe a river."):
            print(text, end="|", flush=True)
        print()
        print(f"sync count_tokens:     {client.count_tokens('How many tokens is this?')}")


async def async_part(emulator: VertexEmulator) -> None:
    config = emulator.config(rpm=600)
    async with GreyCloudAsyncClient(config, credentials=emulator.credentials) as client:
        answer = await client.generate_content("What is a rate limit?")
        print(f"async generate_content: {answer.text!r}")

        emulator.inject(Fault.cut_stream(after_events=2), path=":streamGenerateContent")
        pieces = [
            text
            async for text in client.generate_with_retry(
                "Describe a river.", streaming=True, base_delay=0.05
            )
        ]
        print(f"async stream, cut after 2 events and resumed: {''.join(pieces)!r}")


async def burst(emulator: VertexEmulator) -> None:
    emulator.reset()
    emulator.set_quota(rpm=RPM)
    config = emulator.config(rpm=RPM, max_concurrency=16)
    started = time.monotonic()
    async with GreyCloudAsyncClient(config, credentials=emulator.credentials) as client:
        await asyncio.gather(*(client.generate_with_retry(f"Question {i}?") for i in range(BURST)))
    elapsed = time.monotonic() - started
    stats = emulator.stats()[config.model]
    print(
        f"burst: {BURST} requests with the server enforcing {RPM} requests/minute: "
        f"{stats.accepted} accepted, {stats.rejected} rejected (429) in {elapsed:.1f} s; "
        f"most in any 60 s window: {stats.peak_rpm}"
    )


def main() -> None:
    print(BANNER)
    with VertexEmulator() as emulator:
        print(f"emulator at {emulator.base_url}\n")
        sync_part(emulator)
        print()
        asyncio.run(async_part(emulator))
        print()
        asyncio.run(burst(emulator))


if __name__ == "__main__":
    main()
