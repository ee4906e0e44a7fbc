"""``cascade serve`` watches what it serves as a run does: audits, drift alarms, OpenTelemetry."""

from __future__ import annotations

import itertools
import json
import threading
from pathlib import Path

import httpx
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from cascade.backends import ScriptedBackend
from cascade.store import Store
from cascade.store.alarms import DriftAlarms
from cascade.types import Request
from tests.serving import served, wait_for
from tests.test_telemetry import collector

__all__ = ["collector"]  # a fixture, used here by name

ASK = {"model": "cascade/echo", "messages": [{"role": "user", "content": "say ok"}]}

POLICY = """\
task_type = "echo"
[[tiers]]
model = "cheap"
retries = 0
price = { input_usd_per_mtok = 1.0, output_usd_per_mtok = 1.0 }
[[tiers]]
model = "dear"
retries = 0
price = { input_usd_per_mtok = 10.0, output_usd_per_mtok = 10.0 }
[[validators]]
kind = "one_of"
labels = ["ok"]
[drift]
window = 40
baseline = 80
check_every = 5
false_alarm = 0.001
on_drift = "escalate"
[audit]
share = 1.0
model = "auditor"
seed = 7
price = { input_usd_per_mtok = 5.0, output_usd_per_mtok = 5.0 }
"""

_calls = itertools.count()
_lock = threading.Lock()


def _cheap(_request: Request) -> str:
    """Right for its first 100 calls, then right one time in four."""
    with _lock:
        number = next(_calls)
    return "ok" if number < 100 or number % 4 == 0 else "no"


def drifting() -> ScriptedBackend:
    """The backend the test server builds (``--backend tests.test_serve_watch:drifting``)."""
    return ScriptedBackend({"cheap": _cheap, "dear": lambda _r: "ok", "auditor": lambda _r: "ok"})


def test_a_served_drift_alarm_starts_the_type_higher_and_audits_are_stored(
    tmp_path: Path,
) -> None:
    """The cheap model gets worse: the alarm is raised and stored, and later requests skip it."""
    policy = tmp_path / "echo.toml"
    policy.write_text(POLICY)
    store = tmp_path / "served.db"
    backend = "tests.test_serve_watch:drifting"
    with served(policy, store, backend=backend) as server, httpx.Client(timeout=60) as client:
        for _ in range(200):
            reply = client.post(f"{server.url}/chat/completions", json=ASK)
            assert reply.status_code == 200
        with Store(store) as opened:
            wait_for(lambda: bool(DriftAlarms(opened).escalated()), timeout_s=30)
        wait_for(lambda: _starts_higher(client, server.url), timeout_s=30)
    with Store(store) as opened:
        [(signal, text)] = opened.select("SELECT signal, text FROM drift_alarms")
        audits = list(opened.select("SELECT decision FROM attempts WHERE kind = 'audit'"))
    assert signal == "acceptance"
    assert "starts one tier higher" in text
    assert audits  # the cheap tier's accepted answers were audited, as in a run
    assert {decision for (decision,) in audits} <= {"agree", "disagree"}
    steps = [json.loads(line) for line in server.log.read_text().splitlines()]
    assert any(step.get("event") == "cascade.drift" for step in steps)


def _starts_higher(client: httpx.Client, url: str) -> bool:
    reply = client.post(f"{url}/chat/completions", json=ASK)
    return reply.headers["x-cascade-attempts"] == "1" and reply.headers["x-cascade-tier"] == "1"


def test_served_requests_reach_an_otlp_collector_as_spans(
    tmp_path: Path, collector: tuple[str, list[tuple[str, bytes]]]
) -> None:
    """--otel URL: one task span per request and one span per model call, as a run exports."""
    url, received = collector
    policy = tmp_path / "echo.toml"
    policy.write_text(POLICY.split("[drift]", maxsplit=1)[0])
    store = tmp_path / "served.db"
    backend = "tests.test_serve_watch:drifting"
    with served(policy, store, backend=backend, otel=url) as server, httpx.Client() as client:
        for _ in range(3):
            assert client.post(f"{server.url}/chat/completions", json=ASK).status_code == 200
    spans = []
    for path, body in received:
        if path == "/v1/traces":
            request = trace_service_pb2.ExportTraceServiceRequest()
            request.ParseFromString(body)
            spans += [s for r in request.resource_spans for sc in r.scope_spans for s in sc.spans]
    with Store(store) as opened:
        calls = opened.count("attempts")
    assert sum(s.name == "cascade.task" for s in spans) == 3
    assert sum(s.name.startswith("chat ") for s in spans) == calls
