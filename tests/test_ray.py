"""``cascade run --executor ray``: the same results, exactly once, on a local Ray cluster.

This module starts a local Ray (2 CPUs, loopback only) once for its tests; each run joins it.
The actors import this repository's ``tests`` package (for the scripted backends) through
the cluster's ``PYTHONPATH``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cascade import Store
from cascade.cli import main
from cascade.policy import load_policies
from cascade.run.job import Job
from cascade.run.runner import Runner
from cascade.run.tasks_file import read_lines
from cascade.testing import FakeOpenAI, FakeReply
from tests.fake_backends import POLICY

ray = pytest.importorskip("ray")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    """A local Ray for this module's runs, which join it instead of starting their own."""
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        configure_logging=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": str(ROOT), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}},
    )
    yield
    ray.shutdown()


def run(job: Path, tasks: Path, policy: Path, *extra: str) -> int:
    """``cascade run`` on Ray with 2 actors, in this process."""
    return main(
        [
            *("run", str(tasks), "--policy", str(policy), "--no-progress"),
            *("--out", str(job / "results.jsonl"), "--store", str(job / "run.db")),
            *("--executor", "ray", "--workers", "2", "--concurrency", "8", *extra),
        ]
    )


def results(job: Path) -> dict[str, dict[str, Any]]:
    """The results file by task id; fails if a task has two lines."""
    lines = [json.loads(line) for line in (job / "results.jsonl").read_text().splitlines()]
    by_id = {line["id"]: line for line in lines}
    assert len(by_id) == len(lines), "a task has two results"
    return by_id


def write_tasks(job: Path, count: int, **special: str) -> Path:
    """``count`` echo tasks t0..; ``special`` gives some task ids another input."""
    tasks = job / "tasks.jsonl"
    lines = (
        json.dumps({"id": f"t{n}", "type": "echo", "input": special.get(f"t{n}", f"x{n}")})
        for n in range(count)
    )
    tasks.write_text("\n".join(lines) + "\n")
    (job / "policy.toml").write_text(POLICY)
    return tasks


@pytest.mark.skipif(not (SHARED / "bfcl-simple").is_dir(), reason="../shared is not beside us")
def test_a_replay_run_on_ray_matches_the_same_run_in_one_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """bfcl-simple replayed on 2 actors: every task's result and step as in one process."""
    tasks, policy = SHARED / "bfcl-simple" / "tasks.jsonl", ROOT / "policies" / "function_call.toml"
    replay = ("--replay", str(SHARED / "bfcl-simple"))
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir()
    there.mkdir()
    files = ("--out", str(here / "results.jsonl"), "--store", str(here / "run.db"))
    assert main(["run", str(tasks), "--policy", str(policy), "--no-progress", *replay, *files]) == 0
    assert run(there, tasks, policy, *replay) == 0
    assert "2 Ray actors" in capsys.readouterr().out

    def kept(line: dict[str, Any]) -> tuple[Any, ...]:
        return line["status"], line["model"], line["output"], line["cost_usd"], line["attempts"]

    expected, got = results(here), results(there)
    assert len(got) == 400
    assert {k: kept(v) for k, v in got.items()} == {k: kept(v) for k, v in expected.items()}
    steps = [
        sorted(
            (event["task_id"], event["step"], event["decision"])
            for line in (job / "results.steps.jsonl").read_text().splitlines()
            if (event := json.loads(line))["event"] == "cascade.step"
        )
        for job in (here, there)
    ]
    assert steps[0] == steps[1]


