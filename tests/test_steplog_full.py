"""A step log that cannot be written (a full disk) stops the run cleanly; nothing paid is lost.

The step log is written on ``/dev/full``, where every write fails with "No space left on
device", as on a full disk. The run stops leasing, the tasks in flight finish into the store,
and ``cascade run`` exits 2 with one line naming the log; a rerun with a log that can be
written does the rest, with every call made once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.test_run_trouble import Script, all_ok, cascade_run, serve, statuses, write_job

__all__ = ["serve"]  # the fake provider's fixture, used by name

FULL = Path("/dev/full")
pytestmark = pytest.mark.skipif(not FULL.exists(), reason="no /dev/full on this system")


def _calls(job: Path) -> int:
    with sqlite3.connect(job / "run.db") as db:
        ((count,),) = db.execute("SELECT count(*) FROM attempts")
    return int(count)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_step_log_on_a_full_disk_stops_the_run_and_loses_nothing(
    tmp_path: Path, serve: Callable[[Script], str], workers: str
) -> None:
    script = Script(all_ok)
    job = write_job(tmp_path, serve(script), 300, timeout_s=60)  # see write_job
    first = cascade_run(job, "--log", str(FULL), "--workers", workers)
    assert first.returncode == 2, first.stdout + first.stderr
    assert "Traceback" not in first.stderr
    assert f"could not write {FULL} (No space left on device" in first.stderr
    assert "the run stopped leasing tasks" in first.stderr
    assert _calls(job) == sum(script.counts.values()) < 300  # it stopped, and kept every call
    again = cascade_run(job, "--log", str(tmp_path / "steps.jsonl"), "--workers", workers)
    assert again.returncode == 0, again.stdout + again.stderr
    assert statuses(job) == {"accepted": 300}
    assert _calls(job) == sum(script.counts.values()) == 300
