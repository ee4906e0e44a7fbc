"""Telemetry that exports over OTLP/HTTP (``cascade run --otel``), saying once when it fails."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from cascade.telemetry import Telemetry

__all__ = ["otlp_telemetry"]


def otlp_telemetry(
    endpoint: str | None, say: Callable[[str], None], *, content: bool = False
) -> Telemetry:
    """Telemetry exported over OTLP/HTTP to ``endpoint`` (a base URL; ``None``: the environment).

    ``content`` also exports answers and task inputs (see :class:`Telemetry`).

    Export attempts time out after 2 s; the first failure of traces or of metrics is reported
    once through ``say``, and what would follow it is dropped.
    """
    from opentelemetry.sdk.resources import Resource  # noqa: PLC0415  # the otel extra

    # The exporters log every failure with a traceback; it is said once, in a sentence, instead.
    logging.getLogger("opentelemetry.exporter").setLevel(logging.CRITICAL)
    failures = _Failures(say)
    base = endpoint.rstrip("/") if endpoint else None
    resource = Resource.create({"service.name": "cascade"})
    spans, metrics = _span_exporter(base, failures), _metric_exporter(base, failures)
    return Telemetry(spans, metrics, resource=resource, content=content)


class _Failures:
    """Which exports failed: each is said once, and what follows it is dropped."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self._say = say
        self.failed: set[str] = set()

    def note(self, what: str, ok: bool) -> None:
        if not ok and what not in self.failed:
            self.failed.add(what)
            self._say(f"telemetry: exporting {what} failed; the rest of them is dropped")


def _span_exporter(base: str | None, failures: _Failures) -> Any:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
        OTLPSpanExporter,
    )
    from opentelemetry.sdk.trace.export import SpanExportResult  # noqa: PLC0415

    class Spans(OTLPSpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            if "traces" in failures.failed:
                return SpanExportResult.FAILURE
            result = super().export(spans)
            failures.note("traces", result == SpanExportResult.SUCCESS)
            return result

    return Spans(endpoint=f"{base}/v1/traces" if base else None, timeout=2)


def _metric_exporter(base: str | None, failures: _Failures) -> Any:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (  # noqa: PLC0415
        OTLPMetricExporter,
    )
    from opentelemetry.sdk.metrics.export import MetricExportResult  # noqa: PLC0415

    class Metrics(OTLPMetricExporter):
        def export(
            self, metrics_data: Any, timeout_millis: float | None = 10_000, **kwargs: Any
        ) -> MetricExportResult:
            if "metrics" in failures.failed:
                return MetricExportResult.FAILURE
            result = super().export(metrics_data, timeout_millis=timeout_millis, **kwargs)
            failures.note("metrics", result == MetricExportResult.SUCCESS)
            return result

    return Metrics(endpoint=f"{base}/v1/metrics" if base else None, timeout=2)
