"""During a provider outage the run says so while tasks wait, and says when it is over.

The coordinator reads, from the run's shared guard, since when each model's calls have failed
with no answer since; once that is a quarter of ``--max-outage-s`` (10 s at most), the progress
line carries "MODEL unreachable for N s (tasks wait up to M s)", and the step log gets a
``cascade.outage`` event, then another when the model answers again.
"""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path
from typing import Any

from cascade.run.guard import Guard
from cascade.run.outages import OutageWatch
from cascade.run.progress import Progress, Tally
from cascade.testing import FakeReply
from tests.test_run_trouble import Script, cascade_run, serve, statuses, write_job

__all__ = ["serve"]  # the fake provider's fixture, used by name

OUTAGE_S = 5.0


class DownFor:
    """The fake provider answers 503 for ``seconds`` from its first request, then "ok"."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._lock = threading.Lock()
        self._first: float | None = None

    def __call__(self, _model: str, _n: int) -> FakeReply:
        with self._lock:
            self._first = self._first if self._first is not None else time.monotonic()
        if time.monotonic() - self._first < self._seconds:
            return FakeReply(status=503)
        return FakeReply("ok")


def test_an_outage_is_told_in_the_step_log_while_tasks_wait_and_when_it_is_over(
    tmp_path: Path, serve: Any
) -> None:
    """A 5 s outage with a 12 s bound: 'unreachable' after 3 s, then 'recovered'; all accepted."""
    job = write_job(tmp_path, serve(Script(DownFor(OUTAGE_S))), 4)
    run = cascade_run(job, "--max-outage-s", "12", "--concurrency", "2")
    assert run.returncode == 0, run.stdout + run.stderr
    assert statuses(job) == {"accepted": 4}
    log = [json.loads(x) for x in (job / "results.steps.jsonl").read_text().splitlines()]
    told = [e for e in log if e.get("event") == "cascade.outage"]
    assert [(e["what"], e["model"]) for e in told] == [
        ("unreachable", "openai/cheap-model"),
        ("recovered", "openai/cheap-model"),
    ]
    assert 3.0 < told[0]["failing_s"] < OUTAGE_S + 1
    assert told[0]["max_outage_s"] == 12


def test_the_progress_line_carries_the_outage_until_the_model_answers_again() -> None:
    """The hint shows once a model fails past the threshold, and goes once it answers."""
    now = [100.0]
    guard = Guard(keys=["openai/m"], clock=lambda: now[0])
    watch = OutageWatch(guard, 40.0)
    guard.failed("openai/m")
    now[0] += 5.0
    assert watch.check() == ""  # under a quarter of the bound: a blip, not an outage
    now[0] += 35.0
    hint = watch.check()
    assert hint == "openai/m unreachable for 40 s (tasks wait up to 40 s)"
    out = io.StringIO()
    Progress(total=4, stream=out, interval_s=0.0).update(Tally(done=1, trouble=hint))
    assert out.getvalue().rstrip().endswith("; " + hint)
    guard.succeeded("openai/m")
    assert watch.check() == ""