def test_a_killed_actor_loses_its_leases_and_every_task_ends_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SIGKILL of the only actor mid-run: a new one takes its place, each task has one result."""
    marker = tmp_path / "died"
    tasks = write_tasks(tmp_path, 400, t37=f"die once:{marker} now")
    assert run(tmp_path, tasks, tmp_path / "policy.toml", "--workers", "1", "--backend",
               "tests.fake_backends:ladder_dying_once") == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert marker.exists(), "no actor was killed"
    assert "1 Ray actors died and were replaced" in printed
    assert "tasks were called again after a lost lease" in printed
    done = results(tmp_path)
    assert set(done) == {f"t{n}" for n in range(400)}
    assert {line["status"] for line in done.values()} == {"accepted"}
    with sqlite3.connect(tmp_path / "run.db") as db:
        assert db.execute("SELECT count(*), count(DISTINCT task_id) FROM results").fetchone() == (
            400,
            400,
        )


def test_a_429_pauses_every_actor(tmp_path: Path) -> None:
    """A 429 with Retry-After: 2 s: no actor sends the model anything until it is over.

    It answers the 30th request, once both actors have made their first (slow) calls.
    """
    arrivals: list[tuple[float, int]] = []
    lock = threading.Lock()

    def reply(_body: dict[str, Any]) -> FakeReply:
        with lock:
            arrivals.append((time.monotonic(), len(arrivals)))
            limited = len(arrivals) == 30
        if limited:
            return FakeReply(status=429, headers={"Retry-After": "2"})
        return FakeReply("ok", delay_s=0.01)

    server = FakeOpenAI(reply)
    url = server.start()
    try:
        (tmp_path / "policy.toml").write_text(
            f'task_type = "echo"\n[[tiers]]\nmodel = "openai/cheap"\nretries = 3\n'
            f'params = {{ api_base = "{url}", api_key = "sk-test" }}\n'
            "price = { input_usd_per_mtok = 1.0, output_usd_per_mtok = 2.0 }\n"
            '[[validators]]\nkind = "one_of"\nlabels = ["ok"]\n'
        )
        tasks = tmp_path / "tasks.jsonl"
        lines = (json.dumps({"id": f"t{n}", "type": "echo", "input": f"x{n}"}) for n in range(120))
        tasks.write_text("\n".join(lines) + "\n")
        assert run(tmp_path, tasks, tmp_path / "policy.toml", "--concurrency", "4") == 0
    finally:
        server.stop()
    assert {line["status"] for line in results(tmp_path).values()} == {"accepted"}
    paused_at = arrivals[29][0]
    # Calls already on their way when the 429 came may land (an actor's view of the pause is
    # up to 50 ms old, and litellm takes its time on a busy box); then nothing until it is over.
    during = [t - paused_at for t, _ in arrivals[30:] if 0.3 < t - paused_at < 1.95]
    assert during == []
    assert len(arrivals) >= 121


def test_the_budget_stops_every_actor_and_a_rerun_finishes_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A job budget stops leasing on every actor; a rerun with more finishes, each task once."""
    tasks = write_tasks(tmp_path, 600)
    backend = ("--backend", "tests.fake_backends:ladder")
    assert run(tmp_path, tasks, tmp_path / "policy.toml", *backend, "--budget", "0.002") == 3
    printed = capsys.readouterr().out
    assert "budget reached" in printed
    first = results(tmp_path)
    assert 0 < len(first) < 600
    with sqlite3.connect(tmp_path / "run.db") as db:
        (spent,) = db.execute("SELECT sum(cost_usd) FROM attempts").fetchone()
    # What was in flight when the budget was reached: 2 actors x 8 tasks x one escalated task.
    assert 0.002 <= spent <= 0.002 + 2 * 8 * 0.000066
    assert run(tmp_path, tasks, tmp_path / "policy.toml", *backend, "--budget", "1") == 0
    done = results(tmp_path)
    assert set(done) == {f"t{n}" for n in range(600)}
    assert all(done[k] == v for k, v in first.items())


def test_the_actors_stop_at_the_budget_between_two_looks_of_the_coordinator(
    tmp_path: Path,
) -> None:
    """The coordinator reads the results every 3 s here: the actors' workers stop on their own."""
    tasks = write_tasks(tmp_path, 2000)
    job = Job(str(tasks), str(tmp_path / "policy.toml"), executor="ray", workers=2,
              concurrency=8, budget_usd=0.002, backend="tests.fake_backends:ladder",
              tail_s=3.0)  # fmt: skip
    with (
        Store(tmp_path / "run.db") as store,
        (tmp_path / "out.jsonl").open("w") as out,
        (tmp_path / "bad.jsonl").open("w") as bad,
    ):
        runner = Runner(job, load_policies(tmp_path / "policy.toml"), store)
        counts = asyncio.run(runner.run(read_lines(tasks), out, bad))
    assert counts.budget_reached
    assert counts.remaining > 0
    assert 0.002 <= counts.spent_usd <= 0.002 + 2 * 8 * 0.000066


