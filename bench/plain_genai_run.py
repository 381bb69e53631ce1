"""The baseline for bench_run_speed.py: what a user writes without greycloud.

Reads a JSONL file of ``{"id", "prompt"}`` lines, sends every prompt with google-genai's
asyncio client under an ``asyncio.Semaphore``, and appends ``{"id", "text"}`` lines to the
output as answers arrive (plain buffered writes: no fsync, no resume, no retries, no limits).

    python plain_genai_run.py INPUT.jsonl OUTPUT.jsonl --concurrency 64

The endpoint and API key come from GREYCLOUD_ENDPOINT and GOOGLE_API_KEY (express mode).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os

from google import genai
from google.genai import types

MODEL = "gemini-2.5-flash"


async def main(input_path: str, output_path: str, concurrency: int) -> None:
    client = genai.Client(
        vertexai=True,
        api_key=os.environ["GOOGLE_API_KEY"],
        http_options=types.HttpOptions(
            base_url=os.environ["GREYCLOUD_ENDPOINT"],
            api_version="v1",
            retry_options=types.HttpRetryOptions(attempts=1),
        ),
    )
    with open(input_path, encoding="utf-8") as handle:
        lines = [json.loads(line) for line in handle if line.strip()]
    semaphore = asyncio.Semaphore(concurrency)
    with open(output_path, "a", encoding="utf-8") as output:

        async def one(line: dict[str, str]) -> None:
            async with semaphore:
                response = await client.aio.models.generate_content(
                    model=MODEL, contents=line["prompt"]
                )
            output.write(json.dumps({"id": line["id"], "text": response.text}) + "\n")

        await asyncio.gather(*(one(line) for line in lines))
    await client.aio.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--concurrency", type=int, default=64)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.input, arguments.output, arguments.concurrency))
