"""The run store: SQLite in WAL mode, holding runs, tasks, attempts and results.

The schema serves the engine, the batch runner, reports and benchmarks alike:

- ``runs``: one row per run, with its configuration.
- ``tasks``: the ledger of a run's tasks (``pending`` → ``leased`` with a deadline → ``done``).
- ``attempts``: every step, only ever appended (triggers refuse updates and deletes). A task
  that had to be run again after a crash appends a second ``execution_id``, so repeated calls
  stay visible and priced.
- ``results``: one row per (run, task): that pair is the idempotency key, so a result can never
  be written twice.

An outcome's attempts, its result and its done mark are written in one transaction.

>>> with Store(":memory:") as store:
...     store.start_run("r1")
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from cascade.types import CallKind, Decision, Outcome, Status, Step, Task, Verdict, to_jsonable

__all__ = ["SCHEMA_VERSION", "Store"]

SCHEMA_VERSION = 1
_BUSY_TIMEOUT_S = 30.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id       TEXT PRIMARY KEY,
    created_at   REAL NOT NULL,
    finished_at  REAL,
    config       TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS tasks (
    run_id         TEXT NOT NULL REFERENCES runs(run_id),
    task_id        TEXT NOT NULL,
    task_type      TEXT NOT NULL,
    payload        TEXT,
    state          TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'leased', 'done')),
    lease_owner    TEXT,
    lease_expires  REAL,
    updated_at     REAL NOT NULL,
    PRIMARY KEY (run_id, task_id)
);
CREATE TABLE IF NOT EXISTS attempts (
    seq                INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id             TEXT NOT NULL,
    task_id            TEXT NOT NULL,
    execution_id       TEXT NOT NULL,
    task_type          TEXT NOT NULL,
    step               INTEGER NOT NULL,
    tier               INTEGER NOT NULL,
    model_requested    TEXT NOT NULL,
    model_served       TEXT,
    kind               TEXT NOT NULL,
    prompt_tokens      INTEGER NOT NULL,
    completion_tokens  INTEGER NOT NULL,
    cost_usd           REAL NOT NULL,
    latency_s          REAL NOT NULL,
    verdicts           TEXT NOT NULL,
    decision           TEXT NOT NULL,
    error              TEXT,
    output             TEXT,
    ts                 REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS attempts_by_task ON attempts (run_id, task_id, seq);
CREATE TRIGGER IF NOT EXISTS attempts_no_update BEFORE UPDATE ON attempts
    BEGIN SELECT RAISE(ABORT, 'attempts are append-only'); END;
CREATE TRIGGER IF NOT EXISTS attempts_no_delete BEFORE DELETE ON attempts
    BEGIN SELECT RAISE(ABORT, 'attempts are append-only'); END;
CREATE TABLE IF NOT EXISTS results (
    run_id        TEXT NOT NULL,
    task_id       TEXT NOT NULL,
    execution_id  TEXT NOT NULL,
    task_type     TEXT NOT NULL,
    status        TEXT NOT NULL,
    output        TEXT,
    parsed        TEXT,
    tier          INTEGER,
    model         TEXT,
    attempts      INTEGER NOT NULL,
    cost_usd      REAL NOT NULL,
    latency_s     REAL NOT NULL,
    reasons       TEXT NOT NULL,
    best_step     INTEGER,
    created_at    REAL NOT NULL,
    PRIMARY KEY (run_id, task_id)
);
"""

_ATTEMPT_COLUMNS = (
    "run_id, task_id, execution_id, task_type, step, tier, model_requested, model_served, kind,"
    " prompt_tokens, completion_tokens, cost_usd, latency_s, verdicts, decision, error, output, ts"
)


