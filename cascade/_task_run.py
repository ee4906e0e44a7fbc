"""The decision loop for one task: call, validate, decide, log.

Per tier, cheapest first: ask the tier (the caller handles deadlines, retries and fallbacks),
run the validators on the answer, then accept, re-ask the same tier with the validators'
feedback, escalate to the next tier, or stop. The budget is checked before every re-ask and
escalation. Every backend call becomes one :class:`Step`, logged as it happens.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Mapping, Sequence
from typing import Any

from cascade._calls import Call, Caller
from cascade.backends.base import Response
from cascade.kinds import SIDE_CALLS
from cascade.steplog import StepLog
from cascade.types import (
    Ask,
    Attempt,
    CallKind,
    Decision,
    Message,
    Outcome,
    Price,
    Status,
    Step,
    Task,
    Tier,
    Usage,
    Verdict,
)
from cascade.validators.base import Validator, reads_confidence, run_validator

__all__ = ["TaskRun", "failed_outcome", "quarantined_outcome"]

_NO_USAGE = Usage()


class TaskRun:
    """The state of one task while it climbs the ladder."""

    def __init__(
        self,
        task: Task,
        ladder: tuple[Tier, ...],
        validate: Validator,
        caller: Caller,
        log: StepLog | None,
        run_id: str,
    ) -> None:
        self.task = task
        self.ladder = ladder
        self.validate = validate
        self.caller = caller
        self.log = log
        self.run_id = run_id
        self.steps: list[Step] = []
        self.attempts: list[Attempt] = []
        self.spent = 0.0
        self.budget_stop = False
        self.judge_calls: list[Call] = []
        self.answers: dict[tuple[str, int, int], Response] = {}
        """Answers this task already has, by (model, sample, question): reused, not paid again."""

    async def run(
        self,
        messages: tuple[Message, ...],
        budget_usd: float | None,
        order: Sequence[int] | None = None,
        examples: tuple[Message, ...] = (),
        *,
        calibrate: bool = False,
    ) -> Outcome:
        """Climb the ladder until a tier's answer is accepted, or nothing is left to try.

        ``order`` is the tiers to try, as indices into the ladder (all of them by default).
        ``examples`` are turns sent before ``messages`` to the tiers that take them. With
        ``calibrate``, every model tier the climb did not reach is then asked too, and its
        answer kept as a step of kind ``calibration`` that changes nothing.
        """
        order = range(len(self.ladder)) if order is None else order
        outcome = await self._climb(messages, budget_usd, order, examples)
        if not calibrate:
            return outcome
        return await self._record_rest(outcome, messages, order, examples)

    async def _record_rest(
        self,
        outcome: Outcome,
        messages: tuple[Message, ...],
        order: Sequence[int],
        examples: tuple[Message, ...],
    ) -> Outcome:
        """Ask every model tier the ladder did not reach, for the record only."""
        asked = {s.tier for s in self.steps if s.kind not in SIDE_CALLS}
        for index in order:
            tier = self.ladder[index]
            if tier.is_human or index in asked:
                continue
            conversation = (*examples, *messages) if tier.few_shot else messages
            calls = await self.caller.call_tier(
                tier, conversation, self.task.id, CallKind.CALIBRATION, confidence=True
            )
            for call in calls:
                self._step(index, call, (), Decision.RECORD if call.response else Decision.ERROR)
        return dataclasses.replace(
            outcome,
            steps=tuple(self.steps),
            cost_usd=sum(s.cost_usd for s in self.steps),
            compute_s=sum(s.compute_s for s in self.steps),
        )

    async def _climb(
        self,
        messages: tuple[Message, ...],
        budget_usd: float | None,
        order: Sequence[int],
        examples: tuple[Message, ...],
    ) -> Outcome:
        top = order[-1] if order else -1
        for index in order:
            tier = self.ladder[index]
            if tier.is_human:
                return self._to_review(index)
            conversation = (*examples, *messages) if tier.few_shot else messages
            validate = self.validate if tier.validate is None else tier.validate
            wants_confidence = not tier.trusted and reads_confidence(validate)
            kind = CallKind.CALL
            for reask in range(tier.reasks + 1):
                *errors, last = await self.caller.call_tier(
                    tier,
                    conversation,
                    self.task.id,
                    kind,
                    reask=reask,
                    confidence=wants_confidence,
                )
                for call in errors:
                    self._step(index, call, (), Decision.ERROR)
                if last.response is None:
                    decision = self._move(index == top, budget_usd, Decision.ESCALATE, 0.0, 0.0)
                    self._step(index, last, (), decision)
                    break
                attempt = self._attempt(index, tier, last, messages, first=reask == 0)
                if tier.trusted:
                    verdict = Verdict(True, reason="a trusted tier", validator="trusted")
                else:
                    verdict = await run_validator(validate, attempt)
                judged, self.judge_calls = self.judge_calls, []
                if verdict.fault:
                    self._record(index, last, verdict, Decision.STOP, judged)
                    return self._finish(Status.FAILED, (verdict.reason,))
                if verdict.passed:
                    answer = self._record(index, last, verdict, Decision.ACCEPT, judged)
                    delivered = _delivered(verdict)
                    return self._finish(Status.ACCEPTED, (), verdict.value, answer, delivered)
                wanted = Decision.REASK if reask < tier.reasks else Decision.ESCALATE
                # What judging cost counts too; a re-ask will cost about what this attempt did.
                cost = attempt.cost_usd + sum(c.response.cost_usd for c in judged if c.response)
                estimate = cost if wanted is Decision.REASK else 0.0
                decision = self._move(index == top, budget_usd, wanted, cost, estimate)
                self._record(index, last, verdict, decision, judged)
                if decision is not Decision.REASK:
                    break
                conversation = (*conversation, *_reask_turns(attempt.output, verdict))
                kind = CallKind.REASK
            if self.steps[-1].decision is Decision.STOP:
                break
        return self._give_up()

    def _move(
        self,
        at_top: bool,
        budget_usd: float | None,
        wanted: Decision,
        pending: float,
        estimate: float,
    ) -> Decision:
        """``wanted`` (re-ask or escalate), unless the ladder or the budget is spent.

        ``pending`` is the cost of the step being decided (not yet in ``spent``); ``estimate`` is
        what the next call is expected to cost, when it can be known.
        """
        if wanted is Decision.ESCALATE and at_top:
            return Decision.STOP
        if budget_usd is not None and self.spent + pending + estimate >= budget_usd:
            self.budget_stop = True
            return Decision.STOP
        return wanted

    def _attempt(
        self, index: int, tier: Tier, call: Call, messages: tuple[Message, ...], *, first: bool
    ) -> Attempt:
        """The attempt validators judge; a tier's first answer is kept for checks to reuse."""
        response = call.response
        assert response is not None  # only answered calls become attempts
        if first:
            self._keep(call.model, 0, messages, response)
        attempt = Attempt(
            task=self.task,
            tier_index=index,
            tier=tier,
            model=call.model,
            model_served=response.model,
            output=response.text,
            usage=response.usage,
            cost_usd=response.cost_usd,
            latency_s=call.latency_s,
            number=len(self.attempts),
            history=tuple(self.attempts),
            confidence=response.confidence,
            ask=self._asker(tier),
            messages=messages,
        )
        self.attempts.append(attempt)
        return attempt

    def _asker(self, tier: Tier) -> Ask:
        """Let validators call models through the caller; their calls are kept for the record."""

        async def ask(
            model: str,
            messages: tuple[Message, ...],
            *,
            params: Mapping[str, Any] | None = None,
            price: Price | None = None,
            sample: int = 0,
        ) -> Response:
            known = self.answers.get((model, sample, _question(messages)))
            if known is not None:  # already paid for on this task: reused at no cost
                return dataclasses.replace(known, cost_usd=0.0, latency_s=0.0, compute_s=0.0)
            rung = Tier(model, retries=tier.retries, timeout_s=tier.timeout_s, price=price)
            if params:
                rung = dataclasses.replace(rung, params=params)
            calls = await self.caller.call_tier(
                rung, messages, self.task.id, CallKind.VALIDATOR, sample=sample
            )
            self.judge_calls.extend(calls)
            if calls[-1].error is not None:
                raise calls[-1].error
            response = calls[-1].response
            assert response is not None  # a call without an error answered
            self._keep(model, sample, messages, response)
            return response

        return ask

    def _keep(
        self, model: str, sample: int, messages: tuple[Message, ...], response: Response
    ) -> None:
        """Remember a model's answer to a question, so that checks can reuse it for free."""
        self.answers.setdefault((model, sample, _question(messages)), response)

    def _record(
        self, index: int, call: Call, verdict: Verdict, decision: Decision, judged: list[Call]
    ) -> int:
        """Record an answer's step, then its validators' calls; return the answer's step."""
        answer = self._step(index, call, verdict.leaves(), decision)
        for judge_call in judged:
            failed = judge_call.error is not None
            self._step(index, judge_call, (), Decision.ERROR if failed else decision)
        return answer

    def _step(
        self, index: int, call: Call, verdicts: tuple[Verdict, ...], decision: Decision
    ) -> int:
        response = call.response
        usage = response.usage if response is not None else _NO_USAGE
        cost = response.cost_usd if response is not None else 0.0
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
        )
        self.steps.append(step)
        if self.log is not None:
            self.log.emit(step)
        return step.step

    def _give_up(self) -> Outcome:
        """End a task no tier accepted: keep every step, and mark the best rejected answer."""
        answered = [s for s in self.steps if _is_answer(s)]
        if self.budget_stop:
            status = Status.BUDGET_EXHAUSTED
        else:
            status = Status.EXHAUSTED if answered else Status.FAILED
        reasons = self._reasons()
        if status is Status.BUDGET_EXHAUSTED:
            reasons.append(f"task budget reached after spending ${self.spent:.6f}")
        return self._finish(status, tuple(dict.fromkeys(reasons)))

    def _reasons(self) -> list[str]:
        reasons: list[str] = []
        for step in self.steps:
            if step.error:
                reasons.append(step.error)
            reasons.extend(v.reason for v in step.verdicts if not v.passed and v.reason)
        return reasons

    def _to_review(self, index: int) -> Outcome:
        """Hand the task to the human tier: it waits, with its best rejected answer, for review."""
        outcome = self._finish(Status.NEEDS_REVIEW, tuple(dict.fromkeys(self._reasons())))
        return dataclasses.replace(outcome, tier=index, model=self.ladder[index].model)

    def _finish(
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
            latency_s=sum(s.latency_s for s in self.steps),
            reasons=reasons,
            best_step=best,
            compute_s=sum(s.compute_s for s in self.steps),
        )


