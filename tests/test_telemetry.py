"""OpenTelemetry export: span structure and names, a real OTLP/HTTP receiver, a collector down."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from cascade import Store, Tier
from cascade.backends import Reply
from cascade.cli import main
from cascade.errors import ServerError
from cascade.secrets import register_secrets
from cascade.telemetry import Telemetry
from cascade.types import Task, Usage
from cascade.validators import all_of, compiles, passes_tests
from tests.helpers import make
from tests.test_run import MIXED, run
from tests.test_run import job as job  # noqa: PLC0414  # the replay job fixture, reused


def in_memory() -> tuple[Telemetry, InMemorySpanExporter, Telemetry]:
    """Telemetry into the SDK's in-memory span exporter; its metrics are read from it."""
    spans = InMemorySpanExporter()
    telemetry = Telemetry(spans)
    return telemetry, spans, telemetry


def test_a_task_is_a_span_with_one_child_per_model_call() -> None:
    """GenAI attribute names on the calls, cascade.* on both, children inside their task."""
    telemetry, exporter, reader = in_memory()
    usage = Usage(100, 20)
    ladder = [Tier("openai/small", retries=1, params={"temperature": 0.2}), Tier("openai/big")]
    cascade, _ = make(
        {"openai/small": [ServerError("503"), Reply("no", usage=usage)],
         "openai/big": [Reply("ok", usage=usage, model_served="big-2024")]},
        ladder,
    )  # fmt: skip
    outcome = cascade.run({"id": "t1", "type": "demo", "input": "x"})
    telemetry.record(outcome, cascade.plan.tiers)
    telemetry.flush()
    spans = exporter.get_finished_spans()
    (task,) = [s for s in spans if s.name == "cascade.task"]
    calls = [s for s in spans if s.name != "cascade.task"]
    assert [s.name for s in calls] == ["chat openai/small"] * 2 + ["chat openai/big"]
    assert all(s.parent is not None and s.parent.span_id == task.context.span_id for s in calls)
    window = (task.start_time or 0, task.end_time or 0)
    times = [(s.start_time or -1, s.end_time or -1) for s in calls]
    assert all(window[0] <= start <= end <= window[1] for start, end in times)
    failed, rejected, accepted = (dict(s.attributes or {}) for s in calls)
    assert failed["error.type"] == "ServerError"
    assert rejected["gen_ai.operation.name"] == "chat"
    assert rejected["gen_ai.provider.name"] == "openai"
    assert rejected["gen_ai.request.model"] == "openai/small"
    assert rejected["gen_ai.request.temperature"] == 0.2
    assert rejected["gen_ai.usage.input_tokens"] == 100
    assert rejected["gen_ai.usage.output_tokens"] == 20
    assert rejected["cascade.decision"] == "escalate"
    assert rejected["cascade.verdicts"] == ("says_ok failed: wanted 'ok', got 'no'",)
    assert accepted["gen_ai.response.model"] == "big-2024"
    assert dict(task.attributes or {})["cascade.status"] == "accepted"
    data = reader.metrics_data()
    metrics = {
        m.name
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for m in scope.metrics
    }
    assert {"gen_ai.client.token.usage", "gen_ai.client.operation.duration", "cascade.cost",
            "cascade.tasks", "cascade.tier.decisions"} <= metrics  # fmt: skip


def test_a_sandboxed_test_run_is_a_span_under_its_call() -> None:
    """The sandbox (passes_tests) takes time: a validate span under the call, after it."""
    telemetry, exporter, _ = in_memory()
    code = "```python\ndef add(a, b):\n    return a + b\n```"
    cascade, _ = make(
        {"openai/small": [Reply(code)]},
        [Tier("openai/small")],
        all_of(compiles(), passes_tests(["assert add(2, 3) == 5"])),
    )
    outcome = cascade.run({"id": "t1", "type": "code", "input": "write add"})
    assert outcome.status == "accepted"
    telemetry.record(outcome, cascade.plan.tiers)
    telemetry.flush()
    spans = exporter.get_finished_spans()
    (call,) = [s for s in spans if s.name == "chat openai/small"]
    (check,) = [s for s in spans if s.name.startswith("validate ")]  # compiling takes no time
    assert check.name == "validate passes_tests(1 snippets)"
    assert check.parent is not None
    assert check.parent.span_id == call.context.span_id
    attributes = dict(check.attributes or {})
    assert attributes["cascade.validator"] == "passes_tests(1 snippets)"
    assert attributes["cascade.validator.passed"] is True
    (seconds,) = [v.seconds for v in outcome.steps[0].verdicts if v.seconds is not None]
    start, end, call_end = check.start_time or 0, check.end_time or 0, call.end_time or 0
    assert start == call_end
    assert end - start == int(seconds * 1e9)
    assert seconds > 0.001  # a real sandbox ran


def test_no_secret_and_no_message_reaches_a_span() -> None:
    """Errors are redacted; prompts and answers are not exported at all."""
    secret = "otel-secret-value-5150"
    register_secrets([secret])
    telemetry, exporter, _ = in_memory()
    cascade, _ = make({"a": [ServerError(f"echo {secret}"), "ok"]}, [Tier("a", retries=1)])
    outcome = cascade.run({"id": "t1", "input": "the secret prompt text"})
    telemetry.record(outcome)
    telemetry.flush()
    text = json.dumps([dict(s.attributes or {}) for s in exporter.get_finished_spans()])
    assert secret not in text
    assert "[REDACTED]" in text
    assert "the secret prompt text" not in text


