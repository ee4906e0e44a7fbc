"""The auditor at the edges the sixth mutation run left open (issue 34).

Each test states what a user of ``cascade run`` would find: what a drain of zero seconds cuts,
what the store holds when a drain returns, an empty answer judged and priced as empty, an audit
that waits for the audits in flight, and the steps of an audit of a real outcome or of a retry.
"""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from cascade import Cascade
from cascade.audit.auditor import Auditor, AuditTarget
from cascade.audit.plan import AuditPlan
from cascade.backends import ScriptedBackend
from cascade.backends.scripted import Hang, Reply
from cascade.budget import JobBudget
from cascade.engine.calls import Caller
from cascade.enums import CallKind, Decision, Status
from cascade.errors import ServerError
from cascade.outcome import Outcome, Step
from cascade.retry import RetryPolicy
from cascade.steplog import StepLog, capture_steps
from cascade.store import Store
from cascade.tokens import count_tokens
from cascade.types import Price, Request, Task, Tier, Usage

TASK = Task("t1", input="q", type="echo")
PRICED = Price(1000.0, 2000.0)
"""A thousandth of a dollar a prompt token, two thousandths an answer token."""


def _auditor(
    backend: ScriptedBackend,
    store: Store,
    plan: AuditPlan,
    *,
    budget: JobBudget | None = None,
    run_id: str = "r1",
    retry: RetryPolicy | None = None,
) -> tuple[Auditor, AuditTarget]:
    """An auditor of task type echo on a cheap-then-dear ladder, its cap the plan's."""
    spent = JobBudget(plan.max_cost_usd)
    target = AuditTarget.of(plan, (Tier("cheap"), Tier("dear")), "{input}", (), spent)
    caller = Caller(backend, retry or RetryPolicy())
    auditor = Auditor({"echo": target}, caller, store, run_id, budget=budget, log=StepLog())
    return auditor, target


def _accepted(output: str = "yes", task_id: str = "t1") -> Outcome:
    """An answer accepted at tier 0, with no steps of its own."""
    return Outcome("r1", task_id, "echo", Status.ACCEPTED, output, None, 0, "cheap", (), 0.0, 0.0)


def _audit_events(events: list[dict[str, object]]) -> list[object]:
    return [e["what"] for e in events if e["event"] == "cascade.audit"]


