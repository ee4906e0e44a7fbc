"""How outcomes, steps and tasks become rows of the store, and rows become them again."""

from __future__ import annotations

import json
from typing import Any

from cascade.enums import SIDE_CALLS, CallKind, Decision, Status
from cascade.jsonable import to_jsonable
from cascade.outcome import Outcome, Step
from cascade.secrets import redact
from cascade.types import Task, Verdict

__all__ = [
    "ATTEMPT_COLUMNS",
    "RESULT_COLUMNS",
    "attempt_row",
    "outcome_from_row",
    "result_line",
    "result_row",
    "step_from_row",
    "task_json",
    "tiers_tried",
]

ATTEMPT_COLUMNS = (
    "run_id, task_id, execution_id, task_type, step, tier, model_requested, model_served, kind,"
    " prompt_tokens, completion_tokens, cost_usd, latency_s, verdicts, decision, error, output, ts,"
    " compute_s, confidence, batch"
)

RESULT_COLUMNS = (
    "run_id, task_id, execution_id, task_type, status, output, parsed, tier, model, attempts,"
    " cost_usd, latency_s, reasons, best_step, created_at, executions, tiers_tried, compute_s,"
    " waited_s"
)


def result_line(row: tuple[Any, ...]) -> dict[str, Any]:
    """A ``results`` row (in :data:`RESULT_COLUMNS` order) as a line of the results file."""
    return outcome_from_row(row, ()).to_result() | {"attempts": row[9]}


def tiers_tried(outcome: Outcome) -> int:
    """How many tiers answered (or failed to answer) the task: more than one means it escalated."""
    return len({s.tier for s in outcome.steps if s.kind not in SIDE_CALLS})


def task_json(task: Task) -> str:
    """A task as the ledger keeps it: JSON, with its extra fields at the top level."""
    return json.dumps(
        {
            "id": task.id,
            "type": task.type,
            "input": task.input,
            "messages": None if task.messages is None else [dict(m) for m in task.messages],
            "meta": dict(task.meta),
            "deadline_s": task.deadline_s,
            **dict(task.extra),
        },
        default=str,
    )


def _verdicts_json(verdicts: tuple[Verdict, ...]) -> str:
    if not verdicts:
        return "[]"
    return redact(
        json.dumps(
            [
                {
                    "validator": v.validator,
                    "passed": v.passed,
                    "reason": v.reason,
                    "feedback": v.feedback,
                    "score": v.score,
                    "fault": v.fault,
                    **({"self_reported": True} if v.self_reported else {}),
                }
                for v in verdicts
            ]
        )
    )


def attempt_row(step: Step, execution_id: str) -> tuple[Any, ...]:
    """A step as an ``attempts`` row, in :data:`ATTEMPT_COLUMNS` order, secrets redacted."""
    return (
        step.run_id, step.task_id, execution_id, step.task_type, step.step, step.tier,
        step.model_requested, step.model_served, str(step.kind), step.prompt_tokens,
        step.completion_tokens, step.cost_usd, step.latency_s, _verdicts_json(step.verdicts),
        str(step.decision), None if step.error is None else redact(step.error),
        None if step.output is None else redact(step.output), step.ts, step.compute_s,
        step.confidence, int(step.batch),
    )  # fmt: skip


def step_from_row(row: tuple[Any, ...]) -> Step:
    """An ``attempts`` row (in :data:`ATTEMPT_COLUMNS` order) as a step."""
    verdicts = tuple(Verdict(**v) for v in json.loads(row[13]))
    return Step(
        run_id=row[0], task_id=row[1], task_type=row[3], step=row[4], tier=row[5],
        model_requested=row[6], model_served=row[7], kind=CallKind(row[8]),
        prompt_tokens=row[9], completion_tokens=row[10], cost_usd=row[11], latency_s=row[12],
        verdicts=verdicts, decision=Decision(row[14]), error=row[15], output=row[16], ts=row[17],
        compute_s=row[18], confidence=row[19], batch=bool(row[20]),
    )  # fmt: skip


def result_row(outcome: Outcome, execution_id: str, now: float, executions: int) -> tuple[Any, ...]:
    """An outcome as a ``results`` row, in :data:`RESULT_COLUMNS` order, secrets redacted."""
    return (
        outcome.run_id, outcome.task_id, execution_id, outcome.task_type, str(outcome.status),
        None if outcome.output is None else redact(outcome.output),
        redact(json.dumps(outcome.parsed, default=to_jsonable)),
        outcome.tier, outcome.model,
        len(outcome.steps), outcome.cost_usd, outcome.latency_s,
        redact(json.dumps(list(outcome.reasons))),
        outcome.best_step, now, executions, tiers_tried(outcome), outcome.compute_s,
        outcome.waited_s,
    )  # fmt: skip


def outcome_from_row(row: tuple[Any, ...], steps: tuple[Step, ...]) -> Outcome:
    """A ``results`` row (in :data:`RESULT_COLUMNS` order) and its steps, as an outcome."""
    return Outcome(
        run_id=row[0], task_id=row[1], task_type=row[3], status=Status(row[4]), output=row[5],
        parsed=json.loads(row[6]) if row[6] is not None else None, tier=row[7], model=row[8],
        steps=steps, cost_usd=row[10], latency_s=row[11], reasons=tuple(json.loads(row[12])),
        best_step=row[13], compute_s=row[17], waited_s=row[18],
    )  # fmt: skip
