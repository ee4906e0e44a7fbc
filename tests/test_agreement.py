"""``agreement``: a second model's answer must match; and trusted tiers skip the validators."""

from __future__ import annotations

import pytest

from cascade import CallKind, Cascade, Price, Status, Tier, Usage
from cascade.backends import ScriptedBackend
from cascade.backends.scripted import Reply
from cascade.errors import ServerError
from cascade.validators import agreement, all_of, function_call
from tests.helpers import make, models_called

FUNCTIONS = [
    {
        "name": "area",
        "parameters": {
            "type": "object",
            "properties": {"base": {"type": "number"}, "height": {"type": "number"}},
            "required": ["base", "height"],
        },
    }
]
TASK = {"id": "t1", "input": "Area of a triangle, base 10, height 5?", "functions": FUNCTIONS}


def test_agreeing_cheap_models_accept_without_escalating() -> None:
    """Same call, arguments in another order and spelling: accepted at tier 0."""
    cascade, backend = make(
        {
            "mini": ["[area(base=10, height=5)]"],
            "haiku": ["[area(height=5.0, base=10)]"],
            "big": ["x"],
        },
        ["mini", Tier("big", trusted=True)],
        all_of(function_call(), agreement("haiku")),
    )
    outcome = cascade.run(TASK)
    assert outcome.status is Status.ACCEPTED
    assert outcome.tier == 0
    assert models_called(backend) == ["mini", "haiku"]
    assert [s.kind for s in outcome.steps] == [CallKind.CALL, CallKind.VALIDATOR]
    # The second opinion was asked the task itself.
    assert backend.calls[1].messages == backend.calls[0].messages


def test_a_disagreement_escalates_to_the_trusted_tier() -> None:
    """Different values: escalate; the trusted last tier is accepted with no second opinion."""
    cascade, backend = make(
        {
            "mini": ["[area(base=10, height=6)]"],
            "haiku": ["[area(base=10, height=5)]"],
            "big": ["[area(base=10, height=5)]"],
        },
        ["mini", Tier("big", trusted=True)],
        all_of(function_call(), agreement("haiku")),
    )
    outcome = cascade.run(TASK)
    assert outcome.status is Status.ACCEPTED
    assert outcome.tier == 1
    assert models_called(backend) == ["mini", "haiku", "big"]
    reasons = [v.reason for v in outcome.steps[0].verdicts if not v.passed]
    assert reasons == ["haiku answered differently: '[area(base=10, height=5)]'"]


def test_a_second_model_that_fails_escalates_instead_of_crashing() -> None:
    """A provider error after retries is a failed check, not a failed task."""
    cascade, _ = make(
        {"mini": ["yes"], "haiku": [ServerError("down")] * 5, "big": ["yes"]},
        ["mini", "big"],
        agreement("haiku", compare="text"),
    )
    outcome = cascade.run({"id": "t1", "input": "q"})
    assert outcome.status is Status.EXHAUSTED
    assert any("no second opinion from haiku" in r for r in outcome.reasons)


def test_text_answers_compare_without_case_or_trailing_punctuation() -> None:
    """'Paris.' and 'paris' agree; the second opinion's cost counts on the task."""
    backend = ScriptedBackend(
        {"mini": [Reply("Paris.", Usage(100, 10))], "haiku": [Reply(" paris", Usage(100, 10))]},
        prices={"mini": Price(1.0, 2.0), "haiku": Price(3.0, 4.0)},
    )
    cascade = Cascade(["mini"], agreement("haiku"), backend=backend, log=False)
    outcome = cascade.run({"id": "t1", "input": "Capital of France?"})
    assert outcome.accepted
    assert outcome.cost_usd == pytest.approx((100 * 1 + 10 * 2 + 100 * 3 + 10 * 4) / 1e6)


def test_a_bad_compare_mode_is_a_config_error() -> None:
    """Only the four modes exist."""
    with pytest.raises(ValueError, match="compare must be one of"):
        agreement("haiku", compare="fuzzy")  # type: ignore[arg-type]
