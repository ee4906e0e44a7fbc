"""Worker processes stop when their coordinator dies, however it dies.

Workers are forked from a fork server, so the coordinator is not their parent: they read its
death from a pipe only it holds open. Here the coordinator of a ``--workers 2`` run is killed
with SIGKILL (no handler runs): the workers must stop calling the provider within their grace
period, and a rerun of the same command then asks again only what was in flight.
"""

from __future__ import annotations

import gc
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from cascade.cli import main
from cascade.testing import FakeReply
from tests.test_run_trouble import (
    Script,
    _start,
    _wait_for,
    all_ok,
    cascade_run,
    serve,
    statuses,
    write_job,
)

__all__ = ["serve"]  # the fake provider's fixture, used by name

TASKS = 300


def _quiet(script: Script, *, still_s: float, within_s: float) -> int:
    """Wait until no request has come for ``still_s``; the requests by then."""
    deadline = time.monotonic() + within_s
    seen, since = sum(script.counts.values()), time.monotonic()
    while time.monotonic() - since < still_s:
        assert time.monotonic() < deadline, f"requests still coming: {script.counts}"
        time.sleep(0.1)
        now = sum(script.counts.values())
        if now != seen:
            seen, since = now, time.monotonic()
    return seen


def test_workers_stop_when_their_coordinator_is_killed(
    tmp_path: Path, serve: Callable[[Script], str]
) -> None:
    script = Script(lambda _m, _n: FakeReply("ok", delay_s=0.2))
    job = write_job(tmp_path, serve(script), TASKS, timeout_s=60)  # see write_job
    coordinator = _start(job, "--workers", "2", "--grace", "1")
    _wait_for(script, 40)
    os.kill(coordinator.pid, signal.SIGKILL)
    coordinator.communicate(timeout=30)
    stopped = _quiet(script, still_s=3.0, within_s=20.0)
    assert stopped < TASKS  # the workers stopped; they did not finish the job on their own
    again = cascade_run(job, "--workers", "2")
    assert again.returncode == 0, again.stdout + again.stderr
    assert statuses(job) == {"accepted": TASKS}
    # Asked twice: at most the calls in flight when the coordinator died (2 workers x 8).
    assert sum(script.counts.values()) - TASKS <= 16


def test_a_program_calling_main_keeps_its_heap_unfrozen(
    tmp_path: Path, serve: Callable[[Script], str]
) -> None:
    """``cascade run`` freezes its own process's heap, not that of a program calling main()."""
    job = write_job(tmp_path, serve(Script(all_ok)), 20)
    code = main(["run", str(job / "tasks.jsonl"), "--policy", str(job / "policy.toml"),
                 "--store", str(job / "run.db"), "--out", str(job / "out.jsonl"),
                 "--workers", "1", "--no-progress"])  # fmt: skip
    assert code == 0
    assert gc.get_freeze_count() == 0
