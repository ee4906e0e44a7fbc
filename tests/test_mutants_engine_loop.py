"""The engine's loop, calls, hedge and front at the edges mutation testing found unpinned.

Each test states what a user sees of a task: its outcome, its steps, the calls a backend got.
"""

from __future__ import annotations

from cascade import Price, Status, Tier
from tests.helpers import make


def test_a_call_that_could_pass_the_tasks_budget_is_not_made() -> None:
    """A tier whose fixed longest answer could cost more than the budget is refused unasked."""
    cascade, backend = make(
        {"big": ["ok"]},
        [Tier("big", price=Price(5.0, 5.0), params={"max_tokens": 2000})],
        budget_usd=0.005,
    )
    outcome = cascade.run({"id": "t", "input": "x"})
    assert outcome.status is Status.BUDGET_EXHAUSTED
    assert backend.calls == []
    assert outcome.reasons[0].startswith("tier 0 (big): big not asked: the call could cost up to")


def test_a_call_the_budget_cannot_pay_in_full_is_asked_for_a_shorter_answer() -> None:
    """A tier that sets no longest answer is asked with max_tokens the budget can pay for."""
    cascade, backend = make({"big": ["ok"]}, [Tier("big", price=Price(5.0, 5.0))], budget_usd=0.005)
    outcome = cascade.run({"id": "t", "input": "x"})
    assert outcome.status is Status.ACCEPTED
    assert 900 < backend.calls[0].params["max_tokens"] < 1000
