"""The named queries that the runner, the run summary, the review queue and export need.

Every SQL statement of cascade lives in this package; code outside it asks for what it needs
by name, and gets plain rows back.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from typing import Any

from cascade.enums import CallKind, Decision, Status
from cascade.store.db import Store
from cascade.types import HUMAN

__all__ = [
    "Review",
    "attempts_for_summary",
    "audit_spent",
    "audit_verdicts_after",
    "audited_answers",
    "audits_skipped",
    "escalations_after",
    "first_answers",
    "provider_health",
    "record_reviews",
    "result_state",
    "results_for_summary",
    "run_config",
    "run_ids",
    "runs_with_task",
    "spending",
    "task_payload",
    "tasks_of",
    "waiting_for_review",
]


def audit_spent(store: Store, run_id: str) -> dict[str, float]:
    """What the run's shadow audits cost so far, by task type."""
    rows = store.select(
        "SELECT task_type, total(cost_usd) FROM attempts WHERE run_id = ? AND kind = 'audit'"
        " GROUP BY task_type",
        (run_id,),
    )
    return {str(kind): float(cost) for kind, cost in rows}


def audit_verdicts_after(store: Store, run_id: str, seq: int) -> list[tuple[Any, ...]]:
    """The run's audit verdicts after step ``seq``: (seq, task_type, tier, decision)."""
    return list(
        store.select(
            "SELECT seq, task_type, tier, decision FROM attempts WHERE seq > ? AND +run_id = ?"
            " AND kind = 'audit' AND decision IN ('agree', 'disagree') ORDER BY seq",
            (seq, run_id),
        )
    )


def escalations_after(store: Store, run_id: str, seq: int) -> list[tuple[Any, ...]]:
    """The run's escalations after step ``seq``: (seq, task_type, tier, verdicts JSON)."""
    return list(
        store.select(
            "SELECT seq, task_type, tier, verdicts FROM attempts WHERE seq > ? AND +run_id = ?"
            " AND decision = 'escalate' ORDER BY seq",
            (seq, run_id),
        )
    )


def audited_answers(store: Store, run_id: str | None) -> Iterator[tuple[Any, ...]]:
    """Each audit's verdict, with the audited result's answer: of one run or all.

    (task_id, task_type, tier, decision, output, parsed).
    """
    return store.select(
        "SELECT a.task_id, a.task_type, a.tier, a.decision, r.output, r.parsed"
        " FROM attempts a JOIN results r ON a.run_id = r.run_id AND a.task_id = r.task_id"
        " WHERE a.kind = 'audit' AND a.decision IN ('agree', 'disagree')"
        " AND (? IS NULL OR a.run_id = ?)",
        (run_id, run_id),
    )


def results_for_summary(store: Store, run_id: str | None) -> Iterator[tuple[Any, ...]]:
    """(task_type, status, tier, cost_usd, compute_s) of each result, of one run or all."""
    return store.select(
        "SELECT task_type, status, tier, cost_usd, compute_s FROM results"
        " WHERE ? IS NULL OR run_id = ?",
        (run_id, run_id),
    )


def spending(store: Store, run_id: str | None) -> tuple[float, float]:
    """What every stored call of one run (or all) cost, and what its audits cost of that.

    Every call: those of tasks with a result, of repeated, cut-off and retried executions, and
    audits; the same sum as the run's ``spent``.
    """
    row = next(
        store.select(
            "SELECT total(cost_usd), total(CASE WHEN kind = ? THEN cost_usd ELSE 0 END)"
            " FROM attempts WHERE ? IS NULL OR run_id = ?",
            (CallKind.AUDIT.value, run_id, run_id),
        )
    )
    return float(row[0]), float(row[1])


def audits_skipped(store: Store, run_id: str | None) -> dict[str, tuple[int, float]]:
    """The audits skipped for their cap in one run (or all), per task type, with the cap."""
    found: dict[str, tuple[int, float]] = {}
    for (text,) in store.select(
        "SELECT audits_skipped FROM runs WHERE ? IS NULL OR run_id = ?", (run_id, run_id)
    ):
        for kind, (count, cap) in json.loads(text).items():
            found[kind] = (found.get(kind, (0, cap))[0] + int(count), float(cap))
    return found


def attempts_for_summary(store: Store, run_id: str | None) -> Iterator[tuple[Any, ...]]:
    """Each attempt of a task that has a result, with the result's status, tier and model.

    (run_id, task_id, task_type, tier, model_requested, kind, cost_usd, latency_s, verdicts,
    decision, compute_s, status, result tier, result model), by run, task and step.
    """
    return store.select(
        "SELECT a.run_id, a.task_id, a.task_type, a.tier, a.model_requested, a.kind, a.cost_usd,"
        " a.latency_s, a.verdicts, a.decision, a.compute_s, r.status, r.tier, r.model"
        " FROM attempts a JOIN results r ON a.run_id = r.run_id AND a.task_id = r.task_id"
        " WHERE ? IS NULL OR a.run_id = ? ORDER BY a.run_id, a.task_id, a.seq",
        (run_id, run_id),
    )