def _delivered(verdict: Verdict) -> tuple[str, str | None] | None:
    """The answer a passing verdict chose instead of the attempt's own (a vote's), if any."""
    return None if verdict.answer is None else (verdict.answer, verdict.answer_model)


def _question(messages: tuple[Message, ...]) -> int:
    """A key for what was asked: the messages' roles and contents."""
    return hash(tuple((m.get("role"), m.get("content")) for m in messages))


def _for_record(verdict: Verdict) -> Verdict:
    """A verdict as steps keep it: without the parsed value or sub-verdicts."""
    return dataclasses.replace(verdict, value=None, children=(), answer=None, answer_model=None)


def _reask_turns(output: str, verdict: Verdict) -> tuple[Message, Message]:
    problem = verdict.feedback or verdict.reason or "it did not pass validation"
    return (
        {"role": "assistant", "content": output},
        {"role": "user", "content": f"Your answer was rejected: {problem}\nPlease answer again."},
    )


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


def quarantined_outcome(run_id: str, raw: Task | Mapping[str, Any] | Any, reason: str) -> Outcome:
    """The outcome of a task too malformed to run."""
    task_id = raw.get("id") if isinstance(raw, Mapping) else None
    if task_id in (None, ""):
        digest = hashlib.sha256(repr(raw).encode()).hexdigest()[:12]
        task_id = f"<malformed:{digest}>"
    task_type = str(raw.get("type", "default")) if isinstance(raw, Mapping) else "default"
    return _unrun(run_id, str(task_id), task_type, Status.QUARANTINED, reason)


def failed_outcome(run_id: str, task: Task, reason: str) -> Outcome:
    """The outcome of a well-formed task that could not be run at all."""
    return _unrun(run_id, task.id, task.type, Status.FAILED, reason)


def _unrun(run_id: str, task_id: str, task_type: str, status: Status, reason: str) -> Outcome:
    """An outcome with no steps: the task ended before any call was made."""
    return Outcome(
        run_id=run_id,
        task_id=task_id,
        task_type=task_type,
        status=status,
        output=None,
        parsed=None,
        tier=None,
        model=None,
        steps=(),
        cost_usd=0.0,
        latency_s=0.0,
        reasons=(reason,),
    )
