"""``cascade import otlp`` reads the spans ``cascade run --otel --otel-content`` itself exports."""

from __future__ import annotations

import json
from pathlib import Path

from google.protobuf.json_format import MessageToJson  # type: ignore[import-untyped]  # no stubs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from cascade import Tier
from cascade.backends import Reply
from cascade.telemetry import Telemetry
from cascade.traffic import import_logs
from cascade.types import Task, Usage
from tests.helpers import make


def _export_run(path: Path, *, content: bool) -> None:
    """Run a two-tier task (the first tier rejected) and write its spans as OTLP JSON."""
    usage = Usage(100, 20)
    cascade, _ = make(
        {"small": [Reply("no", usage=usage)], "big": [Reply("ok", usage=usage)]},
        [Tier("small"), Tier("big")],
    )
    task = Task(id="t1", input="Is the sky blue? Answer ok or no.")
    exporter = InMemorySpanExporter()
    telemetry = Telemetry(exporter, content=content)
    telemetry.record(cascade.run(task), cascade.plan.tiers, task)
    telemetry.flush()
    request = encode_spans(exporter.get_finished_spans())
    path.write_text(MessageToJson(request, indent=None) + "\n")


def test_our_own_spans_import_as_one_task_with_each_tier_answer(tmp_path: Path) -> None:
    """Each call span of a cascade run becomes its model's answer to the task's own prompt."""
    log = tmp_path / "spans.jsonl"
    _export_run(log, content=True)
    done = import_logs("otlp", [log], tmp_path / "ds")
    assert (done.tasks, done.quarantined) == (1, 0)
    rows = [json.loads(r) for r in (tmp_path / "ds" / "responses.jsonl").read_text().splitlines()]
    assert [(r["model"], r["output"]) for r in rows] == [("small", "no"), ("big", "ok")]
    assert rows[0]["prompt_tokens"] == 100
    assert rows[0]["latency_s"] is not None
    (task,) = (tmp_path / "ds" / "tasks.jsonl").read_text().splitlines()
    assert json.loads(task)["messages"][0]["content"] == "Is the sky blue? Answer ok or no."


def test_spans_without_contents_are_quarantined_not_lost(tmp_path: Path) -> None:
    """Spans exported without --otel-content hold no prompt: each call is quarantined."""
    log = tmp_path / "spans.jsonl"
    _export_run(log, content=False)
    done = import_logs("otlp", [log], tmp_path / "ds")
    assert (done.calls, done.quarantined) == (0, 2)
    reasons = (tmp_path / "ds" / "quarantine.jsonl").read_text()
    assert "--otel-content" in reasons
