"""The ledger of one run's tasks in the store: ingest, lease, renew, reclaim, and read back.

A task goes ``pending`` → ``leased`` (by one worker, until a deadline) → ``done``. The model
calls happen outside any transaction; :meth:`cascade.Store.record_many` then writes a task's
steps, its result and its done mark together, with the (run, task) pair as the idempotency key.
A worker that dies leaves leases behind; :meth:`Ledger.reclaim` returns them to ``pending``, and
the next lease counts a second execution, so repeated calls are known and reported.

Input is ingested in batches, each in one transaction that also moves the run's read position
(``runs.lines_read``), so a resumed run reads on from exactly where the last one stopped.

>>> from cascade import Store, Task
>>> with Store(":memory:") as store:
...     store.start_run("r1")
...     ledger = Ledger(store, "r1")
...     ledger.ingest([Entry(1, task=Task("t1", input="x"))], finished=True)
...     [leased.task.id for leased in ledger.lease("worker-1", 10, ttl_s=60)]
0
['t1']
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from cascade.errors import TaskError
from cascade.jsonable import to_jsonable
from cascade.outcome import Outcome, Step
from cascade.secrets import redact
from cascade.store import Store
from cascade.store.rows import (
    ATTEMPT_COLUMNS,
    RESULT_COLUMNS,
    attempt_row,
    result_line,
    task_json,
)
from cascade.types import Task

__all__ = ["Entry", "Leased", "Ledger", "Position", "ResultRow"]


@dataclass(frozen=True, slots=True)
class Entry:
    """One input line to ingest: a task to run, or a quarantined line.

    A quarantined line that carried an id brings its outcome, so that the task gets a result.
    """

    line: int
    task: Task | None = None
    reason: str | None = None
    raw: Any = None
    outcome: Outcome | None = None


@dataclass(frozen=True, slots=True)
class Leased:
    """A task leased to a worker; ``execution`` is 2 or more when an earlier lease was lost."""

    task: Task
    execution: int


@dataclass(frozen=True, slots=True)
class Position:
    """How far a run has read its input, and what came of it."""

    lines_read: int
    duplicates: int
    input_done: bool


@dataclass(frozen=True, slots=True)
class ResultRow:
    """One stored result, as the results file and the progress bar need it."""

    rowid: int
    line: dict[str, Any]
    status: str
    escalated: bool
    executions: int
    task_type: str = ""
    tier: int | None = None
    tiers_tried: int = 1


class Ledger:
    """One run's tasks in a :class:`Store` (see the module docstring)."""

    def __init__(self, store: Store, run_id: str) -> None:
        self.store = store
        self.run_id = run_id

    def count_results(self) -> int:
        """Results the run has stored so far."""
        with self.store.reading() as db:
            row = db.execute("SELECT count(*) FROM results WHERE run_id = ?", (self.run_id,))
            return int(row.fetchone()[0])

    def position(self) -> Position:
        """Where the run's reading of its input stands."""
        with self.store.reading() as db:
            row = db.execute(
                "SELECT lines_read, duplicates, input_done FROM runs WHERE run_id = ?",
                (self.run_id,),
            ).fetchone()
        return Position(0, 0, False) if row is None else Position(row[0], row[1], bool(row[2]))

    def ingest(self, entries: Sequence[Entry], *, finished: bool = False) -> int:
        """Add a batch of input lines in one transaction; returns the repeated task ids.

        A task whose id is already in the run is a duplicate and keeps its first result. A
        quarantined line is stored with its reason, and its outcome recorded when it has an id
        that the run does not hold yet. ``finished`` marks the end of the input.
        """
        now = time.time()
        duplicates = 0
        fresh: list[tuple[Outcome, Task | None]] = []

        def write(db: sqlite3.Connection) -> None:
            nonlocal duplicates
            for entry in entries:
                if entry.task is not None:
                    if not _insert_task(db, self.run_id, entry.task, now, entry.line):
                        duplicates += 1
                        self._duplicate(db, entry.line, entry.task.id)
                    continue
                db.execute(
                    "INSERT INTO quarantine (run_id, line, reason, raw) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT DO NOTHING",
                    (self.run_id, entry.line, redact(entry.reason or ""), _raw_json(entry.raw)),
                )
                if entry.outcome is not None:
                    if self._holds(db, entry.outcome.task_id):
                        duplicates += 1
                        continue
                    # Held from here on, so a later line of this batch with the id is a repeat.
                    db.execute(
                        "INSERT INTO tasks (run_id, task_id, task_type, state, updated_at)"
                        " VALUES (?, ?, ?, 'done', ?)",
                        (self.run_id, entry.outcome.task_id, entry.outcome.task_type, now),
                    )
                    fresh.append((entry.outcome, None))
            db.execute(
                "UPDATE runs SET lines_read = max(lines_read, ?), duplicates = duplicates + ?,"
                " input_done = input_done OR ? WHERE run_id = ?",
                (
                    max((e.line for e in entries), default=0),
                    duplicates,
                    int(finished),
                    self.run_id,
                ),
            )

        self.store.record_many(fresh, also=write)
        return duplicates

    def record(self, done: Sequence[tuple[Outcome, int]]) -> None:
        """Record finished tasks with how many times each was leased.

        Through the one path that records outcomes, :meth:`Store.record_many` (the ledger holds
        each task's payload already).
        """
        self.store.record_many([(outcome, None) for outcome, _ in done], [n for _, n in done])

    def abandon(self, owner: str, partial: Sequence[tuple[str, Sequence[Step]]]) -> None:
        """Give back tasks cut off mid-way (the run was interrupted), keeping the calls they made.

        In one transaction: each task's steps so far are stored (they were paid for, and the
        run's spend counts them) under an execution with no result, and its lease returns to
        ``pending``, so that the next run of the job runs it again.
        """
        width = ATTEMPT_COLUMNS.count(",") + 1
        with self.store.writing() as db:
            for task_id, steps in partial:
                execution = uuid.uuid4().hex
                db.executemany(
                    f"INSERT INTO attempts ({ATTEMPT_COLUMNS}) VALUES ({', '.join('?' * width)})",  # noqa: S608  # constant columns
                    [attempt_row(step, execution) for step in steps],
                )
                db.execute(
                    "UPDATE tasks SET state = 'pending', lease_owner = NULL, lease_expires = NULL"
                    " WHERE run_id = ? AND task_id = ? AND state = 'leased' AND lease_owner = ?",
                    (self.run_id, task_id, owner),
                )

    def add_breaker_trips(self, trips: int) -> None:
        """Count breaker trips of this run (resumes add theirs)."""
        with self.store.writing() as db:
            db.execute(
                "UPDATE runs SET breaker_trips = breaker_trips + ? WHERE run_id = ?",
                (trips, self.run_id),
            )

    def add_audits_skipped(self, skipped: dict[str, tuple[int, float]]) -> None:
        """Count the audits skipped for their cap, per task type, with the cap (resumes add)."""
        if not any(count for count, _ in skipped.values()):
            return
        with self.store.writing() as db:
            row = db.execute(
                "SELECT audits_skipped FROM runs WHERE run_id = ?", (self.run_id,)
            ).fetchone()
            merged: dict[str, list[float]] = json.loads(row[0]) if row is not None else {}
            for task_type, (count, cap) in skipped.items():
                merged[task_type] = [merged.get(task_type, [0, cap])[0] + count, cap]
            db.execute(
                "UPDATE runs SET audits_skipped = ? WHERE run_id = ?",
                (json.dumps(merged), self.run_id),
            )

    def retry_failed(self) -> int:
        """Send the run's ``failed`` tasks back to ``pending``; returns how many.

        Their results go, so that each task keeps one result, but their steps stay: those calls
        were made and paid for, and the run's spend counts them. Their count of executions starts
        over: running them again is asked for, not a repeat after a lost lease.
        """
        with self.store.writing() as db:
            ids = db.execute(
                "DELETE FROM results WHERE run_id = ? AND status = 'failed' RETURNING task_id",
                (self.run_id,),
            ).fetchall()
            db.executemany(
                "UPDATE tasks SET state = 'pending', lease_owner = NULL, lease_expires = NULL,"
                " executions = 0 WHERE run_id = ? AND task_id = ? AND payload IS NOT NULL",
                [(self.run_id, task_id) for (task_id,) in ids],
            )
        return len(ids)

    def _duplicate(self, db: sqlite3.Connection, line: int, task_id: str) -> None:
        """Quarantine a repeated task id, naming the line that holds it first."""
        first = db.execute(
            "SELECT line FROM tasks WHERE run_id = ? AND task_id = ?", (self.run_id, task_id)
        ).fetchone()
        where = f"line {first[0]}" if first and first[0] else "an earlier line"
        reason = f"duplicate id {task_id!r}: first on {where}, which keeps its result"
        db.execute(
            "INSERT INTO quarantine (run_id, line, reason, raw) VALUES (?, ?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            (self.run_id, line, redact(reason), json.dumps({"id": task_id})),
        )

    def _holds(self, db: sqlite3.Connection, task_id: str) -> bool:
        found = db.execute(
            "SELECT 1 FROM tasks WHERE run_id = ? AND task_id = ?", (self.run_id, task_id)
        ).fetchone()
        return found is not None

    def lease(self, owner: str, limit: int, *, ttl_s: float) -> list[Leased]:
        """Lease up to ``limit`` pending tasks to ``owner`` until ``ttl_s`` from now."""
        now = time.time()
        with self.store.writing() as db:
            rows = db.execute(
                "UPDATE tasks SET state = 'leased', lease_owner = ?, lease_expires = ?,"
                " executions = executions + 1, updated_at = ?"
                " WHERE rowid IN (SELECT rowid FROM tasks WHERE run_id = ? AND state = 'pending'"
                " ORDER BY rowid LIMIT ?) RETURNING payload, executions",
                (owner, now + ttl_s, now, self.run_id, limit),
            ).fetchall()
        return [Leased(_task(payload), executions) for payload, executions in rows]

    def renew(self, owner: str, *, ttl_s: float) -> int:
        """Push back the deadline of every lease ``owner`` holds; returns how many."""
        with self.store.writing() as db:
            return db.execute(
                "UPDATE tasks SET lease_expires = ? WHERE run_id = ? AND state = 'leased'"
                " AND lease_owner = ?",
                (time.time() + ttl_s, self.run_id, owner),
            ).rowcount

    def release(self, owner: str) -> int:
        """Give back ``owner``'s leases (leased but never started); returns how many."""
        return self._reclaim("lease_owner = ?", (owner,))

    def reclaim(self, *, alive: Collection[str] = ()) -> int:
        """Return expired leases, and leases of owners not in ``alive``, to ``pending``.

        At the start of a run no worker is alive yet, so every lease left by a crash is
        reclaimed at once; later, only the leases of workers that died or stalled.
        """
        marks = ", ".join("?" * len(alive))
        dead = f"lease_owner NOT IN ({marks})" if alive else "1"
        return self._reclaim(f"(lease_expires < ? OR {dead})", (time.time(), *alive))

    def _reclaim(self, condition: str, params: tuple[Any, ...]) -> int:
        # The conditions are our own constants; only their parameters come from outside.
        sql = "UPDATE tasks SET state = 'pending', lease_owner = NULL, lease_expires = NULL"
        sql += " WHERE run_id = ? AND state = 'leased' AND " + condition
        with self.store.writing() as db:
            return db.execute(sql, (self.run_id, *params)).rowcount

    def unfinished(self) -> int:
        """Tasks ingested but not done: pending or leased."""
        with self.store.reading() as db:
            return int(
                db.execute(
                    "SELECT count(*) FROM tasks"
                    " WHERE run_id = ? AND state IN ('pending', 'leased')",  # through the index
                    (self.run_id,),
                ).fetchone()[0]
            )

    def spent(self, after_seq: int = 0) -> tuple[float, int]:
        """The cost of the run's calls after step ``after_seq``, and the last step's number."""
        with self.store.reading() as db:
            cost, last = db.execute(
                # "+run_id": walk the rowid range, not every step of the run through its index.
                "SELECT total(cost_usd), max(seq) FROM attempts WHERE seq > ? AND +run_id = ?",
                (after_seq, self.run_id),
            ).fetchone()
        return float(cost), int(last or after_seq)

    def results_after(self, rowid: int, limit: int = 2000) -> list[ResultRow]:
        """Results written after ``rowid``, in the order they were written."""
        with self.store.reading() as db:
            rows = db.execute(
                f"SELECT rowid, {RESULT_COLUMNS} FROM results"  # noqa: S608  # constant columns
                " WHERE rowid > ? AND +run_id = ? ORDER BY rowid LIMIT ?",
                (rowid, self.run_id, limit),
            ).fetchall()
        return [
            ResultRow(
                rowid=row[0],
                line=result_line(row[1:]),
                status=row[5],
                escalated=row[17] > 1,
                executions=row[16],
                task_type=row[4],
                tier=row[8],
                tiers_tried=row[17],
            )
            for row in rows
        ]

    def quarantine_after(self, rowid: int, limit: int = 2000) -> Iterator[tuple[int, str]]:
        """Quarantined lines written after ``rowid``, as quarantine-file lines."""
        with self.store.reading() as db:
            rows = db.execute(
                "SELECT rowid, line, reason, raw FROM quarantine WHERE rowid > ? AND +run_id = ?"
                " ORDER BY rowid LIMIT ?",
                (rowid, self.run_id, limit),
            ).fetchall()
        for row_id, line, reason, raw in rows:
            entry = {"line": line, "reason": reason, "raw": json.loads(raw)}
            yield row_id, json.dumps(entry, default=to_jsonable)


def _insert_task(db: sqlite3.Connection, run_id: str, task: Task, now: float, line: int) -> int:
    return db.execute(
        "INSERT INTO tasks (run_id, task_id, task_type, payload, state, updated_at, line)"
        " VALUES (?, ?, ?, ?, 'pending', ?, ?) ON CONFLICT (run_id, task_id) DO NOTHING",
        (run_id, task.id, task.type, task_json(task), now, line),
    ).rowcount


def _raw_json(raw: Any) -> str:
    try:
        return json.dumps(raw, default=to_jsonable)
    except (TypeError, ValueError):
        return json.dumps(repr(raw))


def _task(payload: str) -> Task:
    data = {k: v for k, v in json.loads(payload).items() if v is not None}
    try:
        return Task.from_dict(data)
    except TaskError as exc:  # written by us from a valid task: a corrupt store
        raise TaskError(f"the store holds a task it cannot read back: {exc}") from exc
