"""What a run cost, and where its telemetry goes: the tokens-and-cost summary line, and the
OpenTelemetry SDK set up for ``--otel`` (or the standard ``OTEL_*_EXPORTER`` variables)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any

import typer

from .._core.pricing import PRICING_ENV, Pricing
from .._core.usage import UsageMeter
from ..errors import ConfigError
from .common import EXIT_USAGE, fail

PricingOption = Annotated[
    Path | None,
    typer.Option(
        "--pricing",
        metavar="FILE",
        envvar=PRICING_ENV,
        help="JSON prices that override greycloud's table for the cost estimate "
        '({"models": {"<model>": {"input": ..., "output": ...}}}, USD per million tokens).',
    ),
]
OtelOption = Annotated[
    bool,
    typer.Option(
        "--otel",
        help="Export traces and metrics with the OpenTelemetry SDK (exporters from "
        "OTEL_TRACES_EXPORTER / OTEL_METRICS_EXPORTER, default otlp). Setting either variable "
        "does the same.",
    ),
]
EXPORTER_VARIABLES = {
    "OTEL_TRACES_EXPORTER": "opentelemetry_traces_exporter",
    "OTEL_METRICS_EXPORTER": "opentelemetry_metrics_exporter",
}
SDK_HINT = "pip install opentelemetry-sdk opentelemetry-exporter-otlp"


def load_pricing(path: Path | None) -> Pricing:
    """The pricing table for the summary; a bad file stops the command before any request."""
    try:
        return Pricing.load(path)
    except ConfigError as exc:
        raise fail(str(exc), EXIT_USAGE) from None


def usage_summary(meter: UsageMeter, pricing: Pricing) -> str | None:
    """``tokens: ... ; estimated cost ...`` for what ``meter`` counted (None: no answers)."""
    totals = meter.totals()
    if not totals.responses:
        return None
    line = (
        f"tokens: {totals.input:,} input ({totals.cached:,} cached), {totals.output:,} output, "
        f"{totals.thinking:,} thinking"
    )
    # Input by modality is on the run's own summary line (see progress.summary).
    estimate = pricing.estimate(meter)
    if estimate.by_model:
        line += f"; estimated cost ${estimate.total:,.4f}"
        if len(estimate.by_model) > 1:
            line += " (" + ", ".join(
                f"{model} ${cost:,.4f}" for model, cost in sorted(estimate.by_model.items())
            )
            line += ")"
    if estimate.unpriced:
        line += f"; no price for {', '.join(estimate.unpriced)} (add it with --pricing FILE)"
    return line


def wants_export(flag: bool) -> bool:
    return flag or any(os.environ.get(variable) for variable in EXPORTER_VARIABLES)


@contextlib.contextmanager
def exported_telemetry(flag: bool) -> Iterator[None]:
    """Send the traces and metrics of the block to the configured exporters, flushed at its end.

    Nothing happens without ``--otel`` or an exporter variable, nor when the program already
    has a tracer provider (e.g. run under ``opentelemetry-instrument``).
    """
    if not wants_export(flag):
        yield
        return
    try:
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise fail(
            f"exporting telemetry needs the OpenTelemetry SDK ({exc.name} is not installed): "
            f"{SDK_HINT}",
            EXIT_USAGE,
        ) from None
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        yield  # someone else set up OpenTelemetry for this process
        return
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "greycloud")})
    tracer_provider = TracerProvider(resource=resource)
    for exporter in _exporters("OTEL_TRACES_EXPORTER"):
        tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
    readers = [PeriodicExportingMetricReader(e) for e in _exporters("OTEL_METRICS_EXPORTER")]
    meter_provider = MeterProvider(resource=resource, metric_readers=readers)
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)
    try:
        yield
    finally:
        tracer_provider.shutdown()
        meter_provider.shutdown()


def _exporters(variable: str) -> list[Any]:
    names = [n.strip() for n in os.environ.get(variable, "otlp").split(",") if n.strip()]
    exporters = []
    for name in names:
        if name == "none":
            continue
        found = entry_points(group=EXPORTER_VARIABLES[variable], name=name)
        if not found:
            raise fail(
                f"{variable}={name}: no such exporter is installed (console comes with "
                f"opentelemetry-sdk, otlp with opentelemetry-exporter-otlp): {SDK_HINT}",
                EXIT_USAGE,
            )
        exporters.append(next(iter(found)).load()())
    return exporters
