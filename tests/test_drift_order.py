"""Drift alarms watch results in the order their tasks arrived, not the order they finished.

A run with 8 tasks at a time, whose escalated tasks take 20 times as long as the others: their
results are written late, and a baseline of the first results written would read high.
"""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Any

import pytest

from cascade.audit.drift import Alarm, DriftWatch
from cascade.backends import Reply, ScriptedBackend
from cascade.outcome import Outcome
from cascade.policy import load_policies
from cascade.run.job import Job
from cascade.run.runner import Runner
from cascade.run.tasks_file import read_lines
from cascade.store import Store
from cascade.store.alarms import Arrivals
from cascade.store.ledger import Entry, Ledger
from cascade.types import Request, Task
from tests.test_drift import POLICY

TASKS = 120


def cheap(request: Request) -> Reply:
    """Right ("ok") for 80 % of the tasks, drawn from the task's id; quick either way."""
    draw = random.Random(request.task_id).random()  # noqa: S311  # a test's dice
    return Reply("ok" if draw < 0.8 else "oh", latency_s=0.005)


def test_results_are_watched_in_arrival_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every result reaches the watch once, in the tasks file's order, not the finishing one."""
    watched: list[tuple[str, str, int | None]] = []
    result = DriftWatch.result

    def spy(
        self: DriftWatch, task_type: str, status: str, tier: int | None, tiers_tried: int
    ) -> list[Alarm]:
        watched.append((task_type, status, tier))
        return result(self, task_type, status, tier, tiers_tried)

    monkeypatch.setattr(DriftWatch, "result", spy)
    (tmp_path / "p.toml").write_text(POLICY.format(window=50, baseline=60, on_drift="warn"))
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text("".join(json.dumps({"id": f"t{n}", "type": "echo", "input": f"q{n}"}) + "\n"
                             for n in range(TASKS)))  # fmt: skip
    backend = ScriptedBackend({"cheap": cheap, "dear": lambda _r: Reply("ok", latency_s=0.1)})
    with (
        Store(tmp_path / "run.db") as store,
        (tmp_path / "out.jsonl").open("w") as out,
        (tmp_path / "bad.jsonl").open("w") as bad,
    ):
        job = Job(str(tasks), str(tmp_path / "p.toml"), concurrency=8, workers=1)
        runner = Runner(job, load_policies(tmp_path / "p.toml"), store, backend=backend)
        asyncio.run(runner.run(read_lines(tasks), out, bad))
    written: list[dict[str, Any]] = [json.loads(line) for line in
                                     (tmp_path / "out.jsonl").read_text().splitlines()]  # fmt: skip
    arrived = sorted(written, key=lambda r: int(r["id"][1:]))
    assert written != arrived  # the run did finish them out of order
    assert watched == [("echo", r["status"], r["tier"]) for r in arrived]


def test_a_result_not_yet_read_holds_back_later_arrivals() -> None:
    """A task whose result was written after the rows read is still unsettled."""
    with Store(":memory:") as store:
        store.start_run("r1")
        ledger = Ledger(store, "r1")
        ledger.ingest([Entry(n, task=Task(f"t{n}", input="x")) for n in (1, 2, 3)], finished=True)
        ledger.lease("w", 10, ttl_s=60)
        arrivals = Arrivals(store, "r1")
        assert arrivals.of(0, 0) == ({}, 1)  # t1, leased, arrived first
        ledger.record([(Outcome.quarantined("r1", {"id": "t2"}, "x"), 1)])
        (second,) = ledger.results_after(0)
        assert arrivals.of(0, second.rowid) == ({second.rowid: 2}, 1)
        ledger.record([(Outcome.quarantined("r1", {"id": f"t{n}"}, "x"), 1) for n in (1, 3)])
        assert arrivals.of(0, second.rowid)[1] == 1  # t1's result is not among those read
        last = ledger.results_after(second.rowid)[-1].rowid
        assert arrivals.of(second.rowid, last) == ({second.rowid + 1: 1, last: 3}, None)
