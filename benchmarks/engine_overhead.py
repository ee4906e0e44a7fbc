"""Engine overhead: tasks/s through a 3-tier ladder on a zero-latency scripted backend.

Side by side in one run: the same number of backend calls made directly (the baseline), then
through ``Cascade``. The engine's CPU per attempt is the difference divided by the attempts.
Target: at most 100 µs per attempt; with OpenTelemetry export on (``--otel``: spans and
metrics, into an exporter that drops them), at most 30 µs more than without. A last row also
encodes them as the OTLP exporters would (protobuf), which a real export adds.

    .venv/bin/python benchmarks/engine_overhead.py [--tasks 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from typing import Any

from cascade import Attempt, Cascade, StepLog, Tier, Verdict
from cascade.backends import Request, ScriptedBackend
from cascade.telemetry import Telemetry

MODELS = ("small", "mid", "big")
MESSAGES = ({"role": "user", "content": "Extract the contact from: Ada, ada@example.org"},)


def says_ok(attempt: Attempt) -> Verdict:
    """Accept only the big model's answer, so every task climbs all three tiers."""
    return Verdict(attempt.output == "ok", reason="not ok", feedback="say ok")


def backend() -> ScriptedBackend:
    """Zero-latency models: the two cheap ones fail, the big one passes."""
    return ScriptedBackend({"small": ["no"], "mid": ["no"], "big": ["ok"]})


async def direct(tasks: int) -> float:
    """CPU seconds for the backend calls alone, made straight to the backend."""
    scripted = backend()
    start = time.process_time()
    for i in range(tasks):
        for model in MODELS:
            await scripted.complete(Request(model, MESSAGES, task_id=f"t{i}"))
            scripted.calls.clear()
    return time.process_time() - start


async def through_cascade(
    tasks: int, log: StepLog | bool, telemetry: Telemetry | None = None
) -> tuple[float, float, int, float]:
    """CPU seconds, wall seconds, attempts, and the engine thread's own CPU seconds.

    For the same calls as :func:`direct`, through a Cascade.
    """
    scripted = backend()
    cascade = Cascade([Tier(m) for m in MODELS], says_ok, backend=scripted, log=log)
    attempts = 0
    wall, cpu, own = time.perf_counter(), time.process_time(), time.thread_time()
    for i in range(tasks):
        outcome = await cascade.arun({"id": f"t{i}", "messages": list(MESSAGES)})
        if telemetry is not None:
            telemetry.record(outcome, cascade.plan.tiers)
        attempts += len(outcome.steps)
        scripted.calls.clear()
    engine = time.thread_time() - own
    if telemetry is not None:
        telemetry.shutdown()  # the export threads finish their work, counted in the process CPU
    return time.process_time() - cpu, time.perf_counter() - wall, attempts, engine


def exporting(*, encode: bool = False) -> Telemetry:
    """OpenTelemetry export as ``cascade run --otel`` sets it up, into exporters that drop.

    With ``encode``, each batch of spans and the metrics are first encoded as the OTLP
    exporters would send them (protobuf), which is most of a real export's work.
    """
    # The otel extra.
    from opentelemetry.exporter.otlp.proto.common.metrics_encoder import (  # noqa: PLC0415
        encode_metrics,
    )
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import (  # noqa: PLC0415
        encode_spans,
    )
    from opentelemetry.sdk.metrics.export import (  # noqa: PLC0415
        MetricExporter,
        MetricExportResult,
    )
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult  # noqa: PLC0415

    class Spans(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            if encode:
                encode_spans(spans).SerializeToString()
            return SpanExportResult.SUCCESS

    class Metrics(MetricExporter):
        def export(self, metrics_data: Any, timeout_millis: float = 0, **_: Any) -> Any:
            if encode:
                encode_metrics(metrics_data).SerializeToString()
            return MetricExportResult.SUCCESS

        def force_flush(self, timeout_millis: float = 0) -> bool:
            return True

        def shutdown(self, timeout_millis: float = 0, **_: Any) -> None:
            return None

    return Telemetry(Spans(), Metrics(), export_every_s=1.0)


def main() -> None:
    """Print the baseline, the engine with and without its log, and the overhead per attempt."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=20_000)
    tasks = parser.parse_args().tasks
    base_cpu = asyncio.run(direct(tasks))
    calls = tasks * len(MODELS)
    print(f"{tasks} tasks x 3 tiers = {calls} attempts, scripted backend at zero latency")
    print(f"  baseline: backend alone        {base_cpu / calls * 1e6:8.1f} µs CPU per call")
    with open(os.devnull, "w") as null:
        runs: list[tuple[str, StepLog | bool, Telemetry | None]] = [
            ("no step log", False, None),
            ("JSON step log", StepLog(null), None),
            ("OTel export", False, exporting()),
            ("OTel, encoded", False, exporting(encode=True)),
        ]
        for label, log, telemetry in runs:
            cpu, wall, attempts, engine = asyncio.run(through_cascade(tasks, log, telemetry))
            assert attempts == calls, (attempts, calls)
            overhead = (cpu - base_cpu) / attempts * 1e6
            print(
                f"  cascade, {label:14}: {tasks / wall:9.0f} tasks/s, {attempts / wall:9.0f} "
                f"attempts/s, engine overhead {overhead:6.1f} µs CPU per attempt "
                f"({cpu / base_cpu:.1f}x the baseline's CPU)"
            )
            if telemetry is not None:
                own = (engine - base_cpu) / attempts * 1e6
                print(f"      of which in the engine's own thread {own:6.1f} µs per attempt;"
                      " the rest is the export threads' work")  # fmt: skip


if __name__ == "__main__":
    main()