def provider_health(store: Store, run_id: str | None) -> dict[str, Any]:
    """What a summary's provider health needs, of one run or all.

    ``errors``: (error, decision) of each call a provider did not answer; ``escalations``:
    (by_provider_error, count) of the steps that escalated; ``failed``: (reasons) of each
    failed result; ``waited_s``: the time tasks spent waiting for providers; ``trips``: how
    many times a breaker opened.
    """
    params = (run_id, run_id)
    return {
        "errors": store.select(
            "SELECT error, decision FROM attempts"
            " WHERE error IS NOT NULL AND (? IS NULL OR run_id = ?)",
            params,
        ),
        "escalations": store.select(
            "SELECT error IS NOT NULL, count(*) FROM attempts"
            " WHERE decision = 'escalate' AND (? IS NULL OR run_id = ?) GROUP BY 1",
            params,
        ),
        "failed": store.select(
            "SELECT reasons FROM results WHERE status = 'failed' AND (? IS NULL OR run_id = ?)",
            params,
        ),
        "waited_s": store.select(
            "SELECT total(waited_s) FROM results WHERE ? IS NULL OR run_id = ?", params
        ),
        "trips": store.select(
            "SELECT total(breaker_trips) FROM runs WHERE ? IS NULL OR run_id = ?", params
        ),
    }


def run_ids(store: Store) -> list[str]:
    """The store's runs, the latest first."""
    return [row[0] for row in store.select("SELECT run_id FROM runs ORDER BY created_at DESC")]


def runs_with_task(store: Store, task_id: str) -> list[str]:
    """The runs that hold a task (a result or a step), the latest first."""
    return [
        row[0]
        for row in store.select(
            "SELECT run_id FROM runs WHERE run_id IN"
            " (SELECT run_id FROM attempts WHERE task_id = ?"
            " UNION SELECT run_id FROM results WHERE task_id = ?) ORDER BY created_at DESC",
            (task_id, task_id),
        )
    ]


def task_payload(store: Store, run_id: str, task_id: str) -> str | None:
    """The task as the ledger keeps it (JSON), if it keeps it."""
    rows = store.select(
        "SELECT payload FROM tasks WHERE run_id = ? AND task_id = ?", (run_id, task_id)
    )
    payload = next(rows, (None,))[0]
    return None if payload is None else str(payload)


def waiting_for_review(store: Store, run_id: str) -> list[str]:
    """The run's tasks whose status is ``needs_review``, in the order they were written."""
    rows = store.select(
        "SELECT task_id FROM results WHERE run_id = ? AND status = ? ORDER BY rowid",
        (run_id, str(Status.NEEDS_REVIEW)),
    )
    return [row[0] for row in rows]


def result_state(store: Store, run_id: str, task_id: str) -> tuple[str, str | None] | None:
    """A result's status and model, if the task has a result."""
    rows = store.select(
        "SELECT status, model FROM results WHERE run_id = ? AND task_id = ?", (run_id, task_id)
    )
    row = next(rows, None)
    return None if row is None else (str(row[0]), row[1])


Review = tuple[str, str, str, Any, str]
"""A reviewed answer: (run_id, task_id, output text, parsed value, reviewer)."""


def record_reviews(store: Store, reviews: Sequence[Review]) -> None:
    """Record reviewed answers in one transaction: each a ``review`` step and an accepted result.

    The step is appended to the execution that wrote the result, at the human tier.
    """
    with store.writing() as db:
        for run_id, task_id, output, parsed, reviewer in reviews:
            execution, task_type, tier, attempts = db.execute(
                "SELECT execution_id, task_type, tier, attempts FROM results"
                " WHERE run_id = ? AND task_id = ?",
                (run_id, task_id),
            ).fetchone()
            db.execute(
                "INSERT INTO attempts (run_id, task_id, execution_id, task_type, step, tier,"
                " model_requested, model_served, kind, prompt_tokens, completion_tokens,"
                " cost_usd, latency_s, verdicts, decision, error, output, ts, compute_s)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, 0, 0, '[]', ?, NULL, ?, ?, 0)",
                (
                    run_id, task_id, execution, task_type, attempts, tier, HUMAN, reviewer,
                    str(CallKind.REVIEW), str(Decision.ACCEPT), output, time.time(),
                ),
            )  # fmt: skip
            db.execute(
                "UPDATE results SET status = ?, output = ?, parsed = ?, model = ?, reasons = '[]',"
                " attempts = attempts + 1, best_step = ? WHERE run_id = ? AND task_id = ?",
                (str(Status.ACCEPTED), output, json.dumps(parsed), HUMAN, attempts, run_id,
                 task_id),
            )  # fmt: skip


def run_config(store: Store, run_id: str) -> dict[str, Any] | None:
    """The configuration a run was started with, if the run is known."""
    row = next(store.select("SELECT config FROM runs WHERE run_id = ?", (run_id,)), None)
    return None if row is None else dict(json.loads(row[0] or "{}"))


def tasks_of(store: Store, run_id: str | None) -> Iterator[tuple[str, str, str | None]]:
    """(task_id, task_type, payload) of every task, of one run or all, in ledger order."""
    return store.select(
        "SELECT task_id, task_type, payload FROM tasks WHERE ? IS NULL OR run_id = ?"
        " ORDER BY rowid",
        (run_id, run_id),
    )


def first_answers(
    store: Store, run_id: str | None, kinds: Sequence[CallKind]
) -> Iterator[tuple[Any, ...]]:
    """Every answered attempt of the given kinds, in the order they were made.

    (task_id, tier, model_requested, prompt_tokens, completion_tokens, cost_usd, latency_s,
    output, confidence).
    """
    marks = ", ".join("?" * len(kinds))
    where = f" AND kind IN ({marks}) AND (? IS NULL OR run_id = ?) ORDER BY seq"
    columns = "task_id, tier, model_requested, prompt_tokens, completion_tokens, cost_usd,"
    columns += " latency_s, output, confidence"
    sql = f"SELECT {columns} FROM attempts WHERE output IS NOT NULL{where}"  # noqa: S608  # placeholders only
    return store.select(sql, (*map(str, kinds), run_id, run_id))
