"""The decision loop for one task: call, validate, decide, record.

Per tier, cheapest first: ask the tier (:mod:`cascade.engine.calls` handles deadlines, retries,
fallbacks and the guard), run the validators on the answer, then let
:func:`~cascade.engine.decide.decide` accept, re-ask the same tier with the validators'
feedback, escalate to the next tier, or stop. Every backend call becomes one step of the
task's :class:`~cascade.engine.record.Record`, logged as it happens.

Validators that call models (a judge, agreement, a vote) do so through the task's *asker*,
which keeps every answer the task has: a model's answer to the same question is reused, free.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from cascade.engine.calls import Call, Caller
from cascade.engine.decide import Moment, decide
from cascade.engine.record import Record
from cascade.enums import SIDE_CALLS, CallKind, Decision, Status
from cascade.outcome import Outcome
from cascade.steplog import StepLog
from cascade.types import Ask, Attempt, Message, Price, Response, Task, Tier, Verdict
from cascade.validators.base import Validator, reads_confidence, run_validator

__all__ = ["TaskRun"]

_TRUSTED = Verdict(True, reason="a trusted tier", validator="trusted")


class TaskRun:
    """One task climbing the ladder: its record, its answers, its asks."""

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
        self.record = Record(task, run_id, log)
        self.attempts: list[Attempt] = []
        self.judge_calls: list[Call] = []
        self.answers: dict[tuple[str, int, int], Response] = {}
        """Answers this task already has, by (model, sample, question): reused, not paid again."""
        self._asked: tuple[Message, ...] = ()
        self._asked_key = _question(())

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
                return self.record.to_review(index, tier.model)
            conversation = (*examples, *messages) if tier.few_shot else messages
            ended = await self._ask_tier(index, tier, conversation, messages, index == top,
                                         budget_usd)  # fmt: skip
            if isinstance(ended, Outcome):
                return ended
            if ended == "budget":
                return self.record.give_up(budget=True)
            if ended == "top":
                break
        return self.record.give_up(budget=False)

    async def _ask_tier(
        self,
        index: int,
        tier: Tier,
        conversation: tuple[Message, ...],
        messages: tuple[Message, ...],
        at_top: bool,
        budget_usd: float | None,
    ) -> Outcome | str:
        """Ask one tier, re-asking while the decision says so.

        Returns the outcome when the task ends here, else why the tier was left.
        """
        validate = self.validate if tier.validate is None else tier.validate
        confidence = not tier.trusted and reads_confidence(validate)
        kind = CallKind.CALL
        for asked in range(1, tier.reasks + 2):
            *errors, last = await self.caller.call_tier(
                tier, conversation, self.task.id, kind, reask=asked - 1, confidence=confidence
            )
            for call in errors:
                self.record.step(index, call, (), Decision.ERROR)
            verdict, judged, cost = None, [], 0.0
            if last.response is not None:
                attempt = self._attempt(index, tier, last, messages, first=asked == 1)
                verdict = _TRUSTED if tier.trusted else await run_validator(validate, attempt)
                judged, self.judge_calls = self.judge_calls, []
                # What judging cost counts too; a re-ask will cost about what this ask did.
                cost = attempt.cost_usd + sum(c.response.cost_usd for c in judged if c.response)
            moment = Moment(verdict, asked, tier.reasks, at_top, self.record.spent, cost,
                            budget_usd)  # fmt: skip
            choice = decide(moment)
            if verdict is None:
                self.record.step(index, last, (), choice.decision)
                return choice.why
            step = self.record.answer(index, last, verdict, choice.decision, judged)
            if choice.why == "fault":
                return self.record.finish(Status.FAILED, (verdict.reason,))
            if choice.why == "accepted":
                delivered = (
                    None if verdict.answer is None else (verdict.answer, verdict.answer_model)
                )
                return self.record.finish(Status.ACCEPTED, (), verdict.value, step, delivered)
            if choice.decision is not Decision.REASK:
                return choice.why
            conversation = (*conversation, *_reask_turns(last.response, verdict))
            kind = CallKind.REASK
        return "escalate"

    async def _record_rest(
        self,
        outcome: Outcome,
        messages: tuple[Message, ...],
        order: Sequence[int],
        examples: tuple[Message, ...],
    ) -> Outcome:
        """Ask every model tier the ladder did not reach, for the record only."""
        steps = self.record.steps
        asked = {s.tier for s in steps if s.kind not in SIDE_CALLS}
        for index in order:
            tier = self.ladder[index]
            if tier.is_human or index in asked:
                continue
            conversation = (*examples, *messages) if tier.few_shot else messages
            calls = await self.caller.call_tier(
                tier, conversation, self.task.id, CallKind.CALIBRATION, confidence=True
            )
            for call in calls:
                decision = Decision.RECORD if call.response else Decision.ERROR
                self.record.step(index, call, (), decision)
        return dataclasses.replace(
            outcome,
            steps=tuple(steps),
            cost_usd=sum(s.cost_usd for s in steps),
            compute_s=sum(s.compute_s for s in steps),
        )

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
        if messages is not self._asked:
            self._asked, self._asked_key = messages, _question(messages)
        self.answers.setdefault((model, sample, self._asked_key), response)


def _question(messages: tuple[Message, ...]) -> int:
    """A key for what was asked: the messages' roles and contents."""
    return hash(tuple((m.get("role"), m.get("content")) for m in messages))


def _reask_turns(response: Response | None, verdict: Verdict) -> tuple[Message, Message]:
    problem = verdict.feedback or verdict.reason or "it did not pass validation"
    return (
        {"role": "assistant", "content": response.text if response is not None else ""},
        {"role": "user", "content": f"Your answer was rejected: {problem}\nPlease answer again."},
    )
