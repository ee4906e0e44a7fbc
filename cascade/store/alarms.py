"""Drift alarms in the store: raised by a run, shown by ``cascade report``, cleared by a person.

An alarm of a policy with ``on_drift = "escalate"`` starts its task type one tier higher in
every run of the store, this one and the next, until ``cascade drift clear`` clears it.

>>> from cascade.store import Store
>>> with Store(":memory:") as store:
...     alarms = DriftAlarms(store)
...     alarms.raise_("r1", "echo", 0, "acceptance", "drift: ...", escalate=True)
...     (alarms.escalated(), alarms.clear("echo"), alarms.escalated())
({'echo'}, 1, set())
"""

from __future__ import annotations

import time
from typing import Any

from cascade.store.db import Store

__all__ = ["Arrivals", "DriftAlarms", "Escalated"]


class DriftAlarms:
    """The store's drift alarms."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def raise_(self, run_id: str, task_type: str, tier: int, signal: str, text: str,
               *, escalate: bool) -> None:  # fmt: skip
        """Keep an alarm."""
        with self._store.writing() as db:
            db.execute(
                "INSERT INTO drift_alarms (run_id, task_type, tier, signal, text, escalate,"
                " raised_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (run_id, task_type, tier, signal, text, int(escalate), time.time()),
            )

    def has(self, run_id: str, task_type: str, tier: int, signal: str) -> bool:
        """Whether the run raised this alarm already (a resumed run watches its results again)."""
        with self._store.reading() as db:
            row = db.execute(
                "SELECT 1 FROM drift_alarms WHERE run_id = ? AND task_type = ? AND tier = ?"
                " AND signal = ? AND cleared_at IS NULL",
                (run_id, task_type, tier, signal),
            ).fetchone()
        return row is not None

    def escalated(self) -> set[str]:
        """The task types that start one tier higher: an escalating alarm not cleared."""
        with self._store.reading() as db:
            rows = db.execute(
                "SELECT DISTINCT task_type FROM drift_alarms WHERE escalate AND cleared_at IS NULL"
            ).fetchall()
        return {str(row[0]) for row in rows}

    def clear(self, task_type: str | None = None) -> int:
        """Clear the alarms of ``task_type`` (of every type when ``None``); how many."""
        with self._store.writing() as db:
            done = db.execute(
                "UPDATE drift_alarms SET cleared_at = ? WHERE cleared_at IS NULL"
                " AND (? IS NULL OR task_type = ?)",
                (time.time(), task_type, task_type),
            )
            return int(done.rowcount)

    def of_run(self, run_id: str | None) -> list[dict[str, Any]]:
        """The alarms a run raised (every run's when ``None``), oldest first."""
        with self._store.reading() as db:
            rows = db.execute(
                "SELECT run_id, task_type, tier, signal, text, escalate, raised_at, cleared_at"
                " FROM drift_alarms WHERE ? IS NULL OR run_id = ? ORDER BY raised_at",
                (run_id, run_id),
            ).fetchall()
        keys = ("run_id", "task_type", "tier", "signal", "text", "escalate", "raised_at",
                "cleared_at")  # fmt: skip
        return [dict(zip(keys, row, strict=True)) for row in rows]


class Arrivals:
    """Where a run's results stand in the order their tasks arrived (were read and leased).

    A task's arrival is its row in the ledger: tasks are ingested in input order and leased
    in that order (see :meth:`cascade.store.ledger.Ledger.lease`).
    """

    def __init__(self, store: Store, run_id: str) -> None:
        self._store = store
        self._run_id = run_id

    def of(self, after: int, upto: int) -> tuple[dict[int, int], int | None]:
        """The arrival of each result in rows ``(after, upto]``, and the first unsettled arrival.

        A task is unsettled while it is pending or leased, or when its result was written
        after ``upto`` (not yet read with the others); ``None`` when every task is settled.
        """
        with self._store.reading() as db:
            rows = db.execute(
                "SELECT r.rowid, t.rowid FROM results AS r JOIN tasks AS t"
                " ON t.run_id = r.run_id AND t.task_id = r.task_id"
                " WHERE r.rowid > ? AND r.rowid <= ? AND +r.run_id = ?",  # the rowid range
                (after, upto, self._run_id),
            ).fetchall()
            # One statement (one snapshot), each part a search of an index: an OR scans them all.
            (first,) = db.execute(
                "SELECT min(first) FROM ("
                " SELECT min(rowid) AS first FROM tasks WHERE run_id = ?1 AND state = 'pending'"
                " UNION ALL SELECT min(rowid) FROM tasks WHERE run_id = ?1 AND state = 'leased'"
                " UNION ALL SELECT min(rowid) FROM tasks WHERE run_id = ?1 AND task_id IN"
                " (SELECT task_id FROM results WHERE rowid > ?2 AND +run_id = ?1))",
                (self._run_id, upto),
            ).fetchone()
        return {int(result): int(task) for result, task in rows}, first


class Escalated:
    """The task types escalated by drift, read from the store at most every ``every_s``."""

    def __init__(self, store: Store, every_s: float = 0.1) -> None:
        self._alarms = DriftAlarms(store)
        self._every_s = every_s
        self._read_at = -float("inf")
        self._types: set[str] = set()

    def __call__(self) -> set[str]:
        """The escalated task types now."""
        now = time.monotonic()
        if now - self._read_at >= self._every_s:
            self._types, self._read_at = self._alarms.escalated(), now
        return self._types
