"""OpenTelemetry traces and metrics of a run, following the GenAI semantic conventions.

Each finished task becomes a ``cascade.task`` span with one child span per model call, made
after the fact from the task's recorded steps (their start and end times are the calls'), so
the engine's path pays nothing while export is off and little while it is on. Call spans carry
``gen_ai.operation.name``, ``gen_ai.provider.name``, ``gen_ai.request.model``,
``gen_ai.response.model``, ``gen_ai.usage.input_tokens`` and ``gen_ai.usage.output_tokens``,
``gen_ai.request.temperature`` and ``gen_ai.request.max_tokens`` where the tier sets them, and
``error.type``; cascade's own attributes sit under ``cascade.*`` (tier, step kind, decision,
verdicts with their reasons, cost, run id). A validator that took a millisecond or more (the
sandbox, mypy) is a ``validate <name>`` span under its call, placed after it in the order the
validators ran, with ``cascade.validator``, ``cascade.validator.passed`` and the reason.
Message contents are never exported, and every text goes through the store's secret redaction
first.

Metrics: ``gen_ai.client.token.usage`` and ``gen_ai.client.operation.duration`` (histograms per
model, as the conventions name them), ``cascade.cost`` (USD per model), and ``cascade.tasks``
and ``cascade.tier.decisions`` (per task type, status, tier and decision).

:func:`otlp_telemetry` exports both over OTLP/HTTP (``--otel URL``, or the standard
``OTEL_EXPORTER_OTLP_ENDPOINT``); it needs the ``otel`` extra. When the collector cannot be
reached, the run goes on, the failure is said once, and the rest is dropped.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from cascade.enums import SIDE_CALLS
from cascade.outcome import Outcome, Step
from cascade.secrets import redact
from cascade.types import Tier

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

__all__ = ["Telemetry", "otlp_telemetry"]

_NS = 1_000_000_000


def _provider(model: str) -> str:
    return model.split("/", 1)[0] if "/" in model else "unknown"


class Telemetry:
    """Turns outcomes into spans and metric points (see the module docstring)."""

    def __init__(
        self,
        tracer_provider: TracerProvider,
        meter_provider: MeterProvider,
        *,
        shutdown: Callable[[], None] | None = None,
    ) -> None:
        from opentelemetry import trace  # noqa: PLC0415  # the otel extra, only when asked for

        self._trace = trace
        self._tracer = tracer_provider.get_tracer("cascade")
        meter = meter_provider.get_meter("cascade")
        self._tokens = meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}", description="Tokens per model call"
        )
        self._duration = meter.create_histogram(
            "gen_ai.client.operation.duration", unit="s", description="Model call duration"
        )
        self._cost = meter.create_counter("cascade.cost", unit="USD", description="Money spent")
        self._tasks = meter.create_counter("cascade.tasks", description="Tasks by final status")
        self._decisions = meter.create_counter(
            "cascade.tier.decisions", description="Accept, re-ask, escalate or stop, per tier"
        )
        self._shutdown = shutdown
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread: threading.Thread | None = None

    def record(self, outcome: Outcome, tiers: Sequence[Tier] = ()) -> None:
        """Export one finished task: its span, its calls' spans, and their metric points.

        The work is handed to a thread of its own, so that the engine only queues it: in a run,
        which waits on the network most of the time, it is done in those waits.
        """
        if self._thread is None:
            self._thread = threading.Thread(target=self._drain, name="cascade-otel", daemon=True)
            self._thread.start()
        self._queue.put((outcome, tuple(tiers)))

    def _drain(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                self._export(*item)
            except Exception:  # noqa: BLE001  # telemetry never stops a run
                logging.getLogger("cascade").warning("telemetry: a task could not be exported")
            finally:
                self._queue.task_done()
        self._queue.task_done()

    def _export(self, outcome: Outcome, tiers: Sequence[Tier]) -> None:
        steps = outcome.steps
        # A step is written once its answer is judged: the call ended before its validators ran.
        ends = [int((s.ts - _judging_s(s)) * _NS) for s in steps]
        starts = [end - int(s.latency_s * _NS) for s, end in zip(steps, ends, strict=True)]
        start = min(starts, default=None)
        task_attributes: dict[str, Any] = {
            "cascade.run_id": outcome.run_id,
            "cascade.task_id": outcome.task_id,
            "cascade.task_type": outcome.task_type,
            "cascade.status": str(outcome.status),
            "cascade.cost_usd": outcome.cost_usd,
            "cascade.reasons": [redact(r)[:500] for r in outcome.reasons],
        }
        if outcome.tier is not None:
            task_attributes["cascade.tier"] = outcome.tier
        task = self._tracer.start_span("cascade.task", start_time=start, attributes=task_attributes)
        context = self._trace.set_span_in_context(task)
        for step, begin, end in zip(steps, starts, ends, strict=True):
            tier = tiers[step.tier] if 0 <= step.tier < len(tiers) else None
            self._call(step, begin, end, context, tier)
        task.end(end_time=max((int(s.ts * _NS) for s in steps), default=None))
        self._tasks.add(
            1, {"cascade.task_type": outcome.task_type, "cascade.status": str(outcome.status)}
        )

    def _call(self, step: Step, begin: int, end: int, context: Any, tier: Tier | None) -> None:
        model = step.model_requested
        common = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": _provider(model),
            "gen_ai.request.model": model,
        }
        attributes: dict[str, Any] = {
            **common,
            "gen_ai.usage.input_tokens": step.prompt_tokens,
            "gen_ai.usage.output_tokens": step.completion_tokens,
            "cascade.tier": step.tier,
            "cascade.step": step.step,
            "cascade.step.kind": str(step.kind),
            "cascade.decision": str(step.decision),
            "cascade.cost_usd": step.cost_usd,
            "cascade.run_id": step.run_id,
            "cascade.verdicts": [_verdict(v) for v in step.verdicts],
        }
        if step.model_served:
            attributes["gen_ai.response.model"] = step.model_served
        if tier is not None:
            attributes.update(_request_params(tier.params))
        if step.error:
            attributes["error.type"] = step.error.split(":", 1)[0]
            attributes["cascade.error"] = redact(step.error)[:500]
        span = self._tracer.start_span(
            f"chat {model}", context=context, start_time=begin, attributes=attributes
        )
        if step.error:
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR))
        span.end(end_time=end)
        self._validators(step, end, self._trace.set_span_in_context(span))
        self._duration.record(step.latency_s, common | _error_type(step))
        if step.error is None:
            self._tokens.record(step.prompt_tokens, common | {"gen_ai.token.type": "input"})
            self._tokens.record(step.completion_tokens, common | {"gen_ai.token.type": "output"})
        self._cost.add(step.cost_usd, {"gen_ai.request.model": model})
        if step.kind not in SIDE_CALLS:
            where: dict[str, Any] = {"cascade.task_type": step.task_type, "cascade.tier": step.tier}
            self._decisions.add(1, where | {"cascade.decision": str(step.decision)})

    def _validators(self, step: Step, begin: int, context: Any) -> None:
        """A span per validator that took time (the sandbox, mypy), after the call, in order."""
        for verdict in step.verdicts:
            if not verdict.seconds:
                continue
            attributes: dict[str, Any] = {
                "cascade.validator": verdict.validator,
                "cascade.validator.passed": verdict.passed,
                "cascade.run_id": step.run_id,
            }
            if verdict.reason:
                attributes["cascade.validator.reason"] = redact(verdict.reason)[:500]
            span = self._tracer.start_span(
                f"validate {verdict.validator}",
                context=context,
                start_time=begin,
                attributes=attributes,
            )
            begin += int(verdict.seconds * _NS)
            span.end(end_time=begin)

    def flush(self) -> None:
        """Wait until every task recorded so far is handed to the exporters."""
        if self._thread is not None:
            self._queue.join()

    def shutdown(self) -> None:
        """Export what is queued, flush the exporters, and stop."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        if self._shutdown is not None:
            self._shutdown()


