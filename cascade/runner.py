"""Run a file of tasks through the policies: streamed in, streamed out, nothing lost.

Each line of the input becomes exactly one of: a result line (accepted, exhausted,
budget_exhausted, failed, or quarantined when the task is malformed or no policy serves its
type), or, when it is not even an object with an id, an entry in the quarantine file. Every bad
line is also written to the quarantine file, with its line number and the reason.
"""

from __future__ import annotations

import asyncio
import csv
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from cascade._task_run import quarantined_outcome
from cascade.backends.base import Backend
from cascade.engine import Cascade, default_backend
from cascade.errors import ConfigError, TaskError
from cascade.policy import PolicySet
from cascade.steplog import StepLog
from cascade.store import Store
from cascade.types import Outcome, Task, to_jsonable

__all__ = ["Line", "Runner", "read_lines"]


@dataclass(frozen=True, slots=True)
class Line:
    """One input line: a task, or why it is not one (with whatever could be read of it)."""

    number: int
    task: Task | None
    raw: Any
    problem: str | None = None


def _csv_value(value: str) -> Any:
    stripped = value.strip()
    if stripped[:1] in "[{":
        try:
            return json.loads(stripped)
        except ValueError:
            return value
    return value


def read_lines(path: Path) -> Iterator[Line]:
    """Stream tasks from JSONL, or CSV with a header row; never loads the file whole."""
    handle: IO[str]
    with path.open(encoding="utf-8", newline="" if path.suffix == ".csv" else None) as handle:
        if path.suffix.lower() == ".csv":
            reader = csv.DictReader(handle)
            for row in reader:
                data = {k: _csv_value(v) for k, v in row.items() if k and v not in (None, "")}
                yield _line(reader.line_num, data)
            return
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                data = json.loads(text)
            except ValueError as exc:
                yield Line(number, None, text.rstrip("\n"), f"not valid JSON: {exc}")
                continue
            yield _line(number, data)


def _line(number: int, data: Any) -> Line:
    try:
        return Line(number, Task.from_dict(data), data)
    except TaskError as exc:
        return Line(number, None, data, str(exc))


@dataclass
class Counts:
    """How the lines of the input were dealt with."""

    lines: int = 0
    results: int = 0
    quarantined: int = 0
    duplicates: int = 0


class Runner:
    """Drive the lines of a task file through the cascades of a :class:`PolicySet`."""

    def __init__(
        self,
        policies: PolicySet,
        *,
        store: Store,
        out: IO[str],
        quarantine: IO[str],
        backend: Backend | None = None,
        log: StepLog | bool | None = None,
        run_id: str | None = None,
    ) -> None:
        # One backend for every policy, so that they share its connections and price cache.
        backend = backend if backend is not None else default_backend()
        if not len(policies):
            raise ConfigError("no policies to run")
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self._cascades = {
            # The runner records outcomes itself, to learn whether each was the task's first.
            p.task_type: p.cascade(backend=backend, log=log, run_id=self.run_id)
            for p in policies
        }
        self._policies = policies
        self._store = store
        self._out = out
        self._quarantine = quarantine
        self.counts = Counts()

    async def run(self, lines: Iterator[Line], concurrency: int) -> Counts:
        """Run every line, at most ``concurrency`` tasks at once, writing results as they end."""
        if concurrency < 1:
            raise ConfigError(f"concurrency must be >= 1, got {concurrency}")
        running: set[asyncio.Task[None]] = set()
        for line in lines:
            self.counts.lines += 1
            cascade = self._route(line)
            if cascade is None or line.task is None:
                continue
            running.add(asyncio.ensure_future(self._run_one(cascade, line.task)))
            if len(running) >= concurrency:
                done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for finished in done:
                    finished.result()
        if running:
            for finished in (await asyncio.wait(running))[0]:
                finished.result()
        return self.counts

    def _route(self, line: Line) -> Cascade | None:
        """The cascade for a good line; a bad one is quarantined here and ``None`` returned."""
        if line.task is None:
            self._quarantined(line, line.problem or "not a task")
            return None
        policy = self._policies.for_task(line.task)
        if policy is None:
            served = ", ".join(self._policies.task_types())
            self._quarantined(line, f"no policy serves task type {line.task.type!r} ({served})")
            return None
        return self._cascades[policy.task_type]

    async def _run_one(self, cascade: Cascade, task: Task) -> None:
        outcome = await cascade.arun(task)
        self._write(outcome, task)

    def _quarantined(self, line: Line, reason: str) -> None:
        entry = {"line": line.number, "reason": reason, "raw": line.raw}
        self._quarantine.write(json.dumps(entry, default=to_jsonable) + "\n")
        self._quarantine.flush()
        self.counts.quarantined += 1
        task_id = line.raw.get("id") if isinstance(line.raw, dict) else None
        if isinstance(task_id, str) and task_id:
            outcome = quarantined_outcome(self.run_id, line.raw, f"line {line.number}: {reason}")
            self._write(outcome, None)

    def _write(self, outcome: Outcome, task: Task | None) -> None:
        """Store the outcome and write its result line, once per task id: the first one wins."""
        if not self._store.record(outcome, task):
            self.counts.duplicates += 1
            return
        self._out.write(json.dumps(outcome.to_result(), default=to_jsonable) + "\n")
        self._out.flush()
        self.counts.results += 1
