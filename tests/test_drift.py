"""Drift alarms, tested with a real shift: a cheap model that starts answering wrong mid-run.

Each run is the runner in this process with a scripted backend: the cheap tier's answer to a
task is right with a probability drawn from the task's id and a seed, 90 % before the shift and
50 % after it; a wrong answer is rejected and climbs to the dear tier. The alarm on the cheap
tier's acceptance rate must fire within 60 tasks of the shift, and never in 20 runs without one.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from pathlib import Path
from typing import Any

import pytest

from cascade.audit.drift import DriftPlan, DriftWatch
from cascade.backends import ScriptedBackend
from cascade.cli import main
from cascade.policy import load_policies
from cascade.run.job import Job
from cascade.run.runner import Runner
from cascade.run.tasks_file import read_lines
from cascade.steplog import StepLog
from cascade.store import Store
from cascade.store.alarms import DriftAlarms, Escalated
from cascade.types import Request
from tests.helpers import assert_policy_refused

POLICY = """\
task_type = "echo"
[[tiers]]
model = "cheap"
retries = 0
price = {{ input_usd_per_mtok = 1.0, output_usd_per_mtok = 1.0 }}
[[tiers]]
model = "dear"
retries = 0
price = {{ input_usd_per_mtok = 10.0, output_usd_per_mtok = 10.0 }}
[[validators]]
kind = "one_of"
labels = ["ok", "xx"]
[[validators]]
kind = "matches"
pattern = "^o"
[drift]
window = {window}
baseline = {baseline}
check_every = 5
false_alarm = 0.001
on_drift = "{on_drift}"
"""

TASKS = 400
SHIFT = 250


def cheap(seed: int, shift: int | None, pause_s: float = 0.0, reasons: bool = False) -> Any:
    """The cheap model: right ("ok") at 90 %, or 50 % for tasks from ``shift`` on.

    With ``reasons``, it stays right at 50 %, but its wrong answers change at ``shift`` from
    "oh" (which the label check rejects) to "xx" (which the format check rejects).
    """

    def reply(request: Request) -> str:
        time.sleep(pause_s)  # a run that lasts long enough for an escalation to be seen
        number = int(request.task_id[1:])
        late = shift is not None and number >= shift
        chance = 0.5 if late or reasons else 0.9
        draw = random.Random(f"{seed}:{request.task_id}").random()  # noqa: S311  # a test's dice
        if draw < chance:
            return "ok"
        return "xx" if late and reasons else "oh"

    return reply


def run(
    tmp_path: Path,
    seed: int,
    shift: int | None,
    on_drift: str = "warn",
    pause_s: float = 0.0,
    reasons: bool = False,
    typed: bool = True,
) -> Path:
    """One run of 400 tasks, one at a time (so results come in task order).

    With ``typed`` false the tasks carry no type: the one policy file serves them.
    """
    sizes = {"window": 40, "baseline": 60} if reasons else {"window": 50, "baseline": 150}
    (tmp_path / "p.toml").write_text(POLICY.format(on_drift=on_drift, **sizes))
    tasks = tmp_path / "tasks.jsonl"
    kind = {"type": "echo"} if typed else {}
    tasks.write_text("".join(json.dumps({"id": f"t{n}", **kind, "input": f"q{n}"}) + "\n"
                             for n in range(TASKS)))  # fmt: skip
    replies = cheap(seed, shift, pause_s, reasons)
    backend = ScriptedBackend({"cheap": replies, "dear": lambda _r: "ok"})
    with (
        Store(tmp_path / "run.db") as store,
        (tmp_path / "out.jsonl").open("w") as out,
        (tmp_path / "bad.jsonl").open("w") as bad,
        (tmp_path / "steps.jsonl").open("w") as steps,
    ):
        job = Job(str(tasks), str(tmp_path / "p.toml"), concurrency=1, workers=1)
        runner = Runner(job, load_policies(tmp_path / "p.toml"), store, backend=backend,
                        log=StepLog(steps))  # fmt: skip
        asyncio.run(runner.run(read_lines(tasks), out, bad))
    return tmp_path


def drift_events(job: Path) -> list[dict[str, Any]]:
    """The ``cascade.drift`` events of the run."""
    lines = (job / "steps.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e.get("event") == "cascade.drift"]


def test_a_shift_raises_the_alarm_within_60_tasks(tmp_path: Path) -> None:
    """90 % → 50 % at task 250: one acceptance alarm on tier 0, by task 310."""
    job = run(tmp_path, seed=1, shift=SHIFT)
    (event,) = drift_events(job)
    assert (event["task_type"], event["tier"], event["signal"]) == ("echo", 0, "acceptance")
    assert SHIFT < event["observed"] <= SHIFT + 60
    assert event["baseline"] > 0.8
    assert event["window"] < 0.75
    with Store(job / "run.db") as store:
        (alarm,) = DriftAlarms(store).of_run(None)
    assert "echo tier 0 acceptance fell" in alarm["text"]


def test_untyped_tasks_served_by_one_policy_file_are_watched(tmp_path: Path) -> None:
    """Tasks with no type are of the policy's type: the same shift raises the same alarm."""
    job = run(tmp_path, seed=1, shift=SHIFT, typed=False)
    (event,) = drift_events(job)
    assert (event["task_type"], event["tier"], event["signal"]) == ("echo", 0, "acceptance")
    assert SHIFT < event["observed"] <= SHIFT + 60


