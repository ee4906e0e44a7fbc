"""What a run's HTML report reads beyond its summary: money over time, and which tasks to show.

Every query aggregates in SQLite, so a report of a million tasks reads a few hundred rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from cascade.store.db import Store

__all__ = ["NotableTask", "cost_over_time", "notable_tasks", "run_span"]


def run_span(store: Store, run_id: str | None) -> tuple[float, float] | None:
    """When the first and the last call of the run (of every run: ``None``) were made."""
    first, last = next(store.select(
        "SELECT min(ts), max(ts) FROM attempts WHERE ? IS NULL OR run_id = ?", (run_id, run_id)
    ))  # fmt: skip
    return None if first is None else (float(first), float(last))


def cost_over_time(
    store: Store, run_id: str | None, buckets: int = 100
) -> list[tuple[float, float, int]]:
    """(seconds since the first call, dollars spent by then, calls made by then), per bucket.

    The run's span is cut into at most ``buckets`` equal stretches; a point closes each stretch
    that had calls. Every call counts: audits, retries and cut-off calls too (the run's spent).
    """
    span = run_span(store, run_id)
    if span is None:
        return []
    start, end = span
    width = max((end - start) / buckets, 1e-9)
    rows = store.select(
        "SELECT min(CAST((ts - ?) / ? AS INTEGER), ?) AS b, total(cost_usd), count(*)"
        " FROM attempts WHERE ? IS NULL OR run_id = ? GROUP BY b ORDER BY b",
        (start, width, buckets - 1, run_id, run_id),
    )
    points: list[tuple[float, float, int]] = []
    spent, calls = 0.0, 0
    for bucket, cost, count in rows:
        spent += float(cost)
        calls += int(count)
        points.append((round(min((bucket + 1) * width, end - start), 3), spent, calls))
    return points


_PICK = ("SELECT run_id, task_id, task_type, status, cost_usd FROM results"
         " WHERE (? IS NULL OR run_id = ?)")  # fmt: skip


@dataclass(frozen=True, slots=True)
class NotableTask:
    """A task a report links to, and why it was picked."""

    run_id: str
    task_id: str
    task_type: str
    status: str
    cost_usd: float
    why: str


def notable_tasks(store: Store, run_id: str | None, per_group: int = 10) -> list[NotableTask]:
    """A bounded sample to look at: the costliest tasks, then the first few of each status.

    At most ``per_group`` for each (fewer in all when one task is picked twice).
    """
    picked: dict[tuple[str, str], NotableTask] = {}

    def add(rows: object, why: str) -> None:
        for run, task, kind, status, cost in rows:  # type: ignore[attr-defined]
            picked.setdefault((run, task), NotableTask(run, task, kind, status, float(cost), why))

    add(store.select(_PICK + " ORDER BY cost_usd DESC, task_id LIMIT ?",
                     (run_id, run_id, per_group)), "among the costliest")  # fmt: skip
    statuses = [row[0] for row in store.select(
        "SELECT DISTINCT status FROM results WHERE (? IS NULL OR run_id = ?) ORDER BY status",
        (run_id, run_id),
    )]  # fmt: skip
    for status in statuses:
        add(store.select(_PICK + " AND status = ? ORDER BY rowid LIMIT ?",
                         (run_id, run_id, status, per_group)), f"the first {status}")  # fmt: skip
    return list(picked.values())
