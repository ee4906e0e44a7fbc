"""A task's record at the edges mutation testing found unpinned.

What its steps keep of a verdict, which rejected answer it offers, the totals of its outcome.
"""

from __future__ import annotations

import time

import pytest

from cascade import Status, Tier
from cascade.engine.call import Call
from cascade.engine.record import Record
from cascade.enums import CallKind, Decision
from cascade.errors import ServerError
from cascade.retry import RetryPolicy
from cascade.types import Response, Task, Usage, Verdict
from tests.helpers import make


def _record() -> Record:
    return Record(Task("t1", input="x"), "r1", None)


def _answer(text: str, compute_s: float = 0.0) -> Call:
    response = Response(text, "m", Usage(3, 2), 0.01, 0.1, None, compute_s)
    return Call("m", CallKind.CALL, 0.1, response=response)


def test_a_step_keeps_each_checks_judgement_but_not_its_parsed_value_or_chosen_answer() -> None:
    """A step keeps each check's pass, reason and score; parsed values and chosen answers, not.

    The parsed value and a vote's chosen answer go to the outcome, not into each step.
    """
    parsed = Verdict(True, validator="json", score=0.9, value={"a": 1})
    voted = Verdict(True, validator="vote", answer="42", answer_model="big")
    plain = Verdict(False, reason="too long", validator="length")
    record = _record()
    both = Verdict(True, children=(parsed, voted, plain))
    record.answer(0, _answer("42"), both, Decision.ESCALATE, [])
    assert record.steps[0].verdicts == (
        Verdict(True, validator="json", score=0.9),
        Verdict(True, validator="vote"),
        Verdict(False, reason="too long", validator="length"),
    )
    assert all(v.children == () for v in record.steps[0].verdicts)


def test_the_best_rejected_answer_passed_the_largest_share_of_its_checks() -> None:
    """One of two checks passed beats one of three, though three is more checks in all."""
    record = _record()
    record.step(0, _answer("half"), (Verdict(True), Verdict(False)), Decision.ESCALATE)
    third = (Verdict(True), Verdict(False), Verdict(False))
    record.step(1, _answer("third"), third, Decision.ESCALATE)
    outcome = record.give_up(budget=False)
    assert (outcome.status, outcome.best_step, outcome.output) == (Status.EXHAUSTED, 0, "half")


def test_an_answer_whose_only_check_passed_beats_one_that_passed_half() -> None:
    """An answer whose one check passed beats a later one that failed one of its two checks.

    (Escalated though its check passed: its confidence was low, say.)
    """
    record = _record()
    record.step(0, _answer("sure"), (Verdict(True),), Decision.ESCALATE)
    record.step(1, _answer("half"), (Verdict(True), Verdict(False)), Decision.ESCALATE)
    outcome = record.give_up(budget=False)
    assert (outcome.best_step, outcome.output) == (0, "sure")


def test_between_equal_shares_a_scored_answer_beats_one_with_no_score() -> None:
    """An answer with no score counts as 0: a scored one of the same share wins, even lower."""
    record = _record()
    record.step(0, _answer("scored"), (Verdict(False, score=0.4),), Decision.ESCALATE)
    record.step(1, _answer("unscored"), (Verdict(False),), Decision.ESCALATE)
    outcome = record.give_up(budget=False)
    assert (outcome.best_step, outcome.output, outcome.tier) == (0, "scored", 0)


def test_an_accepted_answer_is_delivered_even_when_a_rejected_one_passed_more() -> None:
    """A tier with no checks accepts its answer: delivered, not an earlier half-passing one."""
    record = _record()
    record.step(0, _answer("half"), (Verdict(True), Verdict(False)), Decision.ESCALATE)
    accepted = record.step(1, _answer("unchecked"), (), Decision.ACCEPT)
    outcome = record.finish(Status.ACCEPTED, (), accepted=accepted)
    assert (outcome.best_step, outcome.output, outcome.tier) == (1, "unchecked", 1)


def test_an_outcome_adds_up_its_steps_compute_and_rounds_its_wait_to_the_microsecond() -> None:
    """The outcome's compute is its steps' sum; its time waited is rounded to six decimals."""
    record = _record()
    record.step(0, _answer("a", compute_s=1.5), (), Decision.ESCALATE)
    record.step(1, _answer("b", compute_s=0.25), (), Decision.ACCEPT)
    record.waited_s = 2.12345678
    outcome = record.finish(Status.ACCEPTED, (), accepted=1)
    assert outcome.compute_s == 1.75
    assert outcome.waited_s == 2.123457


def test_a_refreshed_outcome_counts_the_compute_of_steps_recorded_after_it() -> None:
    """A step recorded after the outcome adds its compute, as its cost, when refreshed.

    (A hedge leg cut off with its answer in hand is recorded after the outcome was made.)
    """
    record = _record()
    record.step(0, _answer("a", compute_s=1.5), (), Decision.ACCEPT)
    outcome = record.finish(Status.ACCEPTED, (), accepted=0)
    record.unrecorded.calls.append(_answer("late", compute_s=0.5))
    record.cut_off()
    refreshed = record.refresh(outcome)
    assert (refreshed.compute_s, refreshed.cost_usd, len(refreshed.steps)) == (2.0, 0.02, 2)


class _Clock:
    """Wall time that moves only when the task sleeps (its outage waits)."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_an_outage_is_dated_from_its_first_wait_not_from_when_the_task_gave_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The task fails saying since when the provider was down: the time it first waited."""
    clock = _Clock()
    monkeypatch.setattr(time, "time", clock.time)
    cascade, _backend = make(
        {"cheap": [ServerError("503 down")]},
        [Tier("cheap", retries=0)],
        retry=RetryPolicy(base_s=0.5, jitter=0.0, sleep=clock.sleep),
        max_outage_s=10.0,
    )
    outcome = cascade.run({"id": "t", "input": "x"})
    assert outcome.status is Status.FAILED
    assert outcome.reasons[0].startswith(
        "tier 0 (cheap) provider unavailable since 2023-11-14T22:13:20+00:00 (10 s): "
    )
