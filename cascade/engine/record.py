"""The record one task keeps while it climbs: a :class:`Step` per call, then its :class:`Outcome`.

:class:`Record` turns each backend call into a step (logged as it happens), keeps what the task
has spent, and ends the task: accepted, exhausted with the best rejected answer marked,
stopped by its budget, failed, or waiting for review.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from cascade.engine.call import Call
from cascade.engine.unrecorded import Unrecorded
from cascade.enums import SIDE_CALLS, Decision, Status
from cascade.outcome import Outcome, Step
from cascade.steplog import StepLog
from cascade.types import Task, Usage, Verdict

__all__ = ["Record"]

_NO_USAGE = Usage()


class Record:
    """Every step of one task, what it spent, and how it ends."""

    def __init__(
        self,
        task: Task,
        run_id: str,
        log: StepLog | None,
        steps: list[Step] | None = None,
    ) -> None:
        self.task = task
        self.run_id = run_id
        self.log = log
        self.steps: list[Step] = [] if steps is None else steps
        self.unrecorded = Unrecorded()
        """The task's calls no step records yet (while a climb tracks them, see
        :mod:`~cascade.engine.unrecorded`); each step takes its call out."""
        self.spent = 0.0
        self.waited_s = 0.0
        """Seconds spent in calls that failed and in waits for their providers to come back."""
        self.outage_since: float | None = None
        self.overlap_s = 0.0
        """Seconds hedged calls ran at the same time: the task's latency counts them once."""

    def step(
        self,
        index: int,
        call: Call,
        verdicts: tuple[Verdict, ...],
        decision: Decision,
        cost_usd: float | None = None,
    ) -> int:
        """Record one call at tier ``index``; returns its step number.

        ``cost_usd`` is what a call without a response is estimated to have cost (a hedged call
        cancelled in flight); a response's own cost is used otherwise.
        """
        self.unrecorded.take(call)
        response = call.response
        usage = response.usage if response is not None else _NO_USAGE
        cost = response.cost_usd if response is not None else (cost_usd or 0.0)
        self.spent += cost
        step = Step(
            run_id=self.run_id,
            task_id=self.task.id,
            task_type=self.task.type,
            step=len(self.steps),
            tier=index,
            model_requested=call.model,
            model_served=response.model if response is not None else None,
            kind=call.kind,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cost_usd=cost,
            latency_s=call.latency_s,
            verdicts=tuple(_for_record(v) for v in verdicts),
            decision=decision,
            error=None if call.error is None else f"{type(call.error).__name__}: {call.error}",
            ts=time.time(),
            output=response.text if response is not None else None,
            compute_s=response.compute_s if response is not None else 0.0,
            confidence=response.confidence if response is not None else None,
            batch=call.batch,
        )
        self.steps.append(step)
        if self.log is not None:
            self.log.emit(step)
        return step.step

    def cut_off(self) -> None:
        """The task is cut off: record every call no step records yet, decision ``cancel``.

        An answer is kept with its own cost; a call cut off in flight (no answer, no error) at
        its prompt's, as a hedge's loser is.
        """
        for index, call in self.unrecorded.left():
            cost = call.cut_usd if call.response is None else None
            self.step(index, call, (), Decision.CANCEL, cost_usd=cost)

    def answer(
        self, index: int, call: Call, verdict: Verdict, decision: Decision, judged: list[Call]
    ) -> int:
        """Record an answer's step, then its validators' calls; return the answer's step."""
        answer = self.step(index, call, verdict.leaves(), decision)
        for judge_call in judged:
            failed = judge_call.error is not None
            self.step(index, judge_call, (), Decision.ERROR if failed else decision)
        return answer

    def give_up(self, *, budget: bool, why: str | None = None, deadline: bool = False) -> Outcome:
        """End a task no tier accepted: keep every step, and mark the best rejected answer.

        ``why`` leads the reasons (a call refused because it could pass the budget, or not
        answer within the deadline, say).
        """
        answered = [s for s in self.steps if _is_answer(s)]
        if deadline:
            status = Status.DEADLINE
        elif budget:
            status = Status.BUDGET_EXHAUSTED
        else:
            status = Status.EXHAUSTED if answered else Status.FAILED
        reasons = self.reasons() if why is None else [why, *self.reasons()]
        if status is Status.BUDGET_EXHAUSTED:
            reasons.append(f"task budget reached after spending ${self.spent:.6f}")
        return self.finish(status, tuple(dict.fromkeys(reasons)))

    def latency_s(self) -> float:
        """Seconds the task's calls took, one after another; hedged calls' overlap counted once."""
        return max(0.0, sum(s.latency_s for s in self.steps) - self.overlap_s)

    def refresh(self, outcome: Outcome) -> Outcome:
        """``outcome`` with the steps recorded since it was made (a cancelled hedge's, say)."""
        return dataclasses.replace(
            outcome,
            steps=tuple(self.steps),
            cost_usd=sum(s.cost_usd for s in self.steps),
            latency_s=self.latency_s(),
            compute_s=sum(s.compute_s for s in self.steps),
        )

    def reasons(self) -> list[str]:
        """Every error and rejection reason so far, in order."""
        reasons: list[str] = []
        for step in self.steps:
            if step.error:
                reasons.append(step.error)
            reasons.extend(v.reason for v in step.verdicts if not v.passed and v.reason)
        return reasons

    def to_review(self, index: int, model: str) -> Outcome:
        """Hand the task to the human tier: it waits, with its best rejected answer, for review."""
        outcome = self.finish(Status.NEEDS_REVIEW, tuple(dict.fromkeys(self.reasons())))
        return dataclasses.replace(outcome, tier=index, model=model)

    def finish(
        self,
        status: Status,
        reasons: tuple[str, ...],
        parsed: Any = None,
        accepted: int | None = None,
        delivered: tuple[str, str | None] | None = None,
    ) -> Outcome:
        """The outcome; ``delivered`` is (answer, model) when the checks chose another answer."""
        best = accepted if accepted is not None else _best_step(self.steps)
        chosen = self.steps[best] if best is not None else None
        output = chosen.output if chosen is not None else None
        model = chosen.model_served if chosen is not None else None
        if delivered is not None:
            output, model = delivered[0], delivered[1] or model
        return Outcome(
            run_id=self.run_id,
            task_id=self.task.id,
            task_type=self.task.type,
            status=status,
            output=output,
            parsed=parsed,
            tier=chosen.tier if chosen is not None else None,
            model=model,
            steps=tuple(self.steps),
            cost_usd=sum(s.cost_usd for s in self.steps),
            latency_s=self.latency_s(),
            reasons=reasons,
            best_step=best,
            compute_s=sum(s.compute_s for s in self.steps),
            waited_s=round(self.waited_s, 6),
        )


def _for_record(verdict: Verdict) -> Verdict:
    """A verdict as steps keep it: without the parsed value, sub-verdicts or chosen answer."""
    if verdict.value is None and not verdict.children and verdict.answer is None:
        return verdict  # nothing to drop: no copy (this runs once per answer)
    return dataclasses.replace(verdict, value=None, children=(), answer=None, answer_model=None)


def _best_step(steps: list[Step]) -> int | None:
    """The most promising rejected answer: most checks passed, then best score, then tier."""
    ranked = [
        (
            sum(v.passed for v in s.verdicts) / max(1, len(s.verdicts)),
            max((v.score for v in s.verdicts if v.score is not None), default=0.0),
            s.tier,
            s.step,
        )
        for s in steps
        if _is_answer(s)
    ]
    return max(ranked)[3] if ranked else None


def _is_answer(step: Step) -> bool:
    """Whether a step holds an answer to the task (not an error, nor a validator's call)."""
    return step.output is not None and step.kind not in SIDE_CALLS
