"""A hedge: the next tier asked early, racing the tier below, when a task's deadline draws near.

A tier with ``hedge = true`` is asked as usual; if it has not answered by the time the next
tier's expected latency (its p90) would use up what is left of the task's ``deadline_s``, the
next tier is asked too, while the first call runs on. The answers are judged as they arrive,
first come first: the first one accepted wins, and the other call is cancelled (or, when it
had already answered, its answer dropped). The loser is a step of decision ``cancel``, and what
it cost counts: a recorded answer's own cost, or for a call cut off in flight its prompt
tokens at the model's input price, since providers bill what they were sent.

When neither answer passes, the climb goes on from the hedged tier: re-asked with its
validators' feedback if it has re-asks left, else past it. The tier below is not re-asked
once its hedge has started.

Time is the task's clock: a call's latency, recorded (a replay, a scripted backend with virtual
time) or measured. A leg is judged once the clock has really reached its end, so a replay,
whose calls return at once, resolves a race exactly as the recorded latencies say.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Protocol

from cascade.engine.answers import reask_turns
from cascade.engine.call import Call
from cascade.engine.calls import Caller
from cascade.engine.clock import Clock
from cascade.engine.record import Record
from cascade.engine.unrecorded import Unrecorded, branch_task
from cascade.enums import CallKind, Decision
from cascade.outcome import Outcome
from cascade.steplog import StepLog
from cascade.types import Message, Task, Tier, Verdict

__all__ = ["Climb", "Resume", "Rung", "race"]

_SLACK_S = 0.01
"""A leg whose end the wall clock has reached (within this) cannot be overtaken."""


@dataclass(frozen=True, slots=True)
class Rung:
    """A tier as one task climbs it: where in the ladder, what it is sent, whether it is last."""

    index: int
    tier: Tier
    conversation: tuple[Message, ...]
    at_top: bool

    @classmethod
    def of(
        cls,
        index: int,
        tier: Tier,
        examples: tuple[Message, ...],
        messages: tuple[Message, ...],
        at_top: bool,
    ) -> Rung | None:
        """Tier ``index`` as a task climbs it (worked examples first, if it takes them)."""
        if tier.is_human:
            return None  # a person's queue, not a model to ask
        return cls(index, tier, (*examples, *messages) if tier.few_shot else messages, at_top)


@dataclass(frozen=True, slots=True)
class Resume:
    """Where the hedged tier goes on after a race neither leg won.

    ``asked`` asks so far and the ``conversation`` to re-ask it with; or ``why`` it was left
    already (``escalate``, ``top``, ``budget``, ``deadline``).
    """

    asked: int = 1
    conversation: tuple[Message, ...] = ()
    why: str | None = None


class Climb(Protocol):
    """What a race needs of the task it runs in (a :class:`~cascade.engine.loop.TaskRun`).

    The race asks and judges through the task's own :meth:`answer` and :meth:`settle`, so a
    leg's answer is judged, decided and recorded as any other ask of the tier would be.
    """

    task: Task
    log: StepLog | None
    caller: Caller
    clock: Clock
    record: Record

    async def answer(
        self,
        index: int,
        tier: Tier,
        conversation: tuple[Message, ...],
        kind: CallKind,
        reask: int,
        confidence: bool,
    ) -> list[Call] | Outcome:
        """The tier's calls for one ask, the last of which answered; or how the task ended."""
        ...

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
        """Judge one ask's answer, decide, and record it."""
        ...

    def confidence(self, tier: Tier) -> bool:
        """Whether ``tier``'s answers have their confidence read."""
        ...


@dataclass(slots=True)
class _Leg:
    """One side of a race: a tier's first ask, started ``start_s`` after the race began."""

    rung: Rung
    start_s: float
    job: asyncio.Task[list[Call] | Outcome]
    calls: Unrecorded | None
    """The leg's calls no step records yet (see :mod:`~cascade.engine.unrecorded`)."""

    @classmethod
    def start(cls, run: Climb, rung: Rung, start_s: float, kind: CallKind) -> _Leg:
        """Ask ``rung`` as a task of its own, its calls held in a branch of their own."""
        job, calls = branch_task(_ask(run, rung, kind), rung.index)
        return cls(rung, start_s, job, calls)

    @property
    def end_s(self) -> float:
        """When on the race's clock its calls ended (its start, when it got no answer)."""
        result = self.job.result()
        if isinstance(result, Outcome):
            return self.start_s
        return self.start_s + sum(c.latency_s for c in result)