def test_an_interrupt_cuts_off_tasks_on_the_actors_and_keeps_what_they_paid_for(
    tmp_path: Path,
) -> None:
    """Ctrl-C with calls hung on the actors: they are cut off, their paid calls are stored."""
    tasks = write_tasks(tmp_path, 40)  # t0, t5, .. escalate to big, which never answers
    backend = "tests.fake_backends:ladder_big_hangs"
    job = Job(str(tasks), str(tmp_path / "policy.toml"), executor="ray", workers=2,
              concurrency=8, backend=backend, grace_s=0.3)  # fmt: skip
    with (
        Store(tmp_path / "run.db") as store,
        (tmp_path / "out.jsonl").open("w") as out,
        (tmp_path / "bad.jsonl").open("w") as bad,
    ):
        runner = Runner(job, load_policies(tmp_path / "policy.toml"), store)

        async def go() -> Any:
            async def interrupt_when_the_rest_is_done() -> None:
                while runner.counts.results < 32:  # noqa: ASYNC110  # counted by the runner
                    await asyncio.sleep(0.05)
                runner.interrupt(signal.SIGINT)

            watcher = asyncio.ensure_future(interrupt_when_the_rest_is_done())
            counts = await runner.run(read_lines(tasks), out, bad)
            watcher.cancel()
            return counts

        counts = asyncio.run(go())
    assert counts.interrupted == signal.SIGINT
    assert (counts.results, counts.remaining) == (32, 8)
    with sqlite3.connect(tmp_path / "run.db") as db:
        cut = db.execute(
            "SELECT DISTINCT task_id FROM attempts"
            " WHERE task_id NOT IN (SELECT task_id FROM results)"
        ).fetchall()
        (spent,) = db.execute("SELECT sum(cost_usd) FROM attempts").fetchone()
    assert sorted(task_id for (task_id,) in cut) == sorted(f"t{n}" for n in range(0, 40, 5))
    assert counts.spent_usd == pytest.approx(spent)


def test_ray_options_are_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--ray-address without --executor ray is refused before anything runs."""
    tasks = write_tasks(tmp_path, 3)
    code = main(["run", str(tasks), "--policy", str(tmp_path / "policy.toml"),
                 "--ray-address", "127.0.0.1:1", "--out", str(tmp_path / "r.jsonl")])  # fmt: skip
    assert code == 2
    assert "--ray-address needs --executor ray" in capsys.readouterr().err
    assert not (tmp_path / "r.jsonl").exists()


def test_without_ray_installed_the_run_says_what_to_install(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No ray extra: exit 2 before anything is read or written, naming the extra."""
    monkeypatch.setitem(sys.modules, "ray", None)  # what a missing package looks like
    tasks = write_tasks(tmp_path, 3)
    assert run(tmp_path, tasks, tmp_path / "policy.toml") == 2
    assert "pip install 'cascade-llm[ray]'" in capsys.readouterr().err
    assert not (tmp_path / "results.jsonl").exists()


def test_an_actor_that_cannot_start_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The backend builds here but not on the actors: exit 2, saying why, nothing run."""
    monkeypatch.setenv("CASCADE_TEST_HERE", "1")
    tasks = write_tasks(tmp_path, 5)
    code = run(tmp_path, tasks, tmp_path / "policy.toml", "--backend",
               "tests.fake_backends:ladder_here_only")  # fmt: skip
    assert code == 2
    error = capsys.readouterr().err
    assert "a task actor could not start" in error
    assert "no such file on this node" in error
    assert (tmp_path / "results.jsonl").read_text() == ""


def test_a_run_joins_a_cluster_at_its_address(tmp_path: Path) -> None:
    """--ray-address: a ``cascade run`` process joins this module's cluster and leaves it up."""
    address = ray.get_runtime_context().gcs_address
    tasks = write_tasks(tmp_path, 50)
    command = [
        *(sys.executable, "-m", "cascade.cli", "run", str(tasks), "--no-progress"),
        *("--policy", str(tmp_path / "policy.toml"), "--out", str(tmp_path / "results.jsonl")),
        *("--store", str(tmp_path / "run.db"), "--backend", "tests.fake_backends:ladder"),
        *("--executor", "ray", "--ray-address", address, "--workers", "2"),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(  # noqa: S603  # our own command line
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 Ray actors" in done.stdout
    assert len(results(tmp_path)) == 50
    assert ray.get(ray.remote(lambda: 42).remote()) == 42  # the cluster is still up