def test_a_change_of_escalation_reasons_raises_the_alarm(tmp_path: Path) -> None:
    """As many escalations, for another check's rejections: an escalation-reason alarm only.

    Half the cheap answers are wrong throughout (a baseline of 60 escalations, a window of 40).
    """
    events = drift_events(run(tmp_path, seed=1, shift=SHIFT, reasons=True))
    assert [e["signal"] for e in events] == ["escalation:matches('^o')"]
    assert events[0]["tier"] == 0


@pytest.mark.parametrize("seed", range(20))
def test_no_alarm_without_a_shift(tmp_path: Path, seed: int) -> None:
    """20 runs at a steady 90 %: no alarm (each check errs at most 0.1 % of the time)."""
    assert drift_events(run(tmp_path, seed=seed, shift=None)) == []


def test_escalate_starts_the_type_one_tier_higher_until_cleared(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """on_drift = "escalate": after the alarm, tasks start at the dear tier until cleared.

    The escalation is kept in the store, so the next run of it starts there too, until
    ``cascade drift clear``.
    """
    job = run(tmp_path, seed=1, shift=SHIFT, on_drift="escalate", pause_s=0.02)
    (event,) = drift_events(job)
    results = [json.loads(line) for line in (job / "out.jsonl").read_text().splitlines()]
    by_id = {r["id"]: r for r in results}
    # seen by the runner within its 0.1 s tail, by the workers within 0.1 s: 40 tasks take 0.8 s
    late = [by_id[f"t{n}"] for n in range(event["observed"] + 40, TASKS)]
    assert len(late) > 50
    assert all(r["tier"] == 1 and r["attempts"] == 1 for r in late)  # never asked the cheap one
    assert main(["drift", "list", str(job / "run.db")]) == 0
    assert "active" in capsys.readouterr().out
    assert main(["report", str(job / "run.db")]) == 0
    assert "now starts one tier higher until cascade drift clear" in capsys.readouterr().out
    with Store(job / "run.db") as store:
        assert Escalated(store)() == {"echo"}  # what the next run's workers read
    assert main(["drift", "clear", str(job / "run.db"), "--type", "echo"]) == 0
    assert "cleared 1 drift alarm of task type echo" in capsys.readouterr().out
    with Store(job / "run.db") as store:
        assert DriftAlarms(store).escalated() == set()


def test_a_calibrated_baseline_alarms_without_waiting_for_one() -> None:
    """With the policy's calibrated rate, the window is tested against it from the start.

    A window of 40 (not 20): 10 of 20 against a calibrated 90 % has p ≈ 7e-6, above a check's
    share (2.5e-6) of a 0.1 % rate per run; 20 of 40 has p ≈ 1e-10.
    """
    watch = DriftWatch({"echo": DriftPlan(window=40, baseline=500, check_every=5,
                                          acceptance=(0.9,))})  # fmt: skip
    alarms = [watch.result("echo", "accepted" if n % 2 else "escalated", 0 if n % 2 else 1,
                           1 if n % 2 else 2) for n in range(80)]  # fmt: skip
    fired = [n for n, found in enumerate(alarms) if found]
    assert fired == [39]  # long before a 500-task baseline could have been measured


def test_rising_disagreement_raises_an_alarm() -> None:
    """Audits that start disagreeing raise the disagreement alarm."""
    watch = DriftWatch({"echo": DriftPlan(window=40, baseline=80, check_every=5)})
    rng = random.Random(0)  # noqa: S311  # a test's dice
    fired = [n for n in range(300)
             if watch.audit("echo", 0, rng.random() < (0.05 if n < 150 else 0.4))]  # fmt: skip
    assert len(fired) == 1
    assert 150 < fired[0] <= 200


@pytest.mark.parametrize(
    ("body", "line", "field"),
    [
        ('[[tiers]]\nmodel = "a"\n[drift]\nfalse_alarm = 0.7\n', 5, "drift.false_alarm"),
        ('[[tiers]]\nmodel = "a"\n[drift]\non_drift = "panic"\n', 5, "drift.on_drift"),
        ('[[tiers]]\nmodel = "a"\n[drift]\nwindow = 3\n', 5, "drift.window"),
    ],
)
def test_bad_drift_settings_name_file_line_and_field(
    tmp_path: Path, body: str, line: int, field: str
) -> None:
    """A false-alarm rate of 0.5 or more, an unknown on_drift, a tiny window: file:line."""
    assert_policy_refused(tmp_path, body, line, field)
