"""Shadow audits of accepted answers, run after the result is written.

A worker hands each outcome it has recorded to :meth:`Auditor.consider`. An accepted answer of
a tier below the top of its ladder (or of the top, when the audit model is another model: see
:func:`cascade.audit.plan.audited_tiers`), in the policy's ``[audit]`` sample (see
:mod:`cascade.audit.plan`), is audited in the background: the audit model is asked the same
task and its answer compared with the accepted one by the agreement validator's comparison,
or a judge model grades the accepted answer. The audit's calls are steps of kind ``audit``
(decision ``accept`` when the audit agrees, ``reject`` when not, ``error`` for a call that
failed), appended to the task's steps in the store under an execution of their own. They
change no result; their cost counts in the job's budget and in the audit's own cap.

The cap (``max_cost_usd``) holds with audits in flight, in every worker: each audit reserves its
worst cost (its prompt and its longest answer, as :func:`cascade.engine.costcap.fit` prices a
task's call) before it calls, and settles it with the real cost after. An audit that could never
fit beside what was spent is skipped and counted; one that fits once the audits in flight
settle waits for them.

An audit model that cannot answer is logged (a ``cascade.audit`` event) and skipped.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, cast

from cascade.audit.plan import AuditPlan, audited_tiers, sampled
from cascade.budget import JobBudget
from cascade.engine import first_messages
from cascade.engine.answers import Answers
from cascade.engine.call import Call
from cascade.engine.calls import Caller
from cascade.engine.costcap import fit
from cascade.engine.record import Record
from cascade.engine.unrecorded import Unrecorded, tracking
from cascade.enums import CallKind, Decision, Status
from cascade.errors import ProviderError
from cascade.outcome import Outcome, Step
from cascade.steplog import StepLog
from cascade.store import Store
from cascade.store.unsaved import SideFile, write_failure
from cascade.types import Ask, Attempt, Message, Task, Tier, Usage, Verdict
from cascade.validators.agreement import Compare, compare_mode, same_answers
from cascade.validators.judge import judge

__all__ = ["AuditTarget", "Auditor"]

_RESERVE_POLL_S = 0.02
"""How often an audit that would fit once the audits in flight settle looks again."""


@dataclass(frozen=True, slots=True)
class AuditTarget:
    """One task type's audit: its plan, the tiers it audits, what the tiers are sent."""

    plan: AuditPlan
    end: int
    """The tiers below this one are audited (:func:`cascade.audit.plan.audited_tiers`)."""
    prompt: str
    examples: tuple[Message, ...]
    spent: JobBudget
    """The audit's own spend (shared by every worker), against ``plan.max_cost_usd``."""

    @classmethod
    def of(cls, plan: AuditPlan, ladder: tuple[Tier, ...], prompt: str,
           examples: tuple[Message, ...], spent: JobBudget) -> AuditTarget:  # fmt: skip
        """The target of a policy's audit."""
        end = audited_tiers(plan, [tier.model for tier in ladder])
        return cls(plan, end, prompt, examples, spent)


