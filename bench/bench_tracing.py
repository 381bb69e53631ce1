"""Tracing benchmark: what greycloud's OpenTelemetry spans and metrics add to a call.

    .venv/bin/python bench/bench_tracing.py [--rounds 8] [--calls 150]

The emulator (own process, zero latency) answers small prompts; greycloud's limits are far
above the load. Three setups, each in a fresh worker process, so that one process's global
tracer provider cannot leak into another's figures:

- ``off``: opentelemetry cannot be imported (greycloud without the ``otel`` extra);
- ``api``: the API installed, no SDK (what a library user gets who never set up tracing);
- ``sdk``: the SDK recording everything: a ``BatchSpanProcessor`` into an exporter that drops
  the spans, and a ``MeterProvider`` whose reader collects the metrics at the end.

Each round runs one worker of every setup in a freshly shuffled order; each worker times
``--calls`` sync and async ``generate_with_retry`` calls after a warm-up. Printed: the median
latency per setup and its ratio to ``off``. Target: sdk / off <= 1.05.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

SETUPS = ("off", "api", "sdk")
WARM_UP = 30
SEED = 13

BLOCK_OTEL = """
import sys
class _NoOtel:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "opentelemetry":
            raise ModuleNotFoundError(name=name)
        return None
sys.meta_path.insert(0, _NoOtel())
"""


def _install_sdk() -> Any:
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Drop(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Drop()))
    trace.set_tracer_provider(provider)
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    return reader


def worker(setup: str, base_url: str, calls: int) -> None:
    if setup == "off":
        exec(BLOCK_OTEL)  # before greycloud is imported
    reader = _install_sdk() if setup == "sdk" else None

    from bench_limiter_support import MODEL, credentials

    from greycloud import GreyCloudAsyncClient, GreyCloudClient, GreyCloudConfig

    config = GreyCloudConfig(
        project_id="test-project",
        location="us-central1",
        endpoint=base_url,
        api_version="v1",
        model=MODEL,
        rpm=1_000_000,
        tpm=1_000_000_000,
    )
    timings: dict[str, list[float]] = {"sync": [], "async": []}
    with GreyCloudClient(config, credentials=credentials()) as client:
        for number in range(WARM_UP + calls):
            started = time.perf_counter()
            client.generate_with_retry("Say something short about lanterns.")
            if number >= WARM_UP:
                timings["sync"].append(time.perf_counter() - started)

    async def run_async() -> None:
        async with GreyCloudAsyncClient(config, credentials=credentials()) as client:
            for number in range(WARM_UP + calls):
                started = time.perf_counter()
                await client.generate_with_retry("Say something short about lanterns.")
                if number >= WARM_UP:
                    timings["async"].append(time.perf_counter() - started)

    asyncio.run(run_async())
    if reader is not None:
        data = reader.get_metrics_data()
        assert data is not None and data.resource_metrics, "the SDK recorded no metrics"
    imported = any(name.split(".")[0] == "opentelemetry" for name in sys.modules)
    assert imported == (setup != "off"), f"{setup}: opentelemetry imported: {imported}"
    print(json.dumps(timings))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--calls", type=int, default=150)
    parser.add_argument("--worker", choices=SETUPS, help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.base_url, args.calls)
        return

    from bench_limiter_support import EmulatorProcess

    rng = random.Random(SEED)
    results: dict[str, dict[str, list[float]]] = {s: {"sync": [], "async": []} for s in SETUPS}
    with EmulatorProcess() as server:
        for _ in range(args.rounds):
            order = list(SETUPS)
            rng.shuffle(order)
            for setup in order:
                command = [sys.executable, __file__, "--worker", setup]
                command += ["--base-url", server.base_url, "--calls", str(args.calls)]
                done = subprocess.run(command, capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    raise SystemExit(f"{setup} worker failed:\n{done.stderr}")
                for kind, values in json.loads(done.stdout).items():
                    results[setup][kind].extend(values)
    print(f"{args.rounds} rounds x {args.calls} calls per setup and kind, zero emulator latency")
    print(f"{'setup':<6} {'sync median':>12} {'ratio':>7} {'async median':>13} {'ratio':>7}")
    base = {kind: statistics.median(results["off"][kind]) for kind in ("sync", "async")}
    for setup in SETUPS:
        medians = {kind: statistics.median(results[setup][kind]) for kind in ("sync", "async")}
        print(
            f"{setup:<6} {medians['sync'] * 1e3:>9.3f} ms {medians['sync'] / base['sync']:>7.3f}"
            f" {medians['async'] * 1e3:>10.3f} ms {medians['async'] / base['async']:>7.3f}"
        )


if __name__ == "__main__":
    main()
