"""Beam's own ``GeminiModelHandler`` and greycloud's handler on the same pipeline and quota.

    .venv/bin/python bench/bench_beam.py [--elements 1200] [--rpm 600] [--workers 4]

One emulator in its own process enforces RPM ``--rpm`` and answers after ``--latency`` seconds
(a model's think time). The same pipeline (``Create`` → ``Reshuffle`` → ``RunInference`` → count)
runs on the DirectRunner with ``--workers`` worker processes, once per handler:

- Beam's ``GeminiModelHandler`` (``apache_beam.ml.inference.gemini_inference``), pointed at the
  emulator by overriding ``create_client`` only. It sends a whole batch as one request (one
  answer for the batch), so it runs with ``max_batch_size=1`` to answer every element; its
  per-worker throttling and retries are its own. ``with_exception_handling()`` keeps the
  elements it gives up on from failing the pipeline.
- greycloud's ``GreyCloudModelHandler``, the workers sharing the quota through a local
  ``redis-server`` (batches of up to 50, run concurrently under the limiter).

Printed per handler: completion time, elements answered and failed, requests the server saw,
429s it sent, and retries (requests beyond one per answered element).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import apache_beam as beam
from apache_beam.ml.inference.base import RunInference
from apache_beam.ml.inference.gemini_inference import GeminiModelHandler, generate_from_string
from apache_beam.options.pipeline_options import PipelineOptions
from bench_limiter_support import credentials, local_redis
from google import genai
from google.genai import types

from greycloud.beam import GreyCloudModelHandler, SplitFailures
from greycloud.testing import EmulatorProcess

MODEL = "gemini-2.5-flash"


class EmulatedGeminiModelHandler(GeminiModelHandler):  # type: ignore[misc]
    """Beam's handler as it is, with its client pointed at the emulator (DESIGN.md §4)."""

    def __init__(self, base_url: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._base_url = base_url

    def create_client(self) -> genai.Client:
        return genai.Client(
            vertexai=True,
            project=self.project,
            location=self.location,
            credentials=credentials(),
            http_options=types.HttpOptions(base_url=self._base_url, api_version="v1"),
        )


def _count(results: Any, label: str) -> Any:
    return results | f"Count {label}" >> beam.combiners.Count.Globally()


def run_pipeline(
    handler: Any, elements: Sequence[str], workers: int, greycloud: bool
) -> tuple[float, int, int]:
    """Seconds to run, elements answered, elements failed."""
    options = PipelineOptions(
        flags=[],
        direct_num_workers=workers,
        direct_running_mode="multi_processing",
        # Beam's handler logs every 429 it meets as an error; the table counts them instead.
        default_sdk_harness_log_level="CRITICAL",
    )
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        with beam.Pipeline(options=options) as pipeline:
            results = pipeline | beam.Create(list(elements)) | "Reshuffle" >> beam.Reshuffle()
            if greycloud:
                answered, failed = results | RunInference(handler) | SplitFailures()
            else:
                answered, dead = results | RunInference(handler).with_exception_handling()
                failed = dead.failed_inferences | beam.FlatMap(lambda batch_error: batch_error[0])
            for label, output in (("answered", answered), ("failed", failed)):
                _ = _count(output, label) | f"Write {label}" >> beam.io.WriteToText(
                    f"{out}/{label}"
                )
        seconds = time.perf_counter() - start
        counts = {
            label: sum(int(p.read_text() or 0) for p in _shards(out, label))
            for label in ("answered", "failed")
        }
    return seconds, counts["answered"], counts["failed"]


def _shards(directory: str, label: str) -> list[Path]:
    return sorted(Path(directory).glob(f"{label}*"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--elements", type=int, default=1200)
    parser.add_argument("--rpm", type=int, default=600)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--handlers", default="beam,greycloud", help="which to run, in order")
    args = parser.parse_args()
    with (
        local_redis() as redis,
        EmulatorProcess(rpm=args.rpm, latency=args.latency) as server,
    ):
        measure(server, redis.url, args)


def measure(server: EmulatorProcess, redis_url: str, args: argparse.Namespace) -> None:
    elements = [f"element {i}: say something about the number {i}" for i in range(args.elements)]
    handlers = {
        "beam": (
            EmulatedGeminiModelHandler(
                server.base_url,
                model_name=MODEL,
                request_fn=generate_from_string,
                project=server.project,
                location=server.location,
                max_batch_size=1,
            ),
            False,
        ),
        "greycloud": (
            GreyCloudModelHandler(
                server.config(
                    model=MODEL, rpm=args.rpm, max_concurrency=16, rate_limit_storage=redis_url
                ),
                credentials=credentials(),
                max_batch_size=50,
            ),
            True,
        ),
    }
    print(
        f"{args.elements} elements, {args.workers} worker processes, server quota RPM "
        f"{args.rpm}, {args.latency:.2f} s per answer"
    )
    print(
        f"{'handler':<33} {'time':>8} {'answered':>9} {'failed':>7} {'requests':>9} "
        f"{'429s':>6} {'retries':>8}"
    )
    names = {"beam": "Beam GeminiModelHandler", "greycloud": "greycloud GreyCloudModelHandler"}
    for key in args.handlers.split(","):
        handler, greycloud = handlers[key]
        name = names[key]
        server.reset()
        seconds, answered, failed = run_pipeline(handler, elements, args.workers, greycloud)
        stats = server.stats()[MODEL]
        requests = stats.accepted + stats.rejected + stats.faulted
        print(
            f"{name:<33} {seconds:>7.1f}s {answered:>9} {failed:>7} {requests:>9} "
            f"{stats.rejected:>6} {requests - answered:>8}"
        )


if __name__ == "__main__":
    main()
