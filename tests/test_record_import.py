"""From a log to a benchmark: ``cascade import``, then ``cascade record``, then ``cascade bench``.

The log is the shipped OpenAI chat sample (JSON-schema extractions, tool calls, plain chat);
the two recorded models are on the loopback fake provider.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

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
            assert "tools" not in body
    assert "offered tools, which record does not send" in done.stdout
    bench = cascade("bench", str(imported), "--ladder", f"{CHEAP},{DEAR}", "--json")
    assert bench.returncode == 0, bench.stdout + bench.stderr
    report = json.loads(bench.stdout)
    assert report["tasks"] == len(tasks)
    assert {CHEAP, DEAR} <= set(report["models"])
    assert report["ladders"][f"{CHEAP} → {DEAR}"]["accepted_by_tier"]