class Store:
    """A run store in one SQLite file. Safe to share between threads and asyncio tasks.

    Several processes may open the same file: WAL mode lets readers run beside the one writer,
    and writers wait for each other (``busy_timeout``) instead of failing.
    """

    def __init__(self, path: str | Path, *, synchronous: str = "NORMAL") -> None:
        if synchronous not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise ValueError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, not {synchronous!r}")
        self.path = str(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute(f"PRAGMA busy_timeout = {int(_BUSY_TIMEOUT_S * 1000)}")
        _enable_wal(self._db)
        self._db.execute(f"PRAGMA synchronous = {synchronous}")
        with self._lock:
            # executescript commits any open transaction first, so the script carries its own.
            self._db.executescript(
                f"BEGIN IMMEDIATE; {_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            )

    def __repr__(self) -> str:
        return f"Store({self.path!r})"

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    def start_run(self, run_id: str, config: Mapping[str, Any] | None = None) -> None:
        """Register a run; starting an existing run again keeps its first configuration."""
        with self._lock, self._transaction():
            self._db.execute(
                "INSERT INTO runs (run_id, created_at, config) VALUES (?, ?, ?)"
                " ON CONFLICT (run_id) DO NOTHING",
                (run_id, time.time(), json.dumps(dict(config or {}), default=str)),
            )

    def finish_run(self, run_id: str) -> None:
        """Mark a run finished."""
        with self._lock, self._transaction():
            self._db.execute(
                "UPDATE runs SET finished_at = ? WHERE run_id = ?", (time.time(), run_id)
            )

    def record(self, outcome: Outcome, task: Task | None = None) -> bool:
        """Append the outcome's steps and write its result, in one transaction.

        Returns ``False`` when the (run, task) already had a result: the steps are still
        appended, since they were real (and paid for) calls, but the result is not written twice.
        """
        execution_id = uuid.uuid4().hex
        now = time.time()
        payload = None if task is None else _task_json(task)
        with self._lock, self._transaction():
            self._db.execute(
                "INSERT INTO runs (run_id, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (outcome.run_id, now),
            )
            self._db.executemany(
                f"INSERT INTO attempts ({_ATTEMPT_COLUMNS}) VALUES ({', '.join('?' * 18)})",  # noqa: S608  # constant columns
                [_attempt_row(step, execution_id) for step in outcome.steps],
            )
            written = self._db.execute(
                "INSERT INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (run_id, task_id) DO NOTHING",
                _result_row(outcome, execution_id, now),
            ).rowcount
            self._db.execute(
                "INSERT INTO tasks (run_id, task_id, task_type, payload, state, updated_at)"
                " VALUES (?, ?, ?, ?, 'done', ?) ON CONFLICT (run_id, task_id) DO UPDATE"
                " SET state = 'done', lease_owner = NULL, lease_expires = NULL,"
                " updated_at = excluded.updated_at, payload = coalesce(payload, excluded.payload)",
                (outcome.run_id, outcome.task_id, outcome.task_type, payload, now),
            )
        return written == 1

    def steps(self, run_id: str, task_id: str) -> list[Step]:
        """Every step recorded for a task, in the order they were appended."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_ATTEMPT_COLUMNS} FROM attempts WHERE run_id = ? AND task_id = ?"  # noqa: S608  # constant columns
                " ORDER BY seq",
                (run_id, task_id),
            ).fetchall()
        return [_step_from_row(row) for row in rows]

    def outcome(self, run_id: str, task_id: str) -> Outcome | None:
        """The recorded outcome of a task, with the steps of the execution that wrote it."""
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM results WHERE run_id = ? AND task_id = ?", (run_id, task_id)
            ).fetchone()
            if row is None:
                return None
            steps = self._db.execute(
                f"SELECT {_ATTEMPT_COLUMNS} FROM attempts WHERE execution_id = ? ORDER BY seq",  # noqa: S608  # constant columns
                (row[2],),
            ).fetchall()
        return _outcome_from_row(row, tuple(_step_from_row(s) for s in steps))

    def results(self, run_id: str) -> Iterator[dict[str, Any]]:
        """The run's results as result-file lines, in the order they were written."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM results WHERE run_id = ? ORDER BY created_at, rowid", (run_id,)
            ).fetchall()
        for row in rows:
            yield _outcome_from_row(row, ()).to_result() | {"attempts": row[9]}

    def select(self, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
        """Rows of a read-only query, for reports over the store, fetched in batches."""
        if not sql.lstrip().upper().startswith(("SELECT", "WITH")):
            raise ValueError("select() runs queries only")
        with self._lock:
            cursor = self._db.execute(sql, tuple(params))
        while True:
            with self._lock:
                batch = cursor.fetchmany(1000)
            if not batch:
                return
            yield from batch

    def count(self, table: str) -> int:
        """The number of rows in one of the store's tables."""
        if table not in {"runs", "tasks", "attempts", "results"}:
            raise ValueError(f"no table {table!r}")
        with self._lock:
            return int(self._db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608

    def integrity_check(self) -> str:
        """SQLite's own consistency check: ``"ok"`` when the file is sound."""
        with self._lock:
            return str(self._db.execute("PRAGMA integrity_check").fetchone()[0])


def _enable_wal(db: sqlite3.Connection) -> None:
    """Switch the file to WAL mode, waiting out other connections doing the same.

    WAL mode is stored in the file, so this only does work once. Changing the journal mode
    fails at once with "database is locked" when another connection holds the file, without
    consulting ``busy_timeout``, so the switch is retried here for as long as that timeout.
    """
    deadline = time.monotonic() + _BUSY_TIMEOUT_S
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL")
            return  # "wal", or "memory" for an in-memory database, which has no WAL
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
        if time.monotonic() > deadline:
            raise sqlite3.OperationalError(f"could not switch {db} to WAL mode: database is locked")
        time.sleep(0.01)


class _Transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, or ``ROLLBACK`` on error."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._db.execute("ROLLBACK" if kind else "COMMIT")


def _task_json(task: Task) -> str:
    return json.dumps(
        {
            "id": task.id,
            "type": task.type,
            "input": task.input,
            "messages": None if task.messages is None else [dict(m) for m in task.messages],
            "meta": dict(task.meta),
            **dict(task.extra),
        },
        default=str,
    )


def _verdicts_json(verdicts: tuple[Verdict, ...]) -> str:
    return json.dumps(
        [
            {
                "validator": v.validator,
                "passed": v.passed,
                "reason": v.reason,
                "feedback": v.feedback,
                "score": v.score,
                "fault": v.fault,
            }
            for v in verdicts
        ]
    )


def _attempt_row(step: Step, execution_id: str) -> tuple[Any, ...]:
    return (
        step.run_id, step.task_id, execution_id, step.task_type, step.step, step.tier,
        step.model_requested, step.model_served, str(step.kind), step.prompt_tokens,
        step.completion_tokens, step.cost_usd, step.latency_s, _verdicts_json(step.verdicts),
        str(step.decision), step.error, step.output, step.ts,
    )  # fmt: skip


def _step_from_row(row: tuple[Any, ...]) -> Step:
    verdicts = tuple(Verdict(**v) for v in json.loads(row[13]))
    return Step(
        run_id=row[0], task_id=row[1], task_type=row[3], step=row[4], tier=row[5],
        model_requested=row[6], model_served=row[7], kind=CallKind(row[8]),
        prompt_tokens=row[9], completion_tokens=row[10], cost_usd=row[11], latency_s=row[12],
        verdicts=verdicts, decision=Decision(row[14]), error=row[15], output=row[16], ts=row[17],
    )  # fmt: skip


def _result_row(outcome: Outcome, execution_id: str, now: float) -> tuple[Any, ...]:
    return (
        outcome.run_id, outcome.task_id, execution_id, outcome.task_type, str(outcome.status),
        outcome.output, json.dumps(outcome.parsed, default=to_jsonable),
        outcome.tier, outcome.model,
        len(outcome.steps), outcome.cost_usd, outcome.latency_s, json.dumps(list(outcome.reasons)),
        outcome.best_step, now,
    )  # fmt: skip


def _outcome_from_row(row: tuple[Any, ...], steps: tuple[Step, ...]) -> Outcome:
    return Outcome(
        run_id=row[0], task_id=row[1], task_type=row[3], status=Status(row[4]), output=row[5],
        parsed=json.loads(row[6]) if row[6] is not None else None, tier=row[7], model=row[8],
        steps=steps, cost_usd=row[10], latency_s=row[11], reasons=tuple(json.loads(row[12])),
        best_step=row[13],
    )  # fmt: skip