def _judging_s(step: Step) -> float:
    """Seconds the validators that timed themselves took on a step's answer."""
    return sum(v.seconds or 0.0 for v in step.verdicts)


def _verdict(verdict: Any) -> str:
    mark = "passed" if verdict.passed else "failed"
    reason = f": {redact(verdict.reason)[:300]}" if verdict.reason else ""
    return f"{verdict.validator} {mark}{reason}"


def _request_params(params: Mapping[str, Any]) -> dict[str, Any]:
    found = {}
    for key, name in (("temperature", "gen_ai.request.temperature"),
                      ("max_tokens", "gen_ai.request.max_tokens")):  # fmt: skip
        value = params.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            found[name] = value
    return found


def _error_type(step: Step) -> dict[str, str]:
    return {"error.type": step.error.split(":", 1)[0]} if step.error else {}


def otlp_telemetry(endpoint: str | None, say: Callable[[str], None]) -> Telemetry:
    """Telemetry exported over OTLP/HTTP to ``endpoint`` (a base URL; ``None``: the environment).

    Export attempts time out after 2 s; the first failure of traces or of metrics is reported
    once through ``say``, and what would follow it is dropped.
    """
    from opentelemetry.sdk.resources import Resource  # noqa: PLC0415  # the otel extra

    # The exporters log every failure with a traceback; it is said once, in a sentence, instead.
    logging.getLogger("opentelemetry.exporter").setLevel(logging.CRITICAL)
    failures = _Failures(say)
    base = endpoint.rstrip("/") if endpoint else None
    resource = Resource.create({"service.name": "cascade"})
    tracer_provider = _tracer_provider(base, resource, failures)
    meter_provider = _meter_provider(base, resource, failures)

    def shutdown() -> None:
        tracer_provider.shutdown()
        meter_provider.shutdown()

    return Telemetry(tracer_provider, meter_provider, shutdown=shutdown)