def test_a_grace_of_zero_cuts_the_audits_in_flight_even_on_a_clock_that_has_not_moved(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With --grace 0 nothing more is asked: on a coarse clock too, the audit is cut at once."""
    backend = ScriptedBackend({"auditor": ["yes"]})
    with Store(":memory:") as store, capture_steps() as events:
        auditor, _target = _auditor(backend, store, AuditPlan(share=1.0, model="auditor"))

        async def go() -> int:
            assert auditor.consider(TASK, _accepted())
            loop = asyncio.get_running_loop()
            now = loop.time()
            with monkeypatch.context() as patch:
                patch.setattr(loop, "time", lambda: now)  # a clock that has not ticked since
                return await auditor.drain(0.0)

        assert asyncio.run(go()) == 1
        assert store.steps("r1", "t1") == []
    assert backend.calls == []
    assert _audit_events(events) == ["cut off"]


def test_the_audits_a_drain_cuts_are_stored_and_counted_when_it_returns() -> None:
    """The call cut off in flight is a step, and in the job's budget, before drain returns."""
    budget = JobBudget(None)
    plan = AuditPlan(share=1.0, model="auditor", price=PRICED)
    with Store(":memory:") as store:
        in_flight = asyncio.Event()

        def hang(_request: Request) -> Hang:
            in_flight.set()
            return Hang()

        auditor, _target = _auditor(ScriptedBackend({"auditor": hang}), store, plan, budget=budget)

        async def go() -> tuple[int, list[Step], float]:
            assert auditor.consider(TASK, _accepted())
            await in_flight.wait()  # the audit's call is in flight
            cut = await auditor.drain(0.0)
            return cut, store.steps("r1", "t1"), budget.spent_usd

        cut, steps, spent = asyncio.run(go())
    assert cut == 1
    assert [(s.kind, s.decision, s.output) for s in steps] == [
        (CallKind.AUDIT, Decision.CANCEL, None)
    ]
    prompt = count_tokens([{"role": "user", "content": "q"}]) * 0.001
    assert steps[0].cost_usd == pytest.approx(prompt)
    assert spent == steps[0].cost_usd


def test_a_judge_audit_of_an_empty_answer_reserves_for_the_rubric_alone() -> None:
    """An empty answer adds nothing to the judge's prompt: the worst cost is the rubric's alone."""
    plan = AuditPlan(share=1.0, model="judge", judge=True, rubric="Right?", max_cost_usd=0.001,
                     params={"max_tokens": 50}, price=PRICED)  # fmt: skip
    asked = [{"role": "user", "content": "q"}, {"role": "user", "content": "Right?\n"}]
    worst = count_tokens(asked) * 0.001 + 50 * 0.002
    with Store(":memory:") as store, capture_steps() as events:
        auditor, _target = _auditor(ScriptedBackend({"judge": ["never asked"]}), store, plan)

        async def go() -> None:
            assert auditor.consider(TASK, _accepted(""))
            await auditor.drain()

        asyncio.run(go())
    (event,) = [e for e in events if e["event"] == "cascade.audit"]
    assert event["why"] == (
        f"the audit cap of $0.001 was reached: this audit could cost up to ${worst:.6f} (50 answer"
        " tokens), and $0.000000 is spent; max_tokens in the audit's params bounds its worst cost"
    )


def test_a_judge_audit_of_an_empty_answer_shows_the_judge_an_empty_candidate() -> None:
    """The judge grades the answer as it was accepted: nothing between the candidate's marks."""
    shown: list[str] = []

    def grade(request: Request) -> Reply:
        text = str(request.messages[-1]["content"])
        shown.append(text)
        nonce = re.search(r"<<<(\w+):BEGIN CANDIDATE>>>", text)
        assert nonce is not None
        said = {"nonce": nonce.group(1), "verdict": "fail", "score": 0.0, "reason": "empty"}
        return Reply(json.dumps(said))

    plan = AuditPlan(share=1.0, model="judge", judge=True, rubric="Is it polite?")
    with Store(":memory:") as store:
        auditor, _target = _auditor(ScriptedBackend({"judge": grade}), store, plan)

        async def go() -> None:
            assert auditor.consider(TASK, _accepted(""))
            await auditor.drain()

        asyncio.run(go())
        (step,) = [s for s in store.steps("r1", "t1") if s.kind is CallKind.AUDIT]
    assert step.decision is Decision.DISAGREE
    (text,) = shown
    candidate = re.search(r"<<<(\w+):BEGIN CANDIDATE>>>\n(.*?)\n<<<\1:END CANDIDATE>>>", text,
                          re.DOTALL)  # fmt: skip
    assert candidate is not None
    assert candidate.group(2) == ""


def test_an_audit_that_fits_once_the_audits_in_flight_settle_waits_and_is_made() -> None:
    """Under a cap that holds one audit's worst cost, the second waits for the first, then runs.

    Each may cost $0.108 (8 prompt tokens, 50 answer tokens); each costs $0.003; the cap is $0.15.
    """
    plan = AuditPlan(share=1.0, model="auditor", max_cost_usd=0.15, params={"max_tokens": 50},
                     price=PRICED)  # fmt: skip
    slow = Reply("yes", latency_s=0.05, usage=Usage(prompt_tokens=1, completion_tokens=1))
    backend = ScriptedBackend({"auditor": [slow, slow]})
    with Store(":memory:") as store, capture_steps() as events:
        auditor, target = _auditor(backend, store, plan)

        async def go() -> None:
            for task_id in ("t1", "t2"):
                task = Task(task_id, input="q", type="echo")
                assert auditor.consider(task, _accepted(task_id=task_id))
            await auditor.drain()

        asyncio.run(go())
        steps = [s for t in ("t1", "t2") for s in store.steps("r1", t) if s.kind is CallKind.AUDIT]
    assert [(s.task_id, s.decision) for s in steps] == [
        ("t1", Decision.AGREE),
        ("t2", Decision.AGREE),
    ]
    assert _audit_events(events) == ["agreed", "agreed"]
    assert target.spent.spent_usd == pytest.approx(2 * 0.003)
    assert target.spent.refused == 0


def test_an_audit_of_a_recorded_outcome_is_stored_after_its_steps() -> None:
    """The task's steps in the store: the answer, then the audit, numbered on; its cost counted."""
    outcome = Cascade(["cheap"], backend=ScriptedBackend({"cheap": ["yes"]}), log=False).run(
        {"id": "t1", "input": "q", "type": "echo"}
    )
    assert (outcome.status, outcome.tier, len(outcome.steps)) == (Status.ACCEPTED, 0, 1)
    budget = JobBudget(None)
    plan = AuditPlan(share=1.0, model="auditor", price=PRICED)
    with Store(":memory:") as store, capture_steps() as events:
        assert store.record(outcome, TASK)
        auditor, _target = _auditor(ScriptedBackend({"auditor": ["yes"]}), store, plan,
                                    budget=budget, run_id=outcome.run_id)  # fmt: skip

        async def go() -> None:
            assert auditor.consider(TASK, outcome)
            await auditor.drain()

        asyncio.run(go())
        steps = store.steps(outcome.run_id, "t1")
    assert [(s.step, s.kind, s.decision) for s in steps] == [
        (0, CallKind.CALL, Decision.ACCEPT),
        (1, CallKind.AUDIT, Decision.AGREE),
    ]
    assert steps[1].cost_usd > 0
    assert budget.spent_usd == steps[1].cost_usd
    (event,) = [e for e in events if e["event"] == "cascade.audit"]
    assert (event["what"], event["cost_usd"]) == ("agreed", steps[1].cost_usd)


def test_a_retried_audit_keeps_its_failed_call_as_an_error_and_its_verdict_on_the_answer() -> None:
    """A 503 then an answer: two steps, the first an error without a verdict, both paid for."""
    budget = JobBudget(None)
    plan = AuditPlan(share=1.0, model="auditor", price=PRICED)
    backend = ScriptedBackend({"auditor": [ServerError("503: busy"), "yes"]})
    with Store(":memory:") as store, capture_steps() as events:
        auditor, _target = _auditor(backend, store, plan, budget=budget,
                                    retry=RetryPolicy(base_s=0.0, jitter=0.0))  # fmt: skip

        async def go() -> None:
            assert auditor.consider(TASK, _accepted())
            await auditor.drain()

        asyncio.run(go())
        steps = [s for s in store.steps("r1", "t1") if s.kind is CallKind.AUDIT]
    assert [(s.decision, [v.passed for v in s.verdicts], s.error) for s in steps] == [
        (Decision.ERROR, [], "ServerError: 503: busy"),
        (Decision.AGREE, [True], None),
    ]
    assert len(backend.calls) == 2
    assert budget.spent_usd == pytest.approx(sum(s.cost_usd for s in steps))
    assert _audit_events(events) == ["agreed"]


def test_a_check_that_raises_a_long_error_after_its_call_says_why_in_300_characters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The failed audit's event gives the error's first 300 characters, under the run's id."""

    def broken(*_args: object) -> bool:
        raise RuntimeError("x" * 400)

    monkeypatch.setattr("cascade.audit.auditor.same_answers", broken)
    with Store(":memory:") as store, capture_steps() as events:
        plan = AuditPlan(share=1.0, model="auditor")
        auditor, _target = _auditor(ScriptedBackend({"auditor": ["yes"]}), store, plan)

        async def go() -> None:
            assert auditor.consider(TASK, _accepted())
            await auditor.drain()

        asyncio.run(go())
        (step,) = [s for s in store.steps("r1", "t1") if s.kind is CallKind.AUDIT]
    assert step.decision is Decision.ERROR
    (event,) = [e for e in events if e["event"] == "cascade.audit"]
    assert (event["what"], event["run_id"]) == ("failed", "r1")
    assert event["why"] == ("the audit failed: RuntimeError: " + "x" * 400)[:300]


def test_an_audit_that_raises_outside_its_call_is_logged_under_its_run_in_300_characters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bug before the call ends the audit with a failed event: the run's id, the error cut."""

    async def broken(*_args: object) -> float:
        raise RuntimeError("y" * 400)

    monkeypatch.setattr(Auditor, "_reserve", broken)
    with Store(":memory:") as store, capture_steps() as events:
        plan = AuditPlan(share=1.0, model="auditor")
        auditor, _target = _auditor(ScriptedBackend({"auditor": ["yes"]}), store, plan)

        async def go() -> int:
            assert auditor.consider(TASK, _accepted())
            return await auditor.drain()

        assert asyncio.run(go()) == 0
        assert store.steps("r1", "t1") == []
    failed = [e for e in events if e["event"] == "cascade.audit"]
    assert [(e["what"], e["run_id"], e["error"]) for e in failed] == [
        ("failed", "r1", ("RuntimeError: " + "y" * 400)[:300])
    ]
