"""Honest counts, second round (issue 33, item 6): what a run, its resume and its report say."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cascade.cli import main
from cascade.policy import load_policies
from cascade.run.guard import guard_for
from cascade.testing import FakeBatches, FakeOpenAI, FakeReply
from tests.test_audit import audit_says_fine_to_every_third, audit_steps
from tests.test_audit import write_job as write_audit_job
from tests.test_batch_resume import BATCH, Killer, assert_once, killed_then_resumed
from tests.test_batch_tier import Provider
from tests.test_batch_tier import write_job as write_batch_job
from tests.test_run_trouble import ROOT, Script, cascade_run, write_job

_POLICY = """\
task_type = "echo"
{budget}
[[tiers]]
model = "openai/cheap"
params = {{ max_tokens = {max_tokens} }}
price = {{ input_usd_per_mtok = 1.0, output_usd_per_mtok = 8.0 }}
[[tiers]]
model = "openai/dear"
params = {{ max_tokens = {max_tokens} }}
price = {{ input_usd_per_mtok = 10.0, output_usd_per_mtok = 40.0 }}
[[validators]]
kind = "one_of"
labels = ["ok"]
"""


@pytest.mark.parametrize(
    ("budget", "max_tokens"),
    [("[budget]\nmax_cost_per_task_usd = 0.00004", 1000), ("", 8)],
    ids=["budget-below-a-typical-answer", "max-tokens-below-a-typical-answer"],
)
def test_dry_run_floor_is_never_above_its_worst_case(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], budget: str, max_tokens: int
) -> None:
    """A tight task budget or a short max_tokens keeps the floor at or below the worst case."""
    policy = tmp_path / "p.toml"
    policy.write_text(_POLICY.format(budget=budget, max_tokens=max_tokens))
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text("".join(json.dumps({"id": f"t{n}", "input": "hi"}) + "\n" for n in range(5)))
    code = main(["run", str(tasks), "--policy", str(policy), "--dry-run",
                 "--store", str(tmp_path / "run.db")])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    found = re.search(r"total: floor \$([0-9.]+) .*worst case \$([0-9.]+)", out)
    assert found is not None, out
    floor, worst = float(found[1]), float(found[2])
    assert 0 < floor <= worst


def test_retry_failed_repeats_nothing_after_a_lost_lease(tmp_path: Path) -> None:
    """Failed tasks run again by --retry-failed are retried, not repeated after a lost lease."""
    down = threading.Event()
    down.set()
    script = Script(lambda _m, _n: FakeReply(status=503) if down.is_set() else FakeReply("ok"))
    server = FakeOpenAI(script)
    try:
        job = write_job(tmp_path, server.start(), 6)
        assert cascade_run(job, "--max-outage-s", "0.3").returncode == 4
        down.clear()
        again = cascade_run(job, "--retry-failed")
    finally:
        server.stop()
    assert again.returncode == 0, again.stdout + again.stderr
    assert "6 tasks that had failed were run again" in again.stdout
    assert "repeated" not in again.stdout


def test_a_batch_taken_up_after_a_kill_is_not_a_repeat(tmp_path: Path) -> None:
    """Killed while its batch runs: the resumed run submits nothing and says nothing repeated."""
    killer = Killer("retrieve")
    provider = Provider(FakeBatches(complete_after_s=0.5, on=killer))
    with provider.server:
        job = write_batch_job(tmp_path, provider.server.base_url, 10, BATCH)
        out = killed_then_resumed(job, killer)
        assert_once(provider, job, 10)
    assert "repeated" not in out, out


def test_a_resume_after_a_kill_does_not_say_the_file_holds_no_tasks(tmp_path: Path) -> None:
    """Killed with every line read and no task done: the resume names the lines read before."""
    held = threading.Event()
    script = Script(lambda _m, _n: FakeReply("ok", delay_s=0 if held.is_set() else 30))
    server = FakeOpenAI(script)
    try:
        job = write_job(tmp_path, server.start(), 4)
        process = subprocess.Popen(  # noqa: S603  # our own command line
            [sys.executable, "-m", "cascade.cli", "run", str(job / "tasks.jsonl"),
             "--policy", str(job / "policy.toml"), "--store", str(job / "run.db"),
             "--out", str(job / "results.jsonl"), "--no-progress"],
            cwd=job, env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while sum(script.counts.values()) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        process.kill()
        process.wait()
        held.set()
        again = cascade_run(job)
    finally:
        server.stop()
    assert again.returncode == 0, again.stdout + again.stderr
    assert "holds no tasks" not in again.stdout
    assert "read        0 lines after the 4 read before (0 tasks were done before)" in again.stdout


def test_the_report_totals_every_call_audits_included_as_the_run_spent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``cascade report`` gives the run's own ``spent``, audits included, and what it went to."""
    server = FakeOpenAI(Script(audit_says_fine_to_every_third))
    try:
        job = write_audit_job(tmp_path, server.start())
        run = cascade_run(job)
    finally:
        server.stop()
    assert run.returncode == 0, run.stdout + run.stderr
    spent = re.search(r"spent +\$([0-9.]+)\n", run.stdout)
    assert spent is not None, run.stdout
    audits = sum(s["cost_usd"] for s in audit_steps(job))
    assert audits > 0
    assert main(["report", str(job / "run.db")]) == 0
    out = capsys.readouterr().out
    assert f"spent ${spent[1]} in all:" in out
    assert f"${audits:.6f} on audits" in out


def test_an_audit_models_breaker_trips_are_counted(tmp_path: Path) -> None:
    """An audit model that is down opens its breaker: the summary counts the trip."""

    def reply(model: str, _n: int) -> FakeReply:
        return FakeReply(status=503) if model == "audit-model" else FakeReply("ok")

    server = FakeOpenAI(Script(reply))
    try:
        job = write_audit_job(tmp_path, server.start(), share=1.0)
        run = cascade_run(job)
    finally:
        server.stop()
    assert run.returncode == 0, run.stdout + run.stderr
    assert "refused by an open breaker" in run.stdout
    trips = re.search(r"(\d+) breaker trips", run.stdout)
    assert trips is not None, run.stdout
    assert int(trips[1]) >= 1, run.stdout


def test_the_audit_models_breaker_is_shared_by_every_worker(tmp_path: Path) -> None:
    """The run's guard, handed to every worker process, holds the audit model's breaker."""
    policy = tmp_path / "p.toml"
    write_audit_job(tmp_path, "http://127.0.0.1:9")
    (tmp_path / "policy.toml").rename(policy)
    assert "openai/audit-model" in guard_for(load_policies(str(policy))).keys
