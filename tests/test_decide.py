"""The decision after each ask, as one pure function: every branch, no backend."""

from __future__ import annotations

import pytest

from cascade import Decision, Verdict
from cascade.engine.decide import Moment, decide

REJECTED = Verdict(False, reason="wrong")


@pytest.mark.parametrize(
    ("moment", "decision", "why"),
    [
        (Moment(Verdict(True), 1, 0, at_top=False), Decision.ACCEPT, "accepted"),
        (Moment(Verdict(False, fault=True), 1, 2, at_top=False), Decision.STOP, "fault"),
        (Moment(REJECTED, 1, 1, at_top=False), Decision.REASK, "reask"),
        (Moment(REJECTED, 1, 1, at_top=True), Decision.REASK, "reask"),
        (Moment(REJECTED, 2, 1, at_top=False), Decision.ESCALATE, "escalate"),
        (Moment(REJECTED, 2, 1, at_top=True), Decision.STOP, "top"),
        (Moment(None, 1, 3, at_top=False), Decision.ESCALATE, "escalate"),
        (Moment(None, 1, 3, at_top=True), Decision.STOP, "top"),
    ],
)
def test_each_branch(moment: Moment, decision: Decision, why: str) -> None:
    """Accept a pass; stop on a fault; re-ask while the budget lasts; escalate; stop at the top."""
    choice = decide(moment)
    assert (choice.decision, choice.why) == (decision, why)


def test_spending_exactly_the_budget_stops() -> None:
    """A step that brings the spend exactly to the budget stops there: the cap is reached."""
    at_cap = Moment(REJECTED, 2, 1, at_top=False, spent=0.004, pending=0.002, budget_usd=0.006)
    assert decide(at_cap).why == "budget"
    under = Moment(REJECTED, 2, 1, at_top=False, spent=0.003, pending=0.002, budget_usd=0.006)
    assert decide(under).decision is Decision.ESCALATE


def test_a_reask_that_would_pass_the_budget_is_not_made() -> None:
    """A re-ask is expected to cost what this ask did: both must fit under the budget."""
    fits = Moment(REJECTED, 1, 1, at_top=False, spent=0.0, pending=0.002, budget_usd=0.0041)
    assert decide(fits).decision is Decision.REASK
    too_dear = Moment(REJECTED, 1, 1, at_top=False, spent=0.0, pending=0.002, budget_usd=0.004)
    assert decide(too_dear).why == "budget"


def test_an_accepted_answer_is_kept_whatever_it_cost() -> None:
    """The budget stops further calls; it never throws away an answer that passed."""
    paid = Moment(Verdict(True), 1, 0, at_top=False, spent=1.0, pending=1.0, budget_usd=0.5)
    assert decide(paid).decision is Decision.ACCEPT
