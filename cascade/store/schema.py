"""The store's schema, its migration from older versions, and opening a connection to it."""

from __future__ import annotations

import sqlite3
import time
from types import TracebackType

__all__ = ["BUSY_TIMEOUT_S", "SCHEMA", "Transaction", "enable_wal", "end", "migrate"]

BUSY_TIMEOUT_S = 30.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id       TEXT PRIMARY KEY,
    created_at   REAL NOT NULL,
    finished_at  REAL,
    config       TEXT NOT NULL DEFAULT '{}',
    lines_read   INTEGER NOT NULL DEFAULT 0,
    duplicates   INTEGER NOT NULL DEFAULT 0,
    input_done   INTEGER NOT NULL DEFAULT 0,
    breaker_trips INTEGER NOT NULL DEFAULT 0,
    audits_skipped TEXT NOT NULL DEFAULT '{}'
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
    executions     INTEGER NOT NULL DEFAULT 0,
    line           INTEGER,
    PRIMARY KEY (run_id, task_id)
);
CREATE INDEX IF NOT EXISTS tasks_by_state ON tasks (run_id, state);
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
    ts                 REAL NOT NULL,
    compute_s          REAL NOT NULL DEFAULT 0,
    confidence         REAL,
    batch              INTEGER NOT NULL DEFAULT 0
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
    executions    INTEGER NOT NULL DEFAULT 1,
    tiers_tried   INTEGER NOT NULL DEFAULT 1,
    compute_s     REAL NOT NULL DEFAULT 0,
    waited_s      REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, task_id)
);
CREATE TABLE IF NOT EXISTS batches (
    run_id      TEXT NOT NULL,
    file_id     TEXT NOT NULL,
    model       TEXT NOT NULL,
    batch_id    TEXT,
    state       TEXT NOT NULL DEFAULT 'uploaded',
    items       INTEGER NOT NULL,
    created_at  REAL NOT NULL,
    PRIMARY KEY (run_id, file_id)
);
CREATE TABLE IF NOT EXISTS batch_items (
    run_id     TEXT NOT NULL,
    custom_id  TEXT NOT NULL,
    file_id    TEXT NOT NULL,
    PRIMARY KEY (run_id, custom_id)
);
CREATE TABLE IF NOT EXISTS drift_alarms (
    run_id      TEXT NOT NULL,
    task_type   TEXT NOT NULL,
    tier        INTEGER NOT NULL,
    signal      TEXT NOT NULL,
    text        TEXT NOT NULL,
    escalate    INTEGER NOT NULL,
    raised_at   REAL NOT NULL,
    cleared_at  REAL
);
CREATE TABLE IF NOT EXISTS served (
    client      TEXT NOT NULL,
    idem_key    TEXT NOT NULL,
    digest      TEXT NOT NULL,
    run_id      TEXT NOT NULL,
    task_id     TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('running', 'done')),
    status      INTEGER,
    reply       TEXT,
    updated_at  REAL NOT NULL,
    PRIMARY KEY (client, idem_key)
);
CREATE TABLE IF NOT EXISTS client_spend (
    client     TEXT PRIMARY KEY,
    spent_usd  REAL NOT NULL DEFAULT 0,
    requests   INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS client_reserved (
    run_id        TEXT NOT NULL,
    client        TEXT NOT NULL,
    reserved_usd  REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, client)
);
CREATE TABLE IF NOT EXISTS quarantine (
    run_id  TEXT NOT NULL,
    line    INTEGER NOT NULL,
    reason  TEXT NOT NULL,
    raw     TEXT NOT NULL,
    PRIMARY KEY (run_id, line)
);
"""

_ADDED = {
    "runs": (
        "lines_read INTEGER NOT NULL DEFAULT 0",
        "duplicates INTEGER NOT NULL DEFAULT 0",
        "input_done INTEGER NOT NULL DEFAULT 0",
        "breaker_trips INTEGER NOT NULL DEFAULT 0",
        "audits_skipped TEXT NOT NULL DEFAULT '{}'",
    ),
    "tasks": ("executions INTEGER NOT NULL DEFAULT 0", "line INTEGER"),
    "attempts": (
        "compute_s REAL NOT NULL DEFAULT 0",
        "confidence REAL",
        "batch INTEGER NOT NULL DEFAULT 0",
    ),
    "results": (
        "executions INTEGER NOT NULL DEFAULT 1",
        "tiers_tried INTEGER NOT NULL DEFAULT 1",
        "compute_s REAL NOT NULL DEFAULT 0",
        "waited_s REAL NOT NULL DEFAULT 0",
    ),
}
"""Columns older stores lack (version 2 added the run ledger, 3 local compute seconds, 4 the
confidence of an answer, 5 the time a task waited for providers, the input line of each
task and the breaker trips of a run, 6 whether a call was a batch call, with the batches
tables and the drift alarms, 7 the audits a run skipped for their cap, 8 the tables of
``cascade serve``: replies by idempotency key, each client key's spend and what its
requests in flight hold back); they are added when
such a store is opened (new tables are created whole)."""


def enable_wal(db: sqlite3.Connection) -> None:
    """Switch the file to WAL mode, waiting out other connections doing the same.

    WAL mode is stored in the file, so this only does work once. Changing the journal mode
    fails at once with "database is locked" when another connection holds the file, without
    consulting ``busy_timeout``, so the switch is retried here for as long as that timeout.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
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


def migrate(db: sqlite3.Connection) -> None:
    """Bring an older store up to this version: add the columns it lacks."""
    for table, columns in _ADDED.items():
        have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if not have:
            continue  # a new store: the schema creates the table whole
        for column in columns:
            if column.split()[0] not in have:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column}")


class Transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, or ``ROLLBACK`` on error."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        end(self._db, failed=kind is not None)


def end(db: sqlite3.Connection, *, failed: bool) -> None:
    """End the transaction: ``COMMIT``, or ``ROLLBACK`` when the work in it ``failed``.

    SQLite rolls a transaction back itself on some errors (a full disk, an I/O error): then
    there is nothing to roll back, and the error that did it is the one the caller sees, not
    "no transaction is active". A ``COMMIT`` that fails is rolled back before it is raised, so
    the connection can begin again.
    """
    if failed:
        if db.in_transaction:
            db.execute("ROLLBACK")
        return
    try:
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
