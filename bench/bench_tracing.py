"""Tracing benchmark: what greycloud's OpenTelemetry spans and metrics add to a call.

    .venv/bin/python bench/bench_tracing.py [--rounds 8] [--calls 200] [--latency 0.05]

The emulator (own process, zero latency unless ``--latency``) answers small prompts;
greycloud's limits are far above the load. Five setups, each in a fresh worker process, so
that one process's global tracer provider cannot leak into another's figures:

- ``off``: opentelemetry cannot be imported (greycloud without the ``otel`` extra);
- ``api``: the API installed, no SDK (what a library user gets who never set up tracing);
- ``traces``: the SDK's tracer provider, a ``BatchSpanProcessor`` into an exporter that drops
  the spans (tracing on, metrics left to the API's no-op meter);
- ``lean``: traces as above, with ``GREYCLOUD_OTEL_ATTEMPT_SPANS=retried`` (no span of its
  own for a first attempt that succeeds);
- ``sdk``: traces as above plus a ``MeterProvider`` whose reader collects the metrics at the
  end (everything recorded).

The five workers run side by side and take turns: the parent asks each, one at a time in a
freshly shuffled order, for one timed sync or async ``generate_with_retry`` call, so that the
machine's load hits all five alike. Printed, after a warm-up: the median latency per setup
and its ratio to ``off``, over ``--rounds`` rounds of fresh workers. Target: traces / off
<= 1.05.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

SETUPS = ("off", "api", "traces", "lean", "sdk")
WARM_UP = 30
SEED = 13
PROMPT = "Say something short about lanterns."

BLOCK_OTEL = """
import sys
class _NoOtel:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "opentelemetry":
            raise ModuleNotFoundError(name=name)
        return None
sys.meta_path.insert(0, _NoOtel())
"""


def _install_sdk(with_metrics: bool = True) -> Any:
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
    if not with_metrics:
        return None
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    return reader


def worker(setup: str, base_url: str) -> None:
    """Answer the parent's commands on stdin: ``sync`` / ``async`` make one timed call and
    print its latency; ``done`` checks what was recorded and stops."""
    if setup == "off":
        exec(BLOCK_OTEL)  # before greycloud is imported
    if setup == "lean":
        os.environ["GREYCLOUD_OTEL_ATTEMPT_SPANS"] = "retried"
    reader = _install_sdk(setup == "sdk") if setup in ("traces", "lean", "sdk") else None

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
    sync_client = GreyCloudClient(config, credentials=credentials())
    async_client = GreyCloudAsyncClient(config, credentials=credentials())
    loop = asyncio.new_event_loop()
    for line in sys.stdin:
        command = line.strip()
        if command == "done":
            break
        started = time.perf_counter()
        if command == "sync":
            sync_client.generate_with_retry(PROMPT)
        else:
            loop.run_until_complete(async_client.generate_with_retry(PROMPT))
        print(time.perf_counter() - started, flush=True)
    loop.run_until_complete(async_client.aclose())
    loop.close()
    sync_client.close()
    if reader is not None:
        data = reader.get_metrics_data()
        assert data is not None and data.resource_metrics, "the SDK recorded no metrics"
    imported = any(name.split(".")[0] == "opentelemetry" for name in sys.modules)
    assert imported == (setup != "off"), f"{setup}: opentelemetry imported: {imported}"


class Worker:
    def __init__(self, setup: str, base_url: str) -> None:
        command = [sys.executable, __file__, "--worker", setup, "--base-url", base_url]
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )

    def call(self, kind: str) -> float:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(kind + "\n")
        self.process.stdin.flush()
        return float(self.process.stdout.readline())

    def finish(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("done\n")
        self.process.stdin.close()
        if self.process.wait(timeout=60) != 0:
            raise SystemExit("a worker failed (see its error above)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds the emulator takes per call"
    )
    parser.add_argument("--worker", choices=SETUPS, help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.base_url)
        return

    from bench_limiter_support import EmulatorProcess

    rng = random.Random(SEED)
    results: dict[str, dict[str, list[float]]] = {s: {"sync": [], "async": []} for s in SETUPS}
    with EmulatorProcess(latency=args.latency) as server:
        for _ in range(args.rounds):
            # Fresh workers each round: a process that happens to share a core with the
            # emulator for its whole life would otherwise bias one setup.
            starting = list(SETUPS)
            rng.shuffle(starting)
            workers = {setup: Worker(setup, server.base_url) for setup in starting}
            for number in range(WARM_UP + args.calls):
                for kind in ("sync", "async"):
                    order = list(SETUPS)
                    rng.shuffle(order)
                    for setup in order:
                        latency = workers[setup].call(kind)
                        if number >= WARM_UP:
                            results[setup][kind].append(latency)
            for each in workers.values():
                each.finish()
    print(
        f"{args.rounds} rounds x {args.calls} calls per setup and kind, interleaved, "
        f"emulator latency {args.latency:g} s"
    )
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
