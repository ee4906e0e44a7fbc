"""One ``cascade run`` per store: a second run on a live store is refused, naming the holder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cascade.errors import ConfigError
from cascade.store import Store
from cascade.store.holder import holding
from tests.fake_backends import POLICY

ROOT = Path(__file__).resolve().parents[1]


def _job(tmp_path: Path, tasks: int) -> Path:
    (tmp_path / "policy.toml").write_text(POLICY)
    lines = [json.dumps({"id": f"t{n}", "type": "echo", "input": f"q{n}"}) for n in range(tasks)]
    (tmp_path / "tasks.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path


def _command(job: Path, out: str) -> list[str]:
    return [
        *(sys.executable, "-m", "cascade.cli", "run", str(job / "tasks.jsonl")),
        *("--policy", str(job / "policy.toml"), "--store", str(job / "run.db")),
        *("--out", str(job / out), "--no-progress", "--concurrency", "4"),
        *("--backend", "tests.fake_backends:ladder"),
    ]


def _started(job: Path, timeout_s: float = 60.0) -> None:
    """Wait until the run has stored a result."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (job / "run.db").exists():
            with Store(job / "run.db") as store:
                if store.count("results"):
                    return
        time.sleep(0.1)
    pytest.fail("the first run never stored a result")


def test_a_second_run_on_a_live_store_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    """The same command again while the first works: exit 2 naming it; the first is unharmed."""
    job = _job(tmp_path, 3000)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = subprocess.Popen(  # noqa: S603  # our own command line
        _command(job, "results.jsonl"), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        _started(job)
        second = subprocess.run(  # noqa: S603  # our own command line
            _command(job, "results.jsonl"), env=env, capture_output=True, text=True,
            timeout=120, check=False,
        )  # fmt: skip
        assert second.returncode == 2, second.stdout + second.stderr
        assert f"--store {job / 'run.db'} is in use by another live run" in second.stderr
        assert f"cascade run, pid {first.pid} on " in second.stderr
        out, err = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    assert first.returncode == 0, out + err
    ids = [json.loads(line)["id"] for line in (job / "results.jsonl").read_text().splitlines()]
    assert sorted(ids) == sorted(f"t{n}" for n in range(3000))
    with Store(job / "run.db") as store:
        (repeated,) = next(store.select("SELECT coalesce(sum(executions - 1), 0) FROM tasks"))
    assert repeated == 0  # no lease was taken from the live run


def test_a_killed_holder_leaves_the_store_free_for_its_resume(tmp_path: Path) -> None:
    """A run killed with SIGKILL: the lock dies with it, and the same command resumes."""
    job = _job(tmp_path, 3000)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = subprocess.Popen(  # noqa: S603  # our own command line
        _command(job, "results.jsonl"), env=env, stdout=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    _started(job)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    again = subprocess.run(  # noqa: S603  # our own command line
        _command(job, "results.jsonl"), env=env, capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    assert "resumed" in again.stdout


def test_the_lock_is_held_for_the_life_of_the_context(tmp_path: Path) -> None:
    """Inside, another holder is refused; after, the store is free again."""
    store = tmp_path / "run.db"
    with holding(store), pytest.raises(ConfigError, match=f"pid {os.getpid()} on "):  # noqa: SIM117
        with holding(store):
            pass
    with holding(store):
        pass