async def race(
    run: Climb,
    rung: Rung,
    following: Rung,
    messages: tuple[Message, ...],
    budget_usd: float | None,
    hedge_after: float,
) -> list[Call] | Outcome | Resume:
    """Ask ``rung``, and ``following`` too once ``hedge_after`` seconds pass without an answer.

    Returns the first ask's calls when no hedge was started (or the hedge got no answer): the
    climb goes on as usual. Otherwise the race's outcome, or where the hedged tier goes on.
    """
    began, clock, first_step = time.monotonic(), run.clock.calls_s, len(run.record.steps)
    primary = _Leg.start(run, rung, 0.0, CallKind.CALL)
    hedge: _Leg | None = None
    try:
        await asyncio.wait({primary.job}, timeout=hedge_after)
        if primary.job.done():
            if isinstance(primary.job.result(), Outcome) or primary.end_s <= hedge_after:
                return primary.job.result()  # answered before the hedge was due
            start = hedge_after  # a recorded latency: the hedge started while it ran
        else:
            start = time.monotonic() - began
        hedge = _Leg.start(run, following, start, CallKind.HEDGE)
        if run.log is not None:
            run.log.event("cascade.hedge", task_id=run.task.id, tier=following.index,
                          model=following.tier.model, after_s=round(start, 3))  # fmt: skip
        ended = await _resolve(run, primary, hedge, clock, began, messages, budget_usd)
    finally:
        cut = [leg.job for leg in (primary, hedge) if leg is not None and not leg.job.done()]
        for job in cut:
            job.cancel()
        # Cut off: what the legs spent in flight is held before the task records what is left.
        await asyncio.gather(*cut, return_exceptions=True)
    if isinstance(ended, list):
        return ended  # the climb records these calls as usual
    for leg in (primary, hedge):  # the race recorded its legs' calls itself
        if leg is not None and leg.calls is not None:
            run.record.unrecorded.close(leg.calls)
    taken = sum(s.latency_s for s in run.record.steps[first_step:])
    run.record.overlap_s += max(0.0, taken - (run.clock.calls_s - clock))
    return run.record.refresh(ended) if isinstance(ended, Outcome) else ended


async def _ask(run: Climb, rung: Rung, kind: CallKind) -> list[Call] | Outcome:
    tier = rung.tier
    return await run.answer(rung.index, tier, rung.conversation, kind, 0, run.confidence(tier))


async def _resolve(
    run: Climb,
    primary: _Leg,
    hedge: _Leg,
    clock: float,
    began: float,
    messages: tuple[Message, ...],
    budget_usd: float | None,
) -> list[Call] | Outcome | Resume:
    """Judge the legs as they end, first come first, until one is accepted or both are not."""
    pending, extra = [primary, hedge], 0.0
    after_hedge = Resume(why="escalate")
    while pending:
        leg = await _next(pending, began)
        pending.remove(leg)
        calls = leg.job.result()
        if isinstance(calls, Outcome):  # no answer (its errors are recorded)
            if leg is primary:
                continue  # the hedge decides
            if primary in pending:
                return await primary.job  # as if no hedge had been asked
            return calls  # the hedged tier could not be asked: the task ends as it says
        run.clock.calls_s = clock + leg.end_s + extra
        ask = leg.rung
        if leg is primary:  # the hedge is its escalation: no re-ask, no deadline check
            settled = await run.settle(ask, None, calls, messages, 1, budget_usd, reasks=0)
        else:
            settled = await run.settle(ask, None, calls, messages, 1, budget_usd)
        extra = run.clock.calls_s - (clock + leg.end_s)
        if isinstance(settled, Outcome):
            for loser in pending:
                await _cancel(run, loser, leg.end_s, began)
            return settled
        if leg is hedge:
            after_hedge = _resumed(ask, calls, settled)
    return after_hedge


def _resumed(rung: Rung, calls: list[Call], settled: str | Verdict) -> Resume:
    """Where the hedged tier goes on after its answer was rejected."""
    if isinstance(settled, str):
        return Resume(why=settled)
    return Resume(1, (*rung.conversation, *reask_turns(calls[-1].response, settled)))


async def _next(pending: list[_Leg], began: float) -> _Leg:
    """The leg to judge next: the earliest to end, once no other leg can end before it."""
    while True:
        done = [leg for leg in pending if leg.job.done()]
        if done:
            first = min(done, key=lambda leg: leg.end_s)
            if len(done) == len(pending) or first.end_s <= time.monotonic() - began + _SLACK_S:
                return first
        running = {leg.job for leg in pending if not leg.job.done()}
        await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)


async def _cancel(run: Climb, leg: _Leg, won_at: float, began: float) -> None:
    """Record the loser of a race: cancelled in flight, or its answer dropped; its cost counts."""
    index, tier = leg.rung.index, leg.rung.tier
    if not leg.job.done():
        leg.job.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await leg.job
        ran = max(0.0, time.monotonic() - began - leg.start_s)
        cost = run.caller.sent_usd(tier, leg.rung.conversation)
        kind = CallKind.CALL if leg.start_s == 0.0 else CallKind.HEDGE
        run.record.step(index, Call(tier.model, kind, ran), (), Decision.CANCEL, cost_usd=cost)
        return
    calls = leg.job.result()
    if isinstance(calls, Outcome):
        return
    at = leg.start_s
    for number, call in enumerate(calls):
        cut = min(call.latency_s, max(0.0, won_at - at))
        at += call.latency_s
        last = number == len(calls) - 1
        kept = Call(call.model, call.kind, cut, call.response, call.error)
        run.record.step(index, kept, (), Decision.CANCEL if last else Decision.ERROR)
