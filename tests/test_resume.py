"""Crash-safe runs: kill -9 and resume, the job budget, and worker processes sharing a store."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cascade import Store
from cascade.cli import main
from cascade.store.ledger import Entry, Ledger
from cascade.types import Task
from tests.fake_backends import POLICY

ROOT = Path(__file__).resolve().parents[1]


def _job(tmp_path: Path, tasks: int) -> Path:
    (tmp_path / "echo.toml").write_text(POLICY)
    lines = (
        json.dumps({"id": f"t{n}", "type": "echo", "input": f"item {n}"}) for n in range(tasks)
    )
    (tmp_path / "tasks.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path


def _argv(job: Path, *extra: str) -> list[str]:
    return [
        "run",
        str(job / "tasks.jsonl"),
        "--policy",
        str(job / "echo.toml"),
        "--backend",
        "tests.fake_backends:ladder",
        "--store",
        str(job / "run.db"),
        "--out",
        str(job / "results.jsonl"),
        "--no-progress",
        *extra,
    ]


def _check_exactly_once(job: Path, tasks: int) -> list[dict[str, object]]:
    """One result line per task in the file and the store, and a sound store."""
    results = [json.loads(line) for line in (job / "results.jsonl").read_text().splitlines()]
    ids = [r["id"] for r in results]
    assert len(ids) == len(set(ids)) == tasks
    assert set(ids) == {f"t{n}" for n in range(tasks)}
    with Store(job / "run.db") as store:
        assert store.integrity_check() == "ok"
        assert store.count("results") == tasks
        states = dict(store.select("SELECT state, count(*) FROM tasks GROUP BY state"))
        assert states == {"done": tasks}
    for result in results:
        number = int(str(result["id"])[1:])
        assert result["status"] == "accepted"
        assert result["model"] == ("big" if number % 5 == 0 else "small")
    return results


def test_kill_9_at_random_points_then_resume_gives_exactly_one_result_per_task(
    tmp_path: Path,
) -> None:
    """A job killed with SIGKILL ten times and resumed each time loses and repeats nothing.

    The kills take the whole process group (coordinator and worker processes, as a machine
    crash would), at random points; runs alternate between one and two worker processes.
    """
    tasks = 5000
    job = _job(tmp_path, tasks)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rng = random.Random(20261122)  # noqa: S311  # reproducible kill times, not crypto
    for kill in range(12):
        workers = str(1 + kill % 2)
        command = [
            sys.executable,
            "-m",
            "cascade.cli",
            *_argv(job, "--concurrency", "8", "--workers", workers),
        ]
        process = subprocess.Popen(  # noqa: S603  # our own command line
            command, cwd=job, env=env, stdout=subprocess.DEVNULL, start_new_session=True
        )
        try:
            process.wait(timeout=rng.uniform(0.4, 1.2))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        else:
            pytest.fail(f"the job finished before kill {kill + 1}; make it longer")
    # The twelfth kill is done: resume to the end.
    finished = subprocess.run(  # noqa: S603  # our own command line
        [sys.executable, "-m", "cascade.cli", *_argv(job, "--workers", "1")],
        cwd=job,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    assert "resumed" in finished.stdout
    _check_exactly_once(job, tasks)
    with Store(job / "run.db") as store:
        executions = sum(n for (n,) in store.select("SELECT executions FROM tasks"))
        stored = store.count("attempts")
    logged = len((job / "results.steps.jsonl").read_text().splitlines())
    # Tasks leased again after a kill were called again; the step log holds those calls too.
    assert executions >= tasks
    assert logged >= stored >= tasks + tasks // 5


def test_a_second_run_resumes_instead_of_repeating(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Running the same job again in the same store calls nothing and rewrites the same results."""
    job = _job(tmp_path, 50)
    assert main(_argv(job)) == 0
    first = sorted((job / "results.jsonl").read_text().splitlines())
    with Store(job / "run.db") as store:
        calls = store.count("attempts")
    capsys.readouterr()
    assert main(_argv(job)) == 0
    assert "resumed" in capsys.readouterr().out
    assert sorted((job / "results.jsonl").read_text().splitlines()) == first
    with Store(job / "run.db") as store:
        assert store.count("attempts") == calls


def test_the_budget_stops_the_job_and_a_higher_budget_continues_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """At the budget no new task starts, the run says what remains, and more money finishes it."""
    tasks = 400
    job = _job(tmp_path, tasks)
    assert main(_argv(job, "--budget", "0.0002", "--concurrency", "4")) == 3
    out = capsys.readouterr().out
    assert "budget reached" in out
    assert "tasks not done" in out
    done = len((job / "results.jsonl").read_text().splitlines())
    assert 0 < done < tasks
    with Store(job / "run.db") as store:
        spent = next(store.select("SELECT total(cost_usd) FROM attempts"))[0]
    # In-flight tasks finish after the budget is reached: a small overshoot, never a runaway.
    assert 0.0002 <= spent < 0.0004
    assert main(_argv(job, "--budget", "0.0002")) == 3  # the same budget: nothing more runs
    assert len((job / "results.jsonl").read_text().splitlines()) == done
    assert main(_argv(job, "--budget", "1")) == 0
    _check_exactly_once(job, tasks)


def test_worker_processes_share_the_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two worker processes lease disjoint tasks: every task runs once and has one result."""
    tasks = 1500
    job = _job(tmp_path, tasks)
    assert main(_argv(job, "--workers", "2", "--concurrency", "32")) == 0
    assert "2 workers" in capsys.readouterr().out
    _check_exactly_once(job, tasks)
    with Store(job / "run.db") as store:
        assert next(store.select("SELECT max(executions) FROM tasks"))[0] == 1
        owners = store.count("attempts")
    assert owners == tasks + tasks // 5


def test_a_worker_process_that_dies_hands_its_tasks_to_the_others(tmp_path: Path) -> None:
    """Leases of a worker that exits are released at once, not after the lease deadline."""
    with Store(tmp_path / "run.db") as store:
        store.start_run("r")
        ledger = Ledger(store, "r")
        ledger.ingest([Entry(n, task=Task(f"t{n}", input="x")) for n in range(1, 5)])
        assert len(ledger.lease("dead", 3, ttl_s=3600)) == 3
        assert ledger.release("dead") == 3
        again = ledger.lease("alive", 10, ttl_s=3600)
        assert sorted(leased.task.id for leased in again) == ["t1", "t2", "t3", "t4"]
        assert sorted(leased.execution for leased in again) == [1, 2, 2, 2]


def test_expired_leases_are_reclaimed_and_live_ones_kept(tmp_path: Path) -> None:
    """Reclaim takes back leases past their deadline or held by owners not alive."""
    with Store(tmp_path / "run.db") as store:
        store.start_run("r")
        ledger = Ledger(store, "r")
        ledger.ingest([Entry(n, task=Task(f"t{n}", input="x")) for n in range(1, 4)])
        ledger.lease("a", 1, ttl_s=0.01)
        ledger.lease("b", 1, ttl_s=3600)
        ledger.lease("c", 1, ttl_s=3600)
        time.sleep(0.02)
        assert ledger.reclaim(alive=["a", "b"]) == 2  # a's lease expired; c is not alive
        assert [leased.task.id for leased in ledger.lease("d", 10, ttl_s=60)] == ["t1", "t3"]
