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
Message contents are exported only when asked for (``content=True``, ``--otel-content``): each
call's answer as ``gen_ai.output.messages`` and the task's input as ``cascade.task.input``, cut
at 16,000 characters. Every text goes through the store's secret redaction first.

Metrics: ``gen_ai.client.token.usage`` and ``gen_ai.client.operation.duration`` (histograms per
model, as the conventions name them), ``cascade.cost`` (USD per model), and ``cascade.tasks``
and ``cascade.tier.decisions`` (per task type, status, tier and decision).

Spans are built as the SDK's finished spans (``ReadableSpan``) and sent in batches through its
OTLP exporter, without the tracer's per-span bookkeeping (a span that starts now and ends
later, checked attribute by attribute: 50 µs where this takes 5) or a second queue. Metric
points are summed in :mod:`cascade.otel_metrics` and sent as the SDK's ``MetricsData`` through
its OTLP exporter every ``export_every_s`` and at shutdown.

:func:`cascade.otlp.otlp_telemetry` exports both over OTLP/HTTP (``--otel URL``, or the standard
``OTEL_EXPORTER_OTLP_ENDPOINT``); it needs the ``otel`` extra. When the collector cannot be
reached, the run goes on, the failure is said once, and the rest is dropped.
"""

from __future__ import annotations

import collections
import json
import logging
import random
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from cascade.enums import SIDE_CALLS
from cascade.otel_metrics import Aggregates, Key
from cascade.outcome import Outcome, Step
from cascade.secrets import redact
from cascade.types import Task, Tier

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import MetricExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import SpanContext

__all__ = ["Telemetry"]

_NS = 1_000_000_000
_TICK_S = 0.1
"""How often the export thread turns the tasks recorded since into spans and points."""
_BATCH = 512
"""Spans per export request, at most."""
_MAX_CONTENT = 16_000
"""Characters of a message's content exported, at most (``content=True``)."""


def _provider(model: str) -> str:
    return model.split("/", 1)[0] if "/" in model else "unknown"


