"""The run store: SQLite in WAL mode, holding runs, tasks, attempts and results.

The schema serves the engine, the batch runner, reports and benchmarks alike:

- ``runs``: one row per run, with its configuration and how far its input has been read.
- ``tasks``: the ledger of a run's tasks (``pending`` → ``leased`` with a deadline → ``done``),
  with how many times each was leased: a task leased twice was called twice.
- ``attempts``: every step, only ever appended (triggers refuse updates and deletes). A task
  that had to be run again after a crash appends a second ``execution_id``, so repeated calls
  stay visible and priced.
- ``results``: one row per (run, task): that pair is the idempotency key, so a result can never
  be written twice.
- ``quarantine``: the input lines of a run that were not tasks, with their line and reason.

An outcome's attempts, its result and its done mark are written in one transaction. The model
calls happen outside any transaction; :mod:`cascade.ledger` leases the tasks.

>>> with Store(":memory:") as store:
...     store.start_run("r1")
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from cascade.errors import ConfigError
from cascade.outcome import Outcome, Step
from cascade.store.rows import (
    ATTEMPT_COLUMNS,
    RESULT_COLUMNS,
    attempt_row,
    outcome_from_row,
    result_line,
    result_row,
    step_from_row,
    task_json,
)
from cascade.store.schema import BUSY_TIMEOUT_S, SCHEMA, Transaction, enable_wal, end, migrate
from cascade.types import Task

__all__ = ["SCHEMA_VERSION", "Store"]

SCHEMA_VERSION = 8

_ATTEMPT_WIDTH = ATTEMPT_COLUMNS.count(",") + 1
_INSERT_ATTEMPT = (
    f"INSERT INTO attempts ({ATTEMPT_COLUMNS}) VALUES ({', '.join('?' * _ATTEMPT_WIDTH)})"  # noqa: S608  # constant columns
)
_RESULT_WIDTH = RESULT_COLUMNS.count(",") + 1


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
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open the store {self.path}: {exc}") from exc
        try:
            self._open(synchronous)
        except sqlite3.DatabaseError as exc:
            self._db.close()
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise
            raise ConfigError(f"{self.path} cannot be used as a cascade store: {exc}") from exc

    def _open(self, synchronous: str) -> None:
        self._db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        enable_wal(self._db)
        self._db.execute(f"PRAGMA synchronous = {synchronous}")
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                migrate(self._db)
                for statement in SCHEMA.split(";\n"):
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

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

    def _transaction(self) -> Transaction:
        return Transaction(self._db)

    @contextmanager
    def writing(self) -> Iterator[sqlite3.Connection]:
        """The connection inside one ``BEGIN IMMEDIATE`` transaction (for :mod:`cascade.ledger`)."""
        with self._lock, self._transaction():
            yield self._db

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """The connection, held for reads (for :mod:`cascade.ledger`)."""
        with self._lock:
            yield self._db

    def start_run(self, run_id: str, config: Mapping[str, Any] | None = None) -> None:
        """Register a run; starting an existing run again keeps its first configuration."""
        with self._lock, self._transaction():
            self._db.execute(
                "INSERT INTO runs (run_id, created_at, config) VALUES (?, ?, ?)"
                " ON CONFLICT (run_id) DO NOTHING",
                (run_id, time.time(), json.dumps(dict(config or {}), default=str)),
            )

    def run_config(self, run_id: str) -> dict[str, Any]:
        """The configuration a run was started with (empty for an unknown run)."""
        with self._lock:
            row = self._db.execute("SELECT config FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        found = json.loads(row[0]) if row is not None and row[0] else {}
        return found if isinstance(found, dict) else {}

    def amend_run(self, run_id: str, **config: Any) -> None:
        """Set ``key=value`` pairs in a run's stored configuration."""
        merged = self.run_config(run_id) | config
        with self._lock, self._transaction():
            self._db.execute(
                "UPDATE runs SET config = ? WHERE run_id = ?",
                (json.dumps(merged, default=str), run_id),
            )

    def find_run(self, **config: Any) -> str | None:
        """The latest run whose configuration holds every ``key=value`` given, if any."""
        sql = "SELECT run_id FROM runs WHERE 1"
        for key in config:
            if not key.isidentifier():
                raise ValueError(f"not a configuration key: {key!r}")
            sql += f" AND json_extract(config, '$.{key}') IS ?"
        with self._lock:
            row = self._db.execute(
                sql + " ORDER BY created_at DESC LIMIT 1", tuple(config.values())
            ).fetchone()
        return None if row is None else str(row[0])

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
        return self.record_many([(outcome, task)])[0]

    def record_many(
        self,
        items: Sequence[tuple[Outcome, Task | None]],
        executions: Sequence[int] = (),
        *,
        also: Callable[[sqlite3.Connection], object] | None = None,
    ) -> list[bool]:
        """:meth:`record` for several outcomes in one transaction; whether each was the first.

        Each outcome's steps, result and done mark land together or not at all.
        ``executions`` says how many times each task's calls were made (1 when not given: more
        only when a lost lease made them again); ``also`` runs inside the same transaction (the
        ledger moves its read position there).
        """
        with self._lock, self._transaction():
            return self._write_many(items, executions, also)

    def record_now(
        self,
        items: Sequence[tuple[Outcome, Task | None]],
        *,
        also: Callable[[sqlite3.Connection], object] | None = None,
    ) -> list[bool] | None:
        """:meth:`record_many` if the store is free this instant; ``None``, writing nothing, if not.

        Free means no other thread of this process is using the connection and no other
        process holds the file's write lock: this never waits, so a caller on an event loop
        can try it and hand the write to a thread when it gets ``None``.
        """
        if not self._lock.acquire(blocking=False):
            return None
        try:
            self._db.execute("PRAGMA busy_timeout = 0")
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) or "busy" in str(exc):
                    return None
                raise
            finally:
                self._db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            try:
                written = self._write_many(items, (), also)
            except BaseException:
                end(self._db, failed=True)
                raise
            end(self._db, failed=False)
            return written
        finally:
            self._lock.release()

    def _write_many(
        self,
        items: Sequence[tuple[Outcome, Task | None]],
        executions: Sequence[int],
        also: Callable[[sqlite3.Connection], object] | None,
    ) -> list[bool]:
        """The body of :meth:`record_many`, inside a transaction the caller holds."""
        now = time.time()
        if also is not None:
            also(self._db)
        self._db.executemany(
            "INSERT INTO runs (run_id, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
            [(run_id, now) for run_id in {outcome.run_id for outcome, _ in items}],
        )
        written: list[bool] = []
        for number, (outcome, task) in enumerate(items):
            times = executions[number] if number < len(executions) else 1
            written.append(self._record_one(outcome, task, now, max(1, times)))
        return written

    def _record_one(self, outcome: Outcome, task: Task | None, now: float, times: int) -> bool:
        execution_id = uuid.uuid4().hex
        self._db.executemany(
            _INSERT_ATTEMPT,
            [attempt_row(step, execution_id) for step in outcome.steps],
        )
        written = self._db.execute(
            f"INSERT INTO results ({RESULT_COLUMNS}) VALUES ({', '.join('?' * _RESULT_WIDTH)})"  # noqa: S608  # constant columns
            " ON CONFLICT (run_id, task_id) DO NOTHING",
            result_row(outcome, execution_id, now, times),
        ).rowcount
        self._db.execute(
            "INSERT INTO tasks (run_id, task_id, task_type, payload, state, updated_at, executions)"
            " VALUES (?, ?, ?, ?, 'done', ?, 1) ON CONFLICT (run_id, task_id) DO UPDATE"
            " SET state = 'done', lease_owner = NULL, lease_expires = NULL,"
            " updated_at = excluded.updated_at, payload = coalesce(payload, excluded.payload)",
            (
                outcome.run_id,
                outcome.task_id,
                outcome.task_type,
                None if task is None else task_json(task),
                now,
            ),
        )
        return written == 1

    def append_steps(self, steps: Sequence[Step], execution_id: str) -> None:
        """Add steps made after a task's result was written (its audit), in one transaction."""
        with self._lock, self._transaction():
            self._db.executemany(
                _INSERT_ATTEMPT,
                [attempt_row(step, execution_id) for step in steps],
            )

    def steps(self, run_id: str, task_id: str) -> list[Step]:
        """Every step recorded for a task, in the order they were appended."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE run_id = ? AND task_id = ?"  # noqa: S608  # constant columns
                " ORDER BY seq",
                (run_id, task_id),
            ).fetchall()
        return [step_from_row(row) for row in rows]

    def outcome(self, run_id: str, task_id: str) -> Outcome | None:
        """The recorded outcome of a task, with the steps of the execution that wrote it."""
        with self._lock:
            row = self._db.execute(
                f"SELECT {RESULT_COLUMNS} FROM results WHERE run_id = ? AND task_id = ?",  # noqa: S608  # constant columns
                (run_id, task_id),
            ).fetchone()
            if row is None:
                return None
            steps = self._db.execute(
                f"SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE execution_id = ? ORDER BY seq",  # noqa: S608  # constant columns
                (row[2],),
            ).fetchall()
        return outcome_from_row(row, tuple(step_from_row(s) for s in steps))

    def results(self, run_id: str) -> Iterator[dict[str, Any]]:
        """The run's results as result-file lines, in the order they were written."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {RESULT_COLUMNS} FROM results WHERE run_id = ? ORDER BY rowid",  # noqa: S608  # constant columns
                (run_id,),
            ).fetchall()
        for row in rows:
            yield result_line(row)

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
        if table not in {"runs", "tasks", "attempts", "results", "quarantine"}:
            raise ValueError(f"no table {table!r}")
        with self._lock:
            return int(self._db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608

    def integrity_check(self) -> str:
        """SQLite's own consistency check: ``"ok"`` when the file is sound."""
        with self._lock:
            return str(self._db.execute("PRAGMA integrity_check").fetchone()[0])
