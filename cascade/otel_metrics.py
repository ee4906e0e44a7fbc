"""A run's OpenTelemetry metrics, summed here and handed to the SDK's exporter as its data.

The SDK's instruments cost about 20 µs per measurement (each one validates and hashes its
attributes), five measurements per model call. A run knows its attributes: they are a handful
of models, tiers and statuses. So the points are added up here, into plain dictionaries keyed
by attribute values (about 1 µs each), and every export builds the SDK's own
:class:`~opentelemetry.sdk.metrics.export.MetricsData` from them, cumulative since the run
began, for the SDK's OTLP exporter to send.

Histograms use the bucket boundaries that the GenAI semantic conventions advise for
``gen_ai.client.token.usage`` and ``gen_ai.client.operation.duration``.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Sequence
from typing import Any

__all__ = ["DURATION_BOUNDS", "TOKEN_BOUNDS", "Aggregates"]

TOKEN_BOUNDS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
                16777216, 67108864)  # fmt: skip
"""Bucket boundaries for ``gen_ai.client.token.usage`` (GenAI semantic conventions)."""
DURATION_BOUNDS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48,
                   40.96, 81.92)  # fmt: skip
"""Bucket boundaries for ``gen_ai.client.operation.duration``, in seconds."""

Key = tuple[tuple[str, Any], ...]
"""A point's attributes, as sorted ``(name, value)`` pairs."""


class _Histogram:
    """Counts per bucket, sum, count, min and max of one attribute set's values."""

    __slots__ = ("bounds", "buckets", "count", "high", "low", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = bounds
        self.buckets = [0] * (len(bounds) + 1)
        self.count = 0
        self.total = 0.0
        self.low = float("inf")
        self.high = float("-inf")


# name, unit, description, kind ("sum" or histogram bounds)
_METRICS: dict[str, tuple[str, str, tuple[float, ...] | None]] = {
    "gen_ai.client.token.usage": ("{token}", "Tokens per model call", TOKEN_BOUNDS),
    "gen_ai.client.operation.duration": ("s", "Model call duration", DURATION_BOUNDS),
    "cascade.cost": ("USD", "Money spent", None),
    "cascade.tasks": ("{task}", "Tasks by final status", None),
    "cascade.tier.decisions": ("{decision}", "Accept, re-ask, escalate or stop, per tier", None),
}


class Aggregates:
    """Sums and histograms of a run's metrics, by name and attributes, since ``start``.

    >>> metrics = Aggregates()
    >>> with metrics.lock:
    ...     metrics.add("cascade.cost", 0.25, (("gen_ai.request.model", "openai/x"),))
    ...     metrics.record("gen_ai.client.operation.duration", 0.03, ())
    >>> sorted(metrics.names())
    ['cascade.cost', 'gen_ai.client.operation.duration']
    """

    def __init__(self) -> None:
        self.start_ns = time.time_ns()
        self._sums: dict[str, dict[Key, float]] = {}
        self._histograms: dict[str, dict[Key, _Histogram]] = {}
        self.lock = threading.Lock()
        """Held around :meth:`add` and :meth:`record` by whoever calls them (one lock for the
        several points of a call); :meth:`metrics_data` and :meth:`names` take it."""

    def names(self) -> list[str]:
        """The metrics that have points."""
        with self.lock:
            return [*self._sums, *self._histograms]

    def add(self, name: str, value: float, key: Key) -> None:
        """Add to a sum (hold :attr:`lock`)."""
        points = self._sums.get(name)
        if points is None:
            points = self._sums[name] = {}
        points[key] = points.get(key, 0.0) + value

    def record(self, name: str, value: float, key: Key) -> None:
        """Count a value in a histogram (hold :attr:`lock`)."""
        points = self._histograms.get(name)
        if points is None:
            points = self._histograms[name] = {}
        histogram = points.get(key)
        if histogram is None:
            bounds = _METRICS[name][2]
            assert bounds is not None, f"{name} is not a histogram"
            histogram = points[key] = _Histogram(bounds)
        histogram.buckets[bisect.bisect_left(histogram.bounds, value)] += 1
        histogram.count += 1
        histogram.total += value
        histogram.low = min(histogram.low, value)
        histogram.high = max(histogram.high, value)

    def metrics_data(self, resource: Any, scope: Any) -> Any:
        """Everything so far as the SDK's ``MetricsData`` (cumulative), for its exporters."""
        from opentelemetry.sdk.metrics.export import (  # noqa: PLC0415  # the otel extra
            AggregationTemporality,
            Histogram,
            Metric,
            MetricsData,
            NumberDataPoint,
            ResourceMetrics,
            ScopeMetrics,
            Sum,
        )

        now, start = time.time_ns(), self.start_ns
        cumulative = AggregationTemporality.CUMULATIVE
        metrics = []
        with self.lock:
            for name, points in self._sums.items():
                unit, description, _ = _METRICS[name]
                numbers = [NumberDataPoint(dict(k), start, now, v) for k, v in points.items()]
                data = Sum(numbers, cumulative, is_monotonic=True)
                metrics.append(Metric(name, description, unit, data))
            for name, histograms in self._histograms.items():
                unit, description, bounds = _METRICS[name]
                assert bounds is not None
                data_points = [_point(key, h, bounds, start, now) for key, h in histograms.items()]
                metrics.append(Metric(name, description, unit, Histogram(data_points, cumulative)))
        scoped = ScopeMetrics(scope, metrics, schema_url="")
        return MetricsData([ResourceMetrics(resource, [scoped], schema_url="")])


def _point(key: Key, h: _Histogram, bounds: Sequence[float], start: int, now: int) -> Any:
    """One histogram's SDK data point."""
    from opentelemetry.sdk.metrics.export import HistogramDataPoint  # noqa: PLC0415

    return HistogramDataPoint(
        dict(key), start, now, h.count, h.total, list(h.buckets), list(bounds), h.low, h.high
    )
