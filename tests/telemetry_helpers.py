"""An OpenTelemetry SDK for the telemetry tests: in-memory spans and metrics.

The SDK's providers are global and can be set once per process, so they are
installed once (by the first telemetry test) and record only while a test
asks them to: the other tests of the process pay for spans that go nowhere.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, Span, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

SCOPE = "redis_jwt"


class _WhileRecording(SimpleSpanProcessor):
    """Exports spans only while a test records."""

    recording = False

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if self.recording:
            super().on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        if self.recording:
            super().on_end(span)


class Telemetry:
    """The process's SDK: spans recorded during :meth:`recording`, and metric points."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.reader = InMemoryMetricReader()
        self._processor = _WhileRecording(self.exporter)
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(self._processor)
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(MeterProvider(metric_readers=[self.reader]))

    @contextlib.contextmanager
    def recording(self) -> Iterator[None]:
        """Record spans (cleared first) inside the block."""
        self.exporter.clear()
        self._processor.recording = True
        try:
            yield
        finally:
            self._processor.recording = False

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        """The finished spans recorded so far (of one name, when given)."""
        found = self.exporter.get_finished_spans()
        return [s for s in found if name is None or s.name == name]

    def points(self, name: str) -> dict[tuple[tuple[str, str], ...], float]:
        """The cumulative value of instrument ``name`` per attribute set.

        A counter's value is its sum; a histogram's is its count of records.
        """
        data = self.reader.get_metrics_data()
        values: dict[tuple[tuple[str, str], ...], float] = {}
        if data is None:
            return values
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                if scope.scope.name != SCOPE:
                    continue
                for metric in scope.metrics:
                    if metric.name != name:
                        continue
                    for point in metric.data.data_points:
                        attributes = point.attributes or {}
                        key = tuple(sorted((k, str(v)) for k, v in attributes.items()))
                        value = getattr(point, "count", None)
                        values[key] = float(value if value is not None else point.value)  # type: ignore[union-attr]
        return values

    def bounds(self, name: str) -> tuple[float, ...]:
        """The bucket boundaries of histogram ``name`` (empty when it recorded nothing)."""
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data is not None else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if scope.scope.name == SCOPE and metric.name == name:
                        for point in metric.data.data_points:
                            return tuple(getattr(point, "explicit_bounds", ()))
        return ()

    def units(self) -> dict[str, str]:
        """The unit of every ``redis_jwt`` instrument that has recorded something."""
        data = self.reader.get_metrics_data()
        found: dict[str, str] = {}
        if data is None:
            return found
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                if scope.scope.name == SCOPE:
                    found.update({m.name: m.unit or "" for m in scope.metrics})
        return found


def delta(
    after: Mapping[tuple[tuple[str, str], ...], float],
    before: Mapping[tuple[tuple[str, str], ...], float],
) -> dict[tuple[tuple[str, str], ...], float]:
    """What changed between two :meth:`Telemetry.points` readings (zero changes left out)."""
    return {
        key: value - before.get(key, 0.0)
        for key, value in after.items()
        if value != before.get(key, 0.0)
    }


_INSTALLED: list[Telemetry] = []


def installed() -> Telemetry:
    """The process's SDK, installed on first use."""
    if not _INSTALLED:
        _INSTALLED.append(Telemetry())
    return _INSTALLED[0]