def test_an_exporter_that_falls_behind_drops_tasks_and_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Past max_pending tasks waiting, the rest are counted and dropped; it is said once."""
    spans = InMemorySpanExporter()
    telemetry = Telemetry(spans, max_pending=2)
    cascade, _ = make({"a": ["ok"]}, [Tier("a")])
    outcomes = [cascade.run({"id": f"t{n}", "input": "x"}) for n in range(5)]
    with caplog.at_level(logging.WARNING, logger="cascade"):
        for outcome in outcomes:  # faster than the export thread's first turn (0.1 s)
            telemetry.record(outcome)
        telemetry.flush()
        telemetry.record(outcomes[0])
        telemetry.flush()
    assert telemetry.dropped == 3
    assert sum(s.name == "cascade.task" for s in spans.get_finished_spans()) == 3
    said = [r.getMessage() for r in caplog.records if "fell behind" in r.getMessage()]
    assert len(said) == 1
    telemetry.shutdown()


def test_contents_are_exported_only_when_asked_and_redacted_even_then() -> None:
    """--otel-content: the answer and the task's input are on the spans, without secrets."""
    secret = "otel-secret-value-8080"
    register_secrets([secret])
    cascade, _ = make({"a": [f"ok {secret}"]}, [Tier("a")], None)
    task = Task(id="t1", input=f"the prompt text {secret}")
    outcome = cascade.run(task)
    found = []
    for content in (False, True):
        spans = InMemorySpanExporter()
        telemetry = Telemetry(spans, content=content)
        telemetry.record(outcome, cascade.plan.tiers, task)
        telemetry.flush()
        by_name = {s.name: dict(s.attributes or {}) for s in spans.get_finished_spans()}
        found.append(by_name)
    hidden, shown = found
    assert "gen_ai.output.messages" not in hidden["chat a"]
    assert "cascade.task.input" not in hidden["cascade.task"]
    (message,) = json.loads(str(shown["chat a"]["gen_ai.output.messages"]))
    assert message["parts"][0]["content"] == "ok [REDACTED]"
    assert shown["cascade.task"]["cascade.task.input"] == "the prompt text [REDACTED]"
    assert secret not in json.dumps(shown)


class _Receiver(BaseHTTPRequestHandler):
    """An OTLP/HTTP collector on loopback: decodes each protobuf request it is sent."""

    received: list[tuple[str, bytes]]

    def do_POST(self) -> None:  # the http.server hook
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        """Quiet."""


@pytest.fixture
def collector() -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    """A receiver thread; its base URL and what it received."""
    received: list[tuple[str, bytes]] = []
    handler = type("Handler", (_Receiver,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


def test_a_replay_run_arrives_whole_at_an_otlp_receiver(
    job: Path, collector: tuple[str, list[tuple[str, bytes]]]
) -> None:
    """Every task's span and every stored step's span reach the receiver, as protobuf."""
    url, received = collector
    tasks = job / "tasks.jsonl"
    tasks.write_text("\n".join(MIXED) + "\n")
    assert run(job, tasks, "--otel", url) == 0
    spans = []
    for path, body in received:
        if path == "/v1/traces":
            request = trace_service_pb2.ExportTraceServiceRequest()
            request.ParseFromString(body)
            spans += [s for r in request.resource_spans for sc in r.scope_spans for s in sc.spans]
    metric_names = set()
    for path, body in received:
        if path == "/v1/metrics":
            request = metrics_service_pb2.ExportMetricsServiceRequest()
            request.ParseFromString(body)
            metric_names |= {m.name for r in request.resource_metrics
                             for sc in r.scope_metrics for m in sc.metrics}  # fmt: skip
    with Store(job / "run.db") as store:
        # Lines quarantined as they are read are never run, so they have no span.
        ((results,),) = store.select("SELECT count(*) FROM results WHERE status != 'quarantined'")
        attempts = store.count("attempts")
    assert sum(s.name == "cascade.task" for s in spans) == results
    assert sum(s.name.startswith("chat ") for s in spans) == attempts
    assert "gen_ai.client.token.usage" in metric_names


def test_a_collector_that_is_down_costs_nothing_but_one_sentence(
    job: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The run completes as usual; the failed export is said once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    tasks = job / "tasks.jsonl"
    tasks.write_text("\n".join(MIXED) + "\n")
    with caplog.at_level(logging.WARNING, logger="cascade"):
        assert run(job, tasks, "--otel", f"http://127.0.0.1:{port}") == 0
    said = [r.getMessage() for r in caplog.records if "telemetry" in r.getMessage()]
    assert said.count("telemetry: exporting traces failed; the rest of them is dropped") == 1


def test_otel_without_the_extra_is_a_clear_error(
    job: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No otel packages: exit 2, naming the extra to install."""
    import builtins  # noqa: PLC0415

    real = builtins.__import__

    def no_otel(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("opentelemetry"):
            raise ImportError(f"No module named {name!r}")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_otel)
    monkeypatch.chdir(job)  # the run's default store and results files land here, not in the repo
    tasks = job / "tasks.jsonl"
    tasks.write_text(MIXED[0] + "\n")
    assert main(["run", str(tasks), "--policy", str(job / "policies"), "--replay",
                 str(job / "dataset"), "--otel", "http://127.0.0.1:9"]) == 2  # fmt: skip
    assert "cascade-llm[otel]" in capsys.readouterr().err


def test_otel_content_without_otel_is_refused(
    job: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--otel-content alone exports nothing: it is an error that says what is missing."""
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    tasks = job / "tasks.jsonl"
    tasks.write_text(MIXED[0] + "\n")
    assert run(job, tasks, "--otel-content") == 2
    assert "--otel-content needs --otel" in capsys.readouterr().err
