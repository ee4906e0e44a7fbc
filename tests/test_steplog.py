"""The step log: one structlog event per step with every field, and never a secret."""

from __future__ import annotations

import io
import json

import pytest

from cascade import Cascade, Settings, StepLog, Tier
from cascade.backends import ScriptedBackend
from cascade.backends.scripted import Item
from cascade.errors import ServerError
from cascade.testing import capture_steps
from tests.helpers import NO_WAIT, says_ok

FIELDS = {
    "event", "run_id", "task_id", "task_type", "step", "tier", "model_requested", "model_served",
    "kind", "prompt_tokens", "completion_tokens", "cost_usd", "latency_s", "verdicts",
    "decision", "error", "ts",
}  # fmt: skip

FAKE_KEY = "sk-test-0123456789abcdefghijklmnopqrstuv"


def run_logged(script: dict[str, list[Item]], ladder: list[Tier], log: StepLog) -> object:
    """Run one task with ``log`` and return its outcome."""
    settings = Settings(retry=NO_WAIT)
    cascade = Cascade(ladder, says_ok, backend=ScriptedBackend(script), log=log, settings=settings)
    return cascade.run({"id": "t1", "type": "demo", "input": "x"})


def test_every_step_emits_exactly_one_event_with_all_fields() -> None:
    """Retries, re-asks and escalations each appear once, with every documented field."""
    script: dict[str, list[Item]] = {"a": [ServerError("503"), "no", "no"], "b": ["ok"]}
    with capture_steps() as events:
        outcome = run_logged(script, [Tier("a", reasks=1, retries=1), Tier("b")], StepLog())
    assert len(events) == len(outcome.steps) == 4  # type: ignore[attr-defined]
    for number, event in enumerate(events):
        assert set(event) >= FIELDS
        assert event["event"] == "cascade.step"
        assert event["step"] == number
        assert event["task_type"] == "demo"
    assert [e["kind"] for e in events] == ["call", "retry", "reask", "call"]
    assert [e["decision"] for e in events] == ["error", "reask", "escalate", "accept"]
    assert events[1]["verdicts"] == [
        {"validator": "says_ok", "passed": False, "reason": "wanted 'ok', got 'no'"}
    ]


def test_events_are_json_lines_on_the_given_file() -> None:
    """Without a capture, each step is one JSON object per line."""
    out = io.StringIO()
    run_logged({"a": ["no"], "b": ["ok"]}, [Tier("a"), Tier("b")], StepLog(out))
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert [json.loads(line)["model_requested"] for line in lines] == ["a", "b"]


def test_no_secret_reaches_the_log(monkeypatch: pytest.MonkeyPatch) -> None:
    """A key in the environment and in an Authorization header never appears in any event."""
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    monkeypatch.setenv("MY_SERVICE_TOKEN", "plain-token-value-42")
    leak = ServerError(
        f"500 from provider; request headers: {{'Authorization': 'Bearer {FAKE_KEY}', "
        f"'x-api-key': 'plain-token-value-42'}} api_key={FAKE_KEY}"
    )
    out = io.StringIO()
    log = StepLog(out)
    run_logged({"a": [leak, "ok"], "b": ["ok"]}, [Tier("a", retries=0), Tier("b")], log)
    with capture_steps() as events:
        run_logged({"a": [leak, "ok"], "b": ["ok"]}, [Tier("a", retries=0), Tier("b")], log)
    written = out.getvalue() + json.dumps(events)
    assert "500 from provider" in written
    assert FAKE_KEY not in written
    assert "0123456789abcdef" not in written
    assert "plain-token-value-42" not in written
    assert "[REDACTED]" in written


def test_secret_keyed_fields_are_redacted_in_other_events() -> None:
    """Fields named like credentials are replaced, whatever their value."""
    out = io.StringIO()
    StepLog(out).event("cascade.config", api_key="abc123456789", headers={"Authorization": "x"})
    event = json.loads(out.getvalue())
    assert event["api_key"] == "[REDACTED]"
    assert event["headers"] == {"Authorization": "[REDACTED]"}


def test_token_counts_are_not_mistaken_for_secrets() -> None:
    """``prompt_tokens`` and ``completion_tokens`` keep their numbers."""
    with capture_steps() as events:
        run_logged({"a": ["ok"]}, [Tier("a")], StepLog())
    assert isinstance(events[0]["prompt_tokens"], int)
    assert isinstance(events[0]["completion_tokens"], int)
