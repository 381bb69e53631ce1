"""The OpenTelemetry SDK with in-memory exporters, installed once for the test process.

A process has one global tracer and meter provider, so they are set on first use and shared:
``otel`` records only while a test that asks for it runs, and hands it what was recorded since
it started (metrics as deltas).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    MeterProvider,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


class _WhileRecording(SimpleSpanProcessor):
    """Exports only while a test records (other tests leave nothing behind)."""

    recording = False

    def on_end(self, span: ReadableSpan) -> None:
        if self.recording:
            super().on_end(span)


class Recorded:
    """What the SDK recorded during one test."""

    def __init__(self, spans: InMemorySpanExporter, reader: InMemoryMetricReader) -> None:
        self._spans = spans
        self._reader = reader

    def spans(self) -> list[ReadableSpan]:
        return list(self._spans.get_finished_spans())

    def metrics(self) -> dict[str, list[Any]]:
        """Each metric's data points since the last call (or the test's start)."""
        data = self._reader.get_metrics_data()
        points: dict[str, list[Any]] = {}
        for resource in data.resource_metrics if data is not None else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    points.setdefault(metric.name, []).extend(metric.data.data_points)
        return points


_DELTA = {
    kind: AggregationTemporality.DELTA
    for kind in (
        Counter,
        UpDownCounter,
        Histogram,
        ObservableCounter,
        ObservableUpDownCounter,
        ObservableGauge,
    )
}
_state: dict[str, Any] = {}


def _install() -> tuple[_WhileRecording, InMemorySpanExporter, InMemoryMetricReader]:
    if not _state:
        exporter = InMemorySpanExporter()
        processor = _WhileRecording(exporter)
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(processor)
        trace.set_tracer_provider(tracer_provider)
        reader = InMemoryMetricReader(preferred_temporality=_DELTA)
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
        _state.update(processor=processor, exporter=exporter, reader=reader)
    return _state["processor"], _state["exporter"], _state["reader"]


@pytest.fixture
def otel() -> Iterator[Recorded]:
    processor, exporter, reader = _install()
    exporter.clear()
    reader.get_metrics_data()  # start the deltas here
    processor.recording = True
    try:
        yield Recorded(exporter, reader)
    finally:
        processor.recording = False
        exporter.clear()
