"""Bad input and faults, second round (issue 33, item 7): what ``cascade`` says of them."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from cascade.cli import main
from tests.test_run_trouble import cascade_run, write_job

_POLICY = """\
task_type = "echo"
[[tiers]]
model = "openai/cheap"
price = { input_usd_per_mtok = 1.0, output_usd_per_mtok = 2.0 }
[[validators]]
kind = "one_of"
labels = ["ok"]
"""


def test_show_of_a_task_no_tier_answered_names_no_tier_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A quarantined task (no input) is shown as never called, not as 'tier None'."""
    (tmp_path / "p.toml").write_text(_POLICY)
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(json.dumps({"id": "t1"}) + "\n")
    store = str(tmp_path / "run.db")
    argv = ["run", str(tasks), "--policy", str(tmp_path / "p.toml"), "--store", store,
            "--out", str(tmp_path / "results.jsonl"), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    capsys.readouterr()
    assert main(["show", store, "t1"]) == 0
    out = capsys.readouterr().out
    assert "None" not in out
    assert "  quarantined: no model was called, $0.000000, 0 steps stored" in out


def test_a_refused_connection_is_counted_as_a_connection_error(tmp_path: Path) -> None:
    """A provider port nobody listens on: the summary says connection errors, not 5xx."""
    with socket.socket() as probe:  # a loopback port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
    job = write_job(tmp_path, url, 2)
    run = cascade_run(job, "--max-outage-s", "0.3")
    assert run.returncode == 4, run.stdout + run.stderr
    assert "connection errors (refused, reset or cut)" in run.stdout
    assert "5xx" not in run.stdout