class Telemetry:
    """Turns outcomes into spans and metric points (see the module docstring).

    ``spans`` is an SDK span exporter (the OTLP one, or the in-memory one in tests), sent the
    spans of the tasks recorded since, in batches, every ``_TICK_S``; ``metrics`` an SDK metric
    exporter, sent the metrics every ``export_every_s`` and at shutdown (``None``: read them
    with :meth:`metrics_data`).
    """

    def __init__(
        self,
        spans: SpanExporter,
        metrics: MetricExporter | None = None,
        *,
        resource: Resource | None = None,
        export_every_s: float = 10.0,
        max_pending: int = 100_000,
        content: bool = False,
    ) -> None:
        # The otel extra, imported only when asked for.
        from opentelemetry import trace  # noqa: PLC0415
        from opentelemetry.sdk.resources import Resource  # noqa: PLC0415
        from opentelemetry.sdk.trace import ReadableSpan  # noqa: PLC0415
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope  # noqa: PLC0415

        self._api = trace
        self._readable = ReadableSpan
        self._sampled = trace.TraceFlags(trace.TraceFlags.SAMPLED)
        self._error = trace.Status(trace.StatusCode.ERROR)
        self._unset = trace.Status(trace.StatusCode.UNSET)
        self._kinds = (trace.SpanKind.INTERNAL, trace.SpanKind.CLIENT)
        self._params: dict[int, tuple[Tier, dict[str, Any]]] = {}
        self._keys: dict[tuple[str, str | None], tuple[Key, Key, Key, Key]] = {}
        self._spans = spans
        self._finished: list[Any] = []
        self._metric_exporter = metrics
        self._resource = resource or Resource.create({"service.name": "cascade"})
        self._scope = InstrumentationScope("cascade")
        self._every_s = export_every_s
        self._max_pending = max_pending
        self._content = content
        self.dropped = 0
        """Tasks not exported because the exporters fell too far behind the run."""
        self._said_dropped = False
        self.metrics = Aggregates()
        self._pending: collections.deque[tuple[Outcome, tuple[Tier, ...], Task | None]] = (
            collections.deque()
        )
        self._working = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def record(
        self, outcome: Outcome, tiers: Sequence[Tier] = (), task: Task | None = None
    ) -> None:
        """Export one finished task: its span, its calls' spans, and their metric points.

        ``task`` is needed only to export its input (``content=True``).

        The engine only appends the outcome to a list; a thread of its own turns what has
        gathered into spans and points every ``_TICK_S``. Waking it for each task would cost
        the engine more than the work itself.
        """
        if self._thread is None:
            self._thread = threading.Thread(target=self._drain, name="cascade-otel", daemon=True)
            self._thread.start()
        if len(self._pending) >= self._max_pending:
            self.dropped += 1  # a collector slower than the run must not grow memory without end
            return
        self._pending.append((outcome, tuple(tiers), task))

    def _drain(self) -> None:
        due = time.monotonic() + self._every_s
        while not self._stop.wait(_TICK_S):
            self._export_pending()
            if time.monotonic() >= due:
                self._export_metrics()
                due = time.monotonic() + self._every_s

    def _export_pending(self) -> None:
        with self._working:
            while self._pending:
                outcome, tiers, task = self._pending.popleft()
                try:
                    self._export(outcome, tiers, task)
                except Exception:  # noqa: BLE001  # telemetry never stops a run
                    logging.getLogger("cascade").warning("telemetry: a task could not be exported")
            if self.dropped and not self._said_dropped:
                self._said_dropped = True
                logging.getLogger("cascade").warning(
                    "telemetry: the exporters fell behind the run; tasks beyond %d waiting are"
                    " not exported",
                    self._max_pending,
                )
            finished, self._finished = self._finished, []
            for start in range(0, len(finished), _BATCH):
                try:
                    self._spans.export(finished[start : start + _BATCH])
                except Exception:  # noqa: BLE001  # telemetry never stops a run
                    logging.getLogger("cascade").warning("telemetry: spans could not be exported")

    def _span(
        self,
        name: str,
        trace_id: int,
        parent: SpanContext | None,
        times: tuple[int, int],
        attributes: dict[str, Any],
        *,
        client: bool = False,
        failed: bool = False,
    ) -> SpanContext:
        """Keep a finished span for the next export; its context, for its children."""
        span_id = random.getrandbits(64)
        context: SpanContext = self._api.SpanContext(trace_id, span_id, False, self._sampled)
        span = self._readable(
            name,
            context,
            parent,
            self._resource,
            attributes,
            kind=self._kinds[client],
            status=self._error if failed else self._unset,
            start_time=times[0],
            end_time=times[1],
            instrumentation_scope=self._scope,
        )
        self._finished.append(span)
        return context

    def _export(self, outcome: Outcome, tiers: Sequence[Tier], task: Task | None = None) -> None:
        steps = outcome.steps
        # A step is written once its answer is judged: the call ended before its validators ran.
        ends = [int((s.ts - _judging_s(s)) * _NS) for s in steps]
        starts = [end - int(s.latency_s * _NS) for s, end in zip(steps, ends, strict=True)]
        now = time.time_ns()
        task_attributes: dict[str, Any] = {
            "cascade.run_id": outcome.run_id or "",
            "cascade.task_id": outcome.task_id,
            "cascade.task_type": outcome.task_type,
            "cascade.status": outcome.status.value,
            "cascade.cost_usd": outcome.cost_usd,
            "cascade.reasons": tuple(redact(r)[:500] for r in outcome.reasons),
        }
        if outcome.tier is not None:
            task_attributes["cascade.tier"] = outcome.tier
        if self._content and task is not None:
            text = task.input if task.input is not None else json.dumps(list(task.messages or ()))
            task_attributes["cascade.task.input"] = redact(text)[:_MAX_CONTENT]
        trace_id = random.getrandbits(128)
        span_times = (min(starts, default=now), max((int(s.ts * _NS) for s in steps), default=now))
        parent = self._span("cascade.task", trace_id, None, span_times, task_attributes)
        for step, begin, end in zip(steps, starts, ends, strict=True):
            tier = tiers[step.tier] if 0 <= step.tier < len(tiers) else None
            self._call(step, trace_id, (begin, end), parent, tier)
        key = (("cascade.status", outcome.status.value), ("cascade.task_type", outcome.task_type))
        with self.metrics.lock:
            self.metrics.add("cascade.tasks", 1, key)

    def _call(
        self,
        step: Step,
        trace_id: int,
        times: tuple[int, int],
        task: SpanContext,
        tier: Tier | None,
    ) -> None:
        model = step.model_requested
        provider = _provider(model)
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": model,
            "gen_ai.usage.input_tokens": step.prompt_tokens,
            "gen_ai.usage.output_tokens": step.completion_tokens,
            "cascade.tier": step.tier,
            "cascade.step": step.step,
            "cascade.step.kind": step.kind.value,
            "cascade.decision": step.decision.value,
            "cascade.cost_usd": step.cost_usd,
            "cascade.run_id": step.run_id,
            "cascade.verdicts": tuple(_verdict(v) for v in step.verdicts),
        }
        if step.model_served:
            attributes["gen_ai.response.model"] = step.model_served
        if self._content and step.output is not None:
            part = {"type": "text", "content": redact(step.output)[:_MAX_CONTENT]}
            answer = [{"role": "assistant", "parts": [part]}]
            attributes["gen_ai.output.messages"] = json.dumps(answer)
        if tier is not None:
            attributes.update(self._request_params(tier))
        error = step.error.split(":", 1)[0] if step.error else None
        if step.error:
            attributes["error.type"] = error
            attributes["cascade.error"] = redact(step.error)[:500]
        call = self._span(
            f"chat {model}", trace_id, task, times, attributes, client=True, failed=bool(error)
        )
        self._validators(step, trace_id, times[1], call)
        self._measure(step, model, provider, error)

    def _request_params(self, tier: Tier) -> dict[str, Any]:
        """The tier's GenAI request attributes, worked out once per tier."""
        known = self._params.get(id(tier))
        if known is None or known[0] is not tier:
            known = self._params[id(tier)] = (tier, _request_params(tier.params))
        return known[1]

    def _measure(self, step: Step, model: str, provider: str, error: str | None) -> None:
        """The call's metric points (attribute pairs sorted by name)."""
        keys = self._keys.get((model, error))
        if keys is None:
            common: Key = (
                ("gen_ai.operation.name", "chat"),
                ("gen_ai.provider.name", provider),
                ("gen_ai.request.model", model),
            )
            keys = self._keys[model, error] = (
                (("error.type", error), *common) if error else common,
                (*common, ("gen_ai.token.type", "input")),
                (*common, ("gen_ai.token.type", "output")),
                (("gen_ai.request.model", model),),
            )
        duration, tokens_in, tokens_out, cost = keys
        metrics = self.metrics
        with metrics.lock:
            metrics.record("gen_ai.client.operation.duration", step.latency_s, duration)
            if error is None:
                metrics.record("gen_ai.client.token.usage", step.prompt_tokens, tokens_in)
                metrics.record("gen_ai.client.token.usage", step.completion_tokens, tokens_out)
            metrics.add("cascade.cost", step.cost_usd, cost)
            if step.kind not in SIDE_CALLS:
                where = (
                    ("cascade.decision", step.decision.value),
                    ("cascade.task_type", step.task_type),
                    ("cascade.tier", step.tier),
                )
                metrics.add("cascade.tier.decisions", 1, where)

    def _validators(self, step: Step, trace_id: int, begin: int, call: SpanContext) -> None:
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
            end = begin + int(verdict.seconds * _NS)
            self._span(f"validate {verdict.validator}", trace_id, call, (begin, end), attributes)
            begin = end

    def metrics_data(self) -> Any:
        """The metrics so far, as the SDK's ``MetricsData`` (cumulative since the start)."""
        return self.metrics.metrics_data(self._resource, self._scope)

    def _export_metrics(self) -> None:
        if self._metric_exporter is None or not self.metrics.names():
            return
        try:
            self._metric_exporter.export(self.metrics_data())
        except Exception:  # noqa: BLE001  # telemetry never stops a run
            logging.getLogger("cascade").warning("telemetry: the metrics could not be exported")

    def flush(self) -> None:
        """Export the spans of every task recorded so far."""
        self._export_pending()

    def shutdown(self) -> None:
        """Export what is left and the metrics, flush the exporters, and stop."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        self._export_pending()
        self._export_metrics()
        self._spans.shutdown()
        if self._metric_exporter is not None:
            self._metric_exporter.shutdown()


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
