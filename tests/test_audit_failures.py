"""An audit whose check breaks after its call: the call is still paid for, stored and logged."""

from __future__ import annotations

import asyncio

import pytest

from cascade import Price, Status, Task, Tier
from cascade.audit.auditor import Auditor, AuditTarget
from cascade.audit.plan import AuditPlan
from cascade.backends import ScriptedBackend
from cascade.budget import JobBudget
from cascade.engine.calls import Caller
from cascade.enums import CallKind, Decision
from cascade.outcome import Outcome
from cascade.retry import RetryPolicy
from cascade.steplog import StepLog, capture_steps
from cascade.store import Store

TASK = Task("t1", input="q", type="echo")


def test_a_check_that_raises_after_the_audits_call_keeps_the_call_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its step is stored with a fault verdict, its cost counted in the job's budget, an event."""

    def broken(*_args: object) -> bool:
        raise RuntimeError("compare broke")

    monkeypatch.setattr("cascade.audit.auditor.same_answers", broken)
    budget = JobBudget(None)
    plan = AuditPlan(share=1.0, model="auditor", price=Price(1000.0, 2000.0))
    target = AuditTarget.of(plan, (Tier("cheap"), Tier("dear")), "{input}", (), JobBudget(None))
    with Store(":memory:") as store, capture_steps() as events:
        caller = Caller(ScriptedBackend({"auditor": ["yes"]}), RetryPolicy())
        auditor = Auditor({"echo": target}, caller, store, "r1", budget=budget, log=StepLog())
        accepted = Outcome(
            "r1", "t1", "echo", Status.ACCEPTED, "yes", None, 0, "cheap", (), 0.0, 0.0
        )

        async def go() -> None:
            assert auditor.consider(TASK, accepted)
            await auditor.drain()

        asyncio.run(go())
        (step,) = [s for s in store.steps("r1", "t1") if s.kind is CallKind.AUDIT]
    assert step.cost_usd > 0
    assert budget.spent_usd == step.cost_usd
    assert step.decision is Decision.ERROR
    failed = [e for e in events if e.get("event") == "cascade.audit" and e.get("what") == "failed"]
    assert len(failed) == 1
    assert "RuntimeError: compare broke" in failed[0]["why"]


def test_an_audit_that_raises_outside_its_call_is_logged_not_left_unretrieved(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bug before the call (the reservation, say) ends the audit with an event, not silence."""

    async def broken(*_args: object) -> float:
        raise RuntimeError("reserve broke")

    monkeypatch.setattr(Auditor, "_reserve", broken)
    plan = AuditPlan(share=1.0, model="auditor", price=Price(1000.0, 2000.0))
    target = AuditTarget.of(plan, (Tier("cheap"), Tier("dear")), "{input}", (), JobBudget(None))
    with Store(":memory:") as store, capture_steps() as events:
        caller = Caller(ScriptedBackend({"auditor": ["yes"]}), RetryPolicy())
        auditor = Auditor({"echo": target}, caller, store, "r1", log=StepLog())
        accepted = Outcome(
            "r1", "t1", "echo", Status.ACCEPTED, "yes", None, 0, "cheap", (), 0.0, 0.0
        )

        async def go() -> None:
            assert auditor.consider(TASK, accepted)
            assert await auditor.drain() == 0

        asyncio.run(go())
    failed = [e for e in events if e.get("event") == "cascade.audit" and e.get("what") == "failed"]
    assert [e["error"] for e in failed] == ["RuntimeError: reserve broke"]
