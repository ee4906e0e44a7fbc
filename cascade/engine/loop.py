"""The decision loop for one task: call, validate, decide, record.

Per tier, cheapest first: ask the tier (:mod:`cascade.engine.calls` handles deadlines, retries,
fallbacks and the guard), run the validators on the answer, then let
:func:`~cascade.engine.decide.decide` accept, re-ask the same tier with the validators'
feedback, escalate to the next tier, or stop. Every backend call becomes one step of the
task's :class:`~cascade.engine.record.Record`, logged as it happens.

Validators that call models (a judge, agreement, a vote) do so through the task's *asker*
(:mod:`cascade.engine.answers`): a model's answer to the same question is reused, free.
A task with a deadline checks each re-ask and escalation against its
:class:`~cascade.engine.clock.Clock`; a tier with ``hedge`` races the next one
(:mod:`cascade.engine.hedge`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Sequence

from cascade.engine.answers import Answers, reask_turns
from cascade.engine.call import Call
from cascade.engine.calls import Caller
from cascade.engine.clock import Clock
from cascade.engine.costcap import fit
from cascade.engine.decide import Choice, Moment, decide
from cascade.engine.hedge import Resume, Rung, race
from cascade.engine.outage import OWN_FAULT_ROUNDS, outage_wait, unavailable
from cascade.engine.record import Record
from cascade.engine.unrecorded import at_tier, tracking
from cascade.enums import SIDE_CALLS, CallKind, Decision, Status
from cascade.outcome import Outcome, Step
from cascade.steplog import StepLog
from cascade.types import Attempt, Message, Task, Tier, Verdict
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
        *,
        escalate_on_provider_error: bool = False,
        max_outage_s: float = 600.0,
        steps: list[Step] | None = None,
        deadline_s: float | None = None,
    ) -> None:
        self.task = task
        self.ladder = ladder
        self.validate = validate
        self.caller = caller
        self.log = log
        self.escalate_on_provider_error = escalate_on_provider_error
        self.max_outage_s = max_outage_s
        self.record = Record(task, run_id, log, steps)
        self.attempts: list[Attempt] = []
        self.answers = Answers(caller, task.id)
        self.budget_usd: float | None = None
        self.clock = Clock(task.deadline_s if task.deadline_s is not None else deadline_s)

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
        self.budget_usd = budget_usd
        with tracking(self.record.unrecorded):
            try:
                outcome = await self._climb(messages, budget_usd, order, examples)
                if calibrate:
                    outcome = await self._record_rest(outcome, messages, order, examples)
            except asyncio.CancelledError:
                self.record.cut_off()  # paid for: the calls of the attempt in progress
                raise
        return outcome

    async def _climb(
        self,
        messages: tuple[Message, ...],
        budget_usd: float | None,
        order: Sequence[int],
        examples: tuple[Message, ...],
    ) -> Outcome:
        top = order[-1] if order else -1
        resume: Resume | None = None
        rungs = [Rung.of(i, self.ladder[i], examples, messages, i == top) for i in order]
        for position, index in enumerate(order):
            rung = rungs[position]
            if rung is None:
                return self.record.to_review(index, self.ladder[index].model)
            following = rungs[position + 1] if position + 1 < len(rungs) else None
            ended = await self._ask_tier(rung, following, messages, budget_usd, resume)
            resume = None
            if isinstance(ended, Resume):
                resume = ended
                continue
            if isinstance(ended, Outcome):
                return ended
            if ended == "budget":
                return self.record.give_up(budget=True)
            if ended == "deadline":
                return self.record.give_up(budget=False, deadline=True, why=self.clock.late)
            if ended == "top":
                break
        return self.record.give_up(budget=False)

    async def _ask_tier(
        self,
        rung: Rung,
        following: Rung | None,
        messages: tuple[Message, ...],
        budget_usd: float | None,
        resume: Resume | None,
    ) -> Outcome | str | Resume:
        """Ask one tier, re-asking while the decision says so.

        Returns the outcome when the task ends here, else why the tier was left (or where the
        next tier goes on, after a hedge asked it). ``resume`` goes on from a hedge's ask.
        """
        index, tier, conversation = rung.index, rung.tier, rung.conversation
        confidence = self.confidence(tier)
        kind, first = CallKind.CALL, 1
        if resume is not None:
            if resume.why is not None:  # the hedge's answer left the tier already
                left = self._in_time(Choice(Decision.ESCALATE, "escalate"), tier, following)
                return resume.why if resume.why != "escalate" else left.why
            first, conversation, kind = resume.asked + 1, resume.conversation, CallKind.REASK
        elif self.clock.deadline_s is not None:  # even a first ask must answer in time
            start = self._in_time(Choice(Decision.REASK, "reask"), tier, following, first=True)
            if start.decision is not Decision.REASK:
                return start.why
        for asked in range(first, tier.reasks + 2):
            hedge_after = None
            if asked == 1 and tier.hedge and following is not None and self.clock.deadline_s:
                expected = self.caller.expected_s(following.tier)  # a p90: only when it matters
                hedge_after = self.clock.hedge_after(tier, expected)
            calls: list[Call] | Outcome | Resume
            if hedge_after is not None and following is not None:
                calls = await race(self, rung, following, messages, budget_usd, hedge_after)
            else:
                calls = await self.answer(index, tier, conversation, kind, asked - 1, confidence)
            if not isinstance(calls, list):
                return calls
            settled = await self.settle(rung, following, calls, messages, asked, budget_usd)
            if not isinstance(settled, Verdict):
                return settled
            conversation = (*conversation, *reask_turns(calls[-1].response, settled))
            kind = CallKind.REASK
        return "escalate"

    async def settle(
        self,
        rung: Rung,
        following: Rung | None,
        calls: list[Call],
        messages: tuple[Message, ...],
        asked: int,
        budget_usd: float | None,
        *,
        reasks: int | None = None,
    ) -> Outcome | str | Verdict:
        """Judge one ask's answer, decide, and record it.

        Returns the outcome, why the tier was left, or the rejecting verdict when the tier is
        asked again (``reasks`` overrides its re-ask budget).
        """
        index, tier = rung.index, rung.tier
        *errors, last = calls
        for call in errors:
            self.record.step(index, call, (), Decision.ERROR)
        verdict, judged, cost = None, [], 0.0
        if last.response is not None:
            attempt = self._attempt(index, tier, last, messages, first=asked == 1)
            validate = self._validator(tier)
            verdict = _TRUSTED if tier.trusted else await run_validator(validate, attempt)
            judged = self.answers.take_calls()
            self.clock.add(judged)
            # What judging cost counts too; a re-ask will cost about what this ask did.
            cost = attempt.cost_usd + sum(c.response.cost_usd for c in judged if c.response)
        reasks_allowed = tier.reasks if reasks is None else reasks
        moment = Moment(verdict, asked, reasks_allowed, rung.at_top, self.record.spent, cost,
                        budget_usd)  # fmt: skip
        choice = self._in_time(decide(moment), tier, following)
        if verdict is None:
            self.record.step(index, last, (), choice.decision)
            return choice.why
        step = self.record.answer(index, last, verdict, choice.decision, judged)
        if choice.why == "fault":
            return self.record.finish(Status.FAILED, (verdict.reason,))
        if choice.why == "accepted":
            delivered = None if verdict.answer is None else (verdict.answer, verdict.answer_model)
            return self.record.finish(Status.ACCEPTED, (), verdict.value, step, delivered)
        return verdict if choice.decision is Decision.REASK else choice.why

    def _validator(self, tier: Tier) -> Validator:
        return self.validate if tier.validate is None else tier.validate

    def confidence(self, tier: Tier) -> bool:
        """Whether ``tier``'s answers have their confidence read (so backends pay for it)."""
        return not tier.trusted and reads_confidence(self._validator(tier))

    def _in_time(
        self, choice: Choice, tier: Tier, following: Rung | None, *, first: bool = False
    ) -> Choice:
        """``choice``, or what fits in time instead (see :meth:`Clock.fit`)."""
        up = None if following is None else following.tier
        return self.clock.fit(choice, tier, up, self.caller.expected_s, first=first)

    async def answer(
        self,
        index: int,
        tier: Tier,
        conversation: tuple[Message, ...],
        kind: CallKind,
        reask: int,
        confidence: bool,
    ) -> list[Call] | Outcome:
        """The tier's calls for one ask, the last of which answered; or how the task ended.

        When no model of the tier answers, an error that time cures (a timeout, a 5xx, a 429, an
        open breaker) makes the task wait for the provider and ask again, until the outage
        bound; any other error (a refused key, a bad request) fails the task at once. Neither
        escalates, unless the plan says provider errors do: then the calls are returned as
        they are, and the decision escalates.
        """
        fitted = self._within_budget(index, tier, conversation)
        if isinstance(fitted, Outcome):
            return fitted
        tier = fitted
        at_tier(index)
        waits, began = 0, time.monotonic()
        while True:
            calls = await self.caller.call_tier(
                tier, conversation, self.task.id, kind, reask=reask, confidence=confidence
            )
            self.clock.add(calls)
            if calls[-1].response is not None or self.escalate_on_provider_error:
                return calls
            wait = self._unanswered(index, tier, calls, waits, began)
            if isinstance(wait, Outcome):
                return wait
            await self.caller.retry.sleep(wait)
            self.record.waited_s += wait
            waits += 1

    def _within_budget(
        self, index: int, tier: Tier, conversation: tuple[Message, ...]
    ) -> Tier | Outcome:
        """The tier to ask within the task's budget, or the task ended ``budget_exhausted``.

        See :mod:`~cascade.engine.costcap`: a tier may be asked for a shorter answer.
        """
        if self.budget_usd is None:
            return tier
        left = self.budget_usd - self.record.spent
        fitted, estimate = fit(tier, conversation, left, self.caller.quote)
        if fitted is not None:
            return fitted
        assert estimate is not None  # only a priced call is refused
        why = f"tier {index} ({tier.model}): {estimate.explain(left, self.budget_usd)}"
        return self.record.give_up(budget=True, why=why)

    def _unanswered(
        self, index: int, tier: Tier, calls: list[Call], waits: int, began: float
    ) -> float | Outcome:
        """Record calls none of which answered; the wait before asking again, or the end.

        The task ends on an error time does not cure, a fault of its own, or the outage bound.
        """
        last = calls[-1]
        for call in calls:
            self.record.step(index, call, (), Decision.ERROR)
        errors = [c.error for c in calls if c.error is not None]
        self.record.waited_s += sum(c.latency_s for c in calls)
        if not any(e.passes for e in errors):
            return self._failed(index, tier, f"cannot be asked: {last.error}")
        if waits >= OWN_FAULT_ROUNDS and self.caller.answered_since(tier, began):
            # Not an outage: the provider answers other tasks, and keeps failing this one.
            return self._failed(index, tier, f"answers other tasks but not this one: "
                                f"{last.error}")  # fmt: skip
        left_s = self.max_outage_s - self.record.waited_s
        wait = outage_wait(self.caller.retry, left_s, waits, lambda: self.caller.retry_in_s(tier))
        if wait is None:
            reason = unavailable(self.record.outage_since, self.record.waited_s)
            return self._failed(index, tier, f"{reason}: {last.error}")
        if self.clock.waits_past(wait, tier.model, last.error):
            return self.record.give_up(budget=False, deadline=True, why=self.clock.late)
        if self.record.outage_since is None:
            self.record.outage_since = time.time()
        if self.log is not None:
            self.log.event(
                "cascade.wait",
                task_id=self.task.id,
                tier=index,
                model=tier.model,
                seconds=round(wait, 3),
                error=str(last.error),
            )
        return wait

    def _failed(self, index: int, tier: Tier, why: str) -> Outcome:
        """End the task ``failed``: no model of tier ``index`` could answer it."""
        reason = f"tier {index} ({tier.model}) {why}"
        others = [r for r in self.record.reasons() if r not in why]
        return self.record.finish(Status.FAILED, (reason, *dict.fromkeys(others)))

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
            at_tier(index)
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
            self.answers.keep(call.model, 0, messages, response)
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
            ask=self.answers.asker(tier),
            messages=messages,
        )
        self.attempts.append(attempt)
        return attempt