class Auditor:
    """Audit a worker's accepted answers in the background (see the module's doc)."""

    def __init__(
        self,
        targets: Mapping[str, AuditTarget],
        caller: Caller,
        store: Store,
        run_id: str,
        *,
        budget: JobBudget | None = None,
        log: StepLog | None = None,
        concurrency: int = 4,
    ) -> None:
        self._targets = dict(targets)
        self._caller = caller
        self._store = store
        self._run_id = run_id
        self._budget = budget
        self._log = log
        self._room = asyncio.Semaphore(concurrency)
        self._running: set[asyncio.Task[None]] = set()

    def consider(self, task: Task, outcome: Outcome) -> bool:
        """Start auditing ``outcome`` if it is in the sample; whether it was."""
        target = self._targets.get(task.type)
        tier = outcome.tier
        if target is None or outcome.status is not Status.ACCEPTED or tier is None:
            return False
        if tier >= target.end or not sampled(target.plan, task.type, tier, task.id):
            return False
        self._spawn(self._audit(target, task, outcome, tier))
        return True

    async def drain(self, timeout_s: float | None = None) -> int:
        """Wait for the audits in flight (at most ``timeout_s``); cancel the rest, logged.

        Returns how many were cancelled; their calls so far are stored all the same, as steps
        of decision ``cancel``.
        """
        deadline = None if timeout_s is None else asyncio.get_running_loop().time() + timeout_s
        while self._running:
            left = None if deadline is None else deadline - asyncio.get_running_loop().time()
            if left is not None and left <= 0:
                break
            await asyncio.wait(set(self._running), timeout=left)
        cut = list(self._running)
        for running in cut:
            running.cancel()
        await asyncio.gather(*cut, return_exceptions=True)
        if cut and self._log is not None:
            self._log.event("cascade.audit", what="cut off", audits=len(cut), run_id=self._run_id)
        return len(cut)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        running = asyncio.ensure_future(work)
        self._running.add(running)
        running.add_done_callback(self._finished)

    def _finished(self, running: asyncio.Task[None]) -> None:
        """Forget a finished audit; one that raised is logged, never left unretrieved."""
        self._running.discard(running)
        if running.cancelled() or (exc := running.exception()) is None:
            return
        if self._log is not None:
            self._log.event("cascade.audit", what="failed", run_id=self._run_id,
                            error=f"{type(exc).__name__}: {exc}"[:300])  # fmt: skip

    async def _audit(self, target: AuditTarget, task: Task, outcome: Outcome, tier: int) -> None:
        plan = target.plan
        async with self._room:
            messages = (*target.examples, *first_messages(task, target.prompt))
            reserved = await self._reserve(target, messages, outcome)
            if isinstance(reserved, str):
                self._event("skipped", task, tier, plan.model, why=reserved)
                return
            answers = Answers(self._caller, task.id)  # its calls are kept as the audit's steps
            ask = answers.asker(Tier(plan.model), CallKind.AUDIT)
            held = Unrecorded(tier)
            try:
                with tracking(held):
                    verdict = await self._verdict(plan, task, outcome, messages, ask)
            except asyncio.CancelledError:  # cut off: what it paid for is kept all the same
                calls = [c for _, c in held.left()]
                self._record(target, task, outcome, tier, calls, None, reserved)
                raise
            except Exception as exc:  # noqa: BLE001  # a check that broke: its calls are still paid
                why = f"the audit failed: {type(exc).__name__}: {exc}"
                verdict = Verdict(False, reason=why[:300], fault=True)  # logged as failed
        self._record(target, task, outcome, tier, answers.take_calls(), verdict, reserved)

    async def _reserve(self, target: AuditTarget, messages: tuple[Message, ...],
                       outcome: Outcome) -> float | str:  # fmt: skip
        """The audit's worst cost, reserved against its cap; or why it is skipped.

        An audit the backend cannot price reserves nothing, and is skipped once the cap is spent.
        """
        plan, cap = target.plan, target.plan.max_cost_usd
        if self._budget is not None and self._budget.exhausted():
            return "the job's budget is spent"
        if cap is None:
            return 0.0
        asked = messages
        if plan.judge:  # the judge is shown the rubric and the answer beside the task
            grading = f"{plan.rubric}\n{outcome.output or ''}"
            asked = (*messages, {"role": "user", "content": grading})
        tier = Tier(plan.model, params=plan.params, price=plan.price)
        _, estimate = fit(tier, asked, math.inf, self._caller.quote)
        worst = 0.0 if estimate is None else estimate.cost_usd
        while not target.spent.reserve(worst):
            if not target.spent.could_fit(worst):
                target.spent.refuse()
                longest = "" if estimate is None else f" ({estimate.answer_tokens} answer tokens)"
                return (f"the audit cap of ${cap:g} was reached: this audit could cost up to "
                        f"${worst:.6f}{longest}, and ${target.spent.spent_usd:.6f} is spent; "
                        "max_tokens in the audit's params bounds its worst cost")  # fmt: skip
            await asyncio.sleep(_RESERVE_POLL_S)  # the audits in flight will settle
        return worst

    async def _verdict(self, plan: AuditPlan, task: Task, outcome: Outcome,
                       question: tuple[Message, ...], ask: Ask) -> Verdict:  # fmt: skip
        """Whether the audit agrees with the accepted answer."""
        output = outcome.output or ""
        try:
            if plan.judge:
                grade = judge(plan.rubric, model=plan.model, params=plan.params, price=plan.price)
                attempt = Attempt(task, outcome.tier or 0, Tier(outcome.model or "?"),
                                  outcome.model or "?", outcome.model or "?", output, Usage(),
                                  0.0, 0.0, ask=ask, messages=question)  # fmt: skip
                return await grade(attempt)
            response = await ask(plan.model, question, params=plan.params, price=plan.price)
        except ProviderError as exc:
            return Verdict(False, reason=f"no audit from {plan.model}: {exc}", fault=True)
        mode = compare_mode(cast("Compare", plan.compare), task, output, response.text)
        if same_answers(output, response.text, mode):
            return Verdict(True, reason=f"{plan.model} gave the same answer", score=1.0)
        return Verdict(False, reason=f"{plan.model} answered differently: {response.text[:200]!r}",
                       score=0.0)  # fmt: skip

    def _record(self, target: AuditTarget, task: Task, outcome: Outcome, tier: int,
                calls: list[Call], verdict: Verdict | None, reserved: float) -> None:  # fmt: skip
        """The audit's calls as steps of the task; its cost counted, its reservation settled.

        With no ``verdict``, the audit was cut off: its calls so far are steps of decision
        ``cancel`` (a call cut off in flight at its prompt's price).
        """
        record = Record(task, self._run_id, None, list(outcome.steps))
        for call in calls:
            answered = (call.response is not None and call is calls[-1] and verdict is not None
                        and not verdict.fault)  # fmt: skip
            decision = Decision.ERROR if verdict is not None else Decision.CANCEL
            if answered and verdict is not None:
                decision = Decision.AGREE if verdict.passed else Decision.DISAGREE
            verdicts = (verdict,) if answered and verdict is not None else ()
            record.step(tier, call, verdicts, decision, cost_usd=call.cut_usd)
        steps = record.steps[len(outcome.steps) :]
        cost = sum(step.cost_usd for step in steps)
        target.spent.settle(reserved, cost)
        if steps:
            self._store_steps(steps)
        if self._budget is not None:
            self._budget.add(cost)
        if verdict is None:
            return  # the drain logs the audits it cut off
        what = "failed" if verdict.fault else "agreed" if verdict.passed else "disagreed"
        self._event(what, task, tier, target.plan.model, cost_usd=cost,
                    why=None if verdict.passed else verdict.reason)  # fmt: skip

    def _store_steps(self, steps: list[Step]) -> None:
        """Append an audit's steps; when the store cannot take them, keep them in its side file."""
        execution = f"audit-{uuid.uuid4().hex}"
        try:
            self._store.append_steps(steps, execution)
        except Exception as exc:
            if (failure := write_failure(exc, self._store.path)) is None:
                raise
            SideFile(self._store.path).keep_steps(steps, execution, failure)

    def _event(self, what: str, task: Task, tier: int, model: str, **fields: Any) -> None:
        if self._log is not None:
            self._log.event("cascade.audit", what=what, task_id=task.id, task_type=task.type,
                            tier=tier, model=model, run_id=self._run_id, **fields)  # fmt: skip