class _Failures:
    """Which exports failed: each is said once, and what follows it is dropped."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self._say = say
        self.failed: set[str] = set()

    def note(self, what: str, ok: bool) -> None:
        if not ok and what not in self.failed:
            self.failed.add(what)
            self._say(f"telemetry: exporting {what} failed; the rest of them is dropped")


def _tracer_provider(base: str | None, resource: Any, failures: _Failures) -> Any:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
        OTLPSpanExporter,
    )
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult  # noqa: PLC0415

    class Spans(OTLPSpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            if "traces" in failures.failed:
                return SpanExportResult.FAILURE
            result = super().export(spans)
            failures.note("traces", result == SpanExportResult.SUCCESS)
            return result

    provider = SdkTracerProvider(resource=resource)
    traces = Spans(endpoint=f"{base}/v1/traces" if base else None, timeout=2)
    provider.add_span_processor(BatchSpanProcessor(traces))
    return provider


def _meter_provider(base: str | None, resource: Any, failures: _Failures) -> Any:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (  # noqa: PLC0415
        OTLPMetricExporter,
    )
    from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider  # noqa: PLC0415
    from opentelemetry.sdk.metrics.export import (  # noqa: PLC0415
        MetricExportResult,
        PeriodicExportingMetricReader,
    )

    class Metrics(OTLPMetricExporter):
        def export(
            self, metrics_data: Any, timeout_millis: float | None = 10_000, **kwargs: Any
        ) -> MetricExportResult:
            if "metrics" in failures.failed:
                return MetricExportResult.FAILURE
            result = super().export(metrics_data, timeout_millis=timeout_millis, **kwargs)
            failures.note("metrics", result == MetricExportResult.SUCCESS)
            return result

    metrics = Metrics(endpoint=f"{base}/v1/metrics" if base else None, timeout=2)
    reader = PeriodicExportingMetricReader(metrics, export_interval_millis=10_000)
    return SdkMeterProvider(resource=resource, metric_readers=[reader])
