"""A batch run killed (``kill -9``) at each stage, then run again: each request runs once.

Each case ends with one result per task, and the provider asked to run each request once.
The fake provider calls back into the test as requests reach it (:attr:`FakeBatches.on`), and
the test kills the ``cascade run`` process right there: before the batch is made (its input
file uploaded and written to the ledger), just after it is made (the reply never reaches the
run), while it is being polled, and while its results are being recorded.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest

from cascade.testing import FakeBatches
from tests.test_batch_tier import Provider, write_job
from tests.test_run_trouble import ROOT, cascade_run, statuses


class Killer:
    """Kills the run the first time the provider sees ``stage`` for the n-th distinct id."""

    def __init__(self, stage: str, nth: int = 1, *, go_on: bool = True) -> None:
        self.stage, self.nth, self.go_on = stage, nth, go_on
        self.seen: set[str] = set()
        self.process: subprocess.Popen[str] | None = None
        self.killed = threading.Event()

    def __call__(self, stage: str, name: str) -> bool:
        """The fake's hook: kill the run here if this is the moment; whether the fake goes on."""
        if stage != self.stage or self.killed.is_set() or self.process is None:
            return True
        self.seen.add(name)
        if len(self.seen) < self.nth:
            return True
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.killed.set()
        return self.go_on


def start_run(job: Path) -> subprocess.Popen[str]:
    """``cascade run`` on the job as a process, not waited for."""
    command = [
        *(sys.executable, "-m", "cascade.cli", "run", str(job / "tasks.jsonl")),
        *("--policy", str(job / "policy.toml"), "--out", str(job / "results.jsonl")),
        *("--store", str(job / "run.db"), "--no-progress", "--concurrency", "8"),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(  # noqa: S603  # our own command line
        command, cwd=job, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def results_stored(job: Path) -> int:
    """Results in the run store now (0 before it exists)."""
    try:
        with sqlite3.connect(f"file:{job / 'run.db'}?mode=ro", uri=True, timeout=5) as db:
            return int(db.execute("SELECT count(*) FROM results").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def killed_then_resumed(job: Path, killer: Killer, watch: threading.Thread | None = None) -> str:
    """Run until the killer strikes, then run again to the end; the second run's output."""
    killer.process = start_run(job)
    if watch is not None:
        watch.start()
    if not killer.killed.wait(120):
        killer.process.kill()
        pytest.fail(f"the run never reached {killer.stage}: {killer.process.communicate()[1]}")
    killer.process.communicate()  # closes its pipe
    assert killer.process.returncode == -signal.SIGKILL
    run = cascade_run(job)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def assert_once(provider: Provider, job: Path, tasks: int) -> None:
    """One result per task, every one accepted, and each request run by the provider once."""
    assert statuses(job) == {"accepted": tasks}
    received = Counter(provider.server.batches.received)
    assert len(received) == tasks
    assert set(received.values()) == {1}, "a request was submitted twice"
    assert provider.calls() == {"cheap-model": tasks}, "a request was asked twice"


BATCH = "batch_size = 30\nbatch_wait_s = 0.3"


@pytest.mark.parametrize(
    ("stage", "go_on"),
    [("create", False), ("created", True), ("retrieve", True)],
    ids=["before-submit", "after-submit", "while-polling"],
)
def test_a_run_killed_at_a_stage_resumes_without_submitting_twice(
    tmp_path: Path, stage: str, go_on: bool
) -> None:
    """Killed before the batch is made, just after, or while polling it: made or found once.

    Before: its file is in the ledger. Just after: its id is not (the reply never came). The
    resumed run makes or finds that batch, and each request runs once.
    """
    killer = Killer(stage, go_on=go_on)
    provider = Provider(FakeBatches(complete_after_s=0.5, on=killer))
    with provider.server:
        job = write_job(tmp_path, provider.server.base_url, 30, BATCH)
        out = killed_then_resumed(job, killer)
        assert_once(provider, job, 30)
    assert "resumed" in out
    assert len(provider.server.batches.created) == 1


def test_a_run_killed_while_recording_results_keeps_them_and_downloads_the_rest(
    tmp_path: Path,
) -> None:
    """Killed while recording: what was recorded stays, the rest comes from the same batches.

    6 batches of 20: the first ends at once and is recorded, the others 2 s later; the run dies
    as it downloads the second's answers. The rerun submits nothing.
    """
    killer = Killer("content", nth=2)
    batches = FakeBatches(complete_after_s=0.3)

    def on(stage: str, name: str) -> bool:
        if stage == "created":
            batches.complete_after_s = 2.0  # the batches after the first take longer
        return killer(stage, name)

    batches.on = on
    provider = Provider(batches)
    with provider.server:
        job = write_job(tmp_path, provider.server.base_url, 120,
                        "batch_size = 20\nbatch_wait_s = 0.3")  # fmt: skip
        out = killed_then_resumed(job, killer)
        assert_once(provider, job, 120)
    assert len(provider.server.batches.created) == 6
    assert "(20 tasks were done before)" in out, out
