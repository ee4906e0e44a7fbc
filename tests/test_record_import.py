"""From a log to a benchmark: ``cascade import``, then ``cascade record``, then ``cascade bench``.

The log is the shipped OpenAI chat sample (JSON-schema extractions, tool calls, plain chat);
the two recorded models are on the loopback fake provider.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cascade.testing import FakeOpenAI, FakeReply
from tests.test_record import (
    CHEAP,
    DEAR,
    ROOT,
    Provider,
    environment,
    record,
    write_policy,
)

LOG = ROOT / "tests" / "data" / "import" / "openai_chat.jsonl"


def cascade(*args: str) -> subprocess.CompletedProcess[str]:
    """Any ``cascade`` command as a process."""
    return subprocess.run(  # noqa: S603  # our own command line
        [sys.executable, "-m", "cascade.cli", *args],
        env=environment(),
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )


@pytest.fixture
def imported(tmp_path: Path) -> Path:
    """The sample log, imported."""
    done = cascade("import", "openai-chat", str(LOG), "--out", str(tmp_path / "data"))
    assert done.returncode == 0, done.stdout + done.stderr
    return tmp_path / "data"


def test_an_imported_log_recorded_by_two_models_benches_them_beside_the_served_one(
    tmp_path: Path, imported: Path
) -> None:
    """Every task asked of both models once, with its response_format; bench compares all."""
    provider = Provider()
    with provider.server:
        policy = write_policy(tmp_path, provider.server.base_url)
        done = record(imported, policy, "--sample", "100", "--seed", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    tasks = [json.loads(line) for line in (imported / "tasks.jsonl").read_text().splitlines()]
    assert len(provider.bodies) == 2 * len(tasks)
    sent = {(b["model"], b["messages"][-1]["content"]): b for b in provider.bodies}
    for task in tasks:
        for model in ("cheap-model", "dear-model"):
            body = sent[(model, task["messages"][-1]["content"])]
            assert body.get("response_format") == task.get("response_format")
            assert body.get("tools") == task.get("tools")  # sent as the served model was sent
    assert "offered tools: sent with their requests" in done.stdout
    bench = cascade("bench", str(imported), "--ladder", f"{CHEAP},{DEAR}", "--json")
    assert bench.returncode == 0, bench.stdout + bench.stderr
    report = json.loads(bench.stdout)
    assert report["tasks"] == len(tasks)
    assert {CHEAP, DEAR} <= set(report["models"])
    assert report["ladders"][f"{CHEAP} → {DEAR}"]["accepted_by_tier"]


def _calling(body: dict[str, Any]) -> FakeReply:
    """A model that calls the tool it is offered, with the city the question names."""
    if not body.get("tools"):
        return FakeReply("Paris")
    city = str(body["messages"][-1]["content"]).rstrip("?").split()[-1]
    call = {
        "id": "call_9",
        "type": "function",
        "function": {"name": "get_weather", "arguments": json.dumps({"unit": "c", "city": city})},
    }
    completion = {"id": "c1", "object": "chat.completion", "created": 0, "model": body["model"],
                  "choices": [{"index": 0, "finish_reason": "tool_calls",
                               "message": {"role": "assistant", "content": None,
                                           "tool_calls": [call]}}],
                  "usage": {"prompt_tokens": 10, "completion_tokens": 5}}  # fmt: skip
    return FakeReply(body=json.dumps(completion).encode())


def test_a_recorded_tool_call_is_kept_as_calls_and_reproduces_the_served_one(
    tmp_path: Path, imported: Path
) -> None:
    """The cheap model's tool calls are recorded as the served one's were: the same calls."""
    with FakeOpenAI(_calling) as fake:
        policy = write_policy(tmp_path, fake.base_url)
        done = record(imported, policy, "--sample", "100", "--seed", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    offered = [body for body in fake.requests if body.get("tools")]
    assert offered  # sent with their tools, and nothing of litellm's own beside them
    assert not any(key.startswith("_") for body in offered for key in body)
    truth = cascade("truth", str(imported), "--by", "served")
    assert truth.returncode == 0, truth.stdout + truth.stderr
    tasks = {
        t["id"]: t for t in map(json.loads, (imported / "tasks.jsonl").read_text().splitlines())
    }
    rows = [json.loads(line) for line in (imported / "responses.jsonl").read_text().splitlines()]
    calls = [r for r in rows if r["model"] == CHEAP and tasks[r["task_id"]].get("tools")]
    assert calls
    for row in calls:
        assert json.loads(row["output"])[0]["name"] == "get_weather"
        assert row["correct"] is True, row  # the served call, arguments in another order
