"""A full disk mid-run: stop leasing, keep every paid call, say so in one line, resume cleanly.

The run is driven in this process through ``cascade.cli.main`` against the loopback fake, with
the store's one write path for outcomes (``Store.record_many``) made to fail with ENOSPC after a
few batches, as SQLite's write would on a full disk; with two worker processes, the same patch
is put in every process of the run by a ``sitecustomize`` module on its ``PYTHONPATH``. What
users rely on is checked: exit status 2 with one error line naming the store and the side file,
no traceback, the store's own rows and the side file together holding every paid call, and a
resume that loses and repeats nothing.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from cascade.cli import main
from cascade.store import Store
from cascade.testing import FakeReply
from tests.test_run_trouble import ROOT, Script, serve, write_job

__all__ = ["serve"]  # the fake provider's fixture, used by name

TASKS = 400
"""Enough that no worker calls them all in the few flushes (50 ms apart) before its store fills
(with 80, one fast worker sometimes did, and the check that the run stopped leasing failed)."""
WRITES_BEFORE_FULL = 3


def slow_ok(_model: str, _n: int) -> FakeReply:
    """Every model answers "ok" after 20 ms, so that tasks are in flight when the disk fills."""
    return FakeReply("ok", delay_s=0.02)


def fill_the_disk_after(monkeypatch: pytest.MonkeyPatch, writes: int) -> None:
    """``Store.record_many`` fails with ENOSPC after ``writes`` calls, as on a full disk."""
    real = Store.record_many
    calls = [0]

    def record_many(self: Store, items: Sequence[Any], *args: Any, **kwargs: Any) -> list[bool]:
        calls[0] += 1
        if calls[0] > writes:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, items, *args, **kwargs)

    monkeypatch.setattr(Store, "record_many", record_many)


def run(job: Path) -> int:
    """``cascade run`` on the job, in this process, one worker."""
    return main([
        "run", str(job / "tasks.jsonl"), "--policy", str(job / "policy.toml"),
        "--out", str(job / "results.jsonl"), "--store", str(job / "run.db"),
        "--no-progress", "--concurrency", "8", "--workers", "1",
    ])  # fmt: skip


def stored_calls(job: Path) -> list[tuple[str, int]]:
    """Every call the store holds, as (task id, step)."""
    with sqlite3.connect(job / "run.db") as db:
        return list(db.execute("SELECT task_id, step FROM attempts ORDER BY seq"))


def side_calls(side: Path) -> list[tuple[str, int]]:
    """Every call the side file holds, as (task id, step)."""
    entries = [json.loads(line) for line in side.read_text().splitlines()]
    return [(row[1], row[4]) for entry in entries for row in entry["steps"]]


def test_a_full_disk_keeps_every_paid_call_and_a_resume_loses_and_repeats_none(
    tmp_path: Path, serve: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """ENOSPC mid-run: exit 2, one line naming the paths, every paid call kept, a clean resume."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    script = Script(slow_ok)
    job = write_job(tmp_path, serve(script), TASKS, timeout_s=60)  # see write_job
    fill_the_disk_after(monkeypatch, WRITES_BEFORE_FULL)
    assert run(job) == 2
    err = capsys.readouterr().err
    side = job / "run.db.unsaved.jsonl"
    assert "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert f"could not write {job / 'run.db'} (No space left on device)" in line
    assert str(side) in line
    paid = sum(script.counts.values())
    in_store, kept = stored_calls(job), side_calls(side)
    assert kept, "no call was kept aside: the disk filled after the run"
    assert not set(kept) & set(in_store)
    assert len(in_store) + len(kept) == paid
    assert f"the {len(kept)} paid calls the store could not take" in line
    assert paid < TASKS  # it stopped leasing

    monkeypatch.undo()
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert run(job) == 0
    assert not side.exists()
    ids = [json.loads(x)["id"] for x in (job / "results.jsonl").read_text().splitlines()]
    assert sorted(ids) == sorted(f"t{n}" for n in range(TASKS))
    assert len(stored_calls(job)) == sum(script.counts.values()) == TASKS  # none run twice


FULL_DISK_SITE = f"""
import errno
from cascade.store import Store

_real, _calls = Store.record_many, [0]


def _record_many(self, items, *args, **kwargs):
    _calls[0] += 1
    if _calls[0] > {WRITES_BEFORE_FULL}:
        raise OSError(errno.ENOSPC, "No space left on device")
    return _real(self, items, *args, **kwargs)


Store.record_many = _record_many
"""


def run_process(job: Path, site: Path | None) -> subprocess.CompletedProcess[str]:
    """``cascade run`` on the job with two worker processes; ``site`` holds a sitecustomize."""
    command = [
        *(sys.executable, "-m", "cascade.cli", "run", str(job / "tasks.jsonl")),
        *("--policy", str(job / "policy.toml"), "--out", str(job / "results.jsonl")),
        *("--store", str(job / "run.db"), "--no-progress", "--concurrency", "8", "--workers", "2"),
    ]
    paths = [str(site)] if site is not None else []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*paths, str(ROOT)])}
    env.pop("OPENAI_API_KEY", None)
    return subprocess.run(  # noqa: S603  # our own command line
        command, cwd=job, env=env, capture_output=True, text=True, timeout=180, check=False
    )


def test_two_workers_on_a_full_disk_keep_every_paid_call_and_resume_cleanly(
    tmp_path: Path, serve: Any
) -> None:
    """Every worker process fails to write: one error, exit 2, nothing lost, a clean resume."""
    tasks = TASKS
    script = Script(slow_ok)
    job = write_job(tmp_path, serve(script), tasks, timeout_s=60)  # see write_job
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(FULL_DISK_SITE)
    first = run_process(job, site)
    assert first.returncode == 2, first.stdout + first.stderr
    assert "Traceback" not in first.stderr
    (line,) = first.stderr.strip().splitlines()
    side = job / "run.db.unsaved.jsonl"
    assert f"could not write {job / 'run.db'} (No space left on device)" in line
    assert str(side) in line
    in_store, kept = stored_calls(job), side_calls(side)
    assert kept
    assert len(in_store) + len(kept) == sum(script.counts.values()) < tasks
    again = run_process(job, None)
    assert again.returncode == 0, again.stdout + again.stderr
    assert not side.exists()
    ids = [json.loads(x)["id"] for x in (job / "results.jsonl").read_text().splitlines()]
    assert sorted(ids) == sorted(f"t{n}" for n in range(tasks))
    assert len(stored_calls(job)) == sum(script.counts.values()) == tasks
