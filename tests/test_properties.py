"""Laws, checked with Hypothesis: the combinators, and a ladder never climbs past acceptance."""

from __future__ import annotations

import asyncio
import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from cascade import Attempt, Task, Tier, Usage, Verdict
from cascade.validators import (
    CostClass,
    Validator,
    all_of,
    any_of,
    json_schema,
    not_,
    run_validator,
    weighted,
)
from tests.helpers import make, models_called

ATTEMPT = Attempt(
    task=Task("t", input="x"),
    tier_index=0,
    tier=Tier("m"),
    model="m",
    model_served="m",
    output="out",
    usage=Usage(),
    cost_usd=0.0,
    latency_s=0.0,
)


def constant(passed: bool) -> Validator:
    """A validator that always returns the same decision."""

    def check(attempt: Attempt) -> Verdict:
        return Verdict(passed, reason="" if passed else "constant failure")

    return check


def passes(validator: Validator) -> bool:
    """Whether ``validator`` passes the fixed attempt."""
    return asyncio.run(run_validator(validator, ATTEMPT)).passed


bools = st.lists(st.booleans(), min_size=1, max_size=5)


@given(st.booleans())
def test_all_of_one_behaves_as_the_one(value: bool) -> None:
    """``all_of(v)`` passes exactly when ``v`` does; likewise ``any_of(v)``."""
    v = constant(value)
    assert passes(all_of(v)) == passes(v) == passes(any_of(v))


@given(bools)
def test_all_of_is_conjunction_and_any_of_is_disjunction(values: list[bool]) -> None:
    """``all_of`` passes iff every part passes; ``any_of`` iff one does."""
    parts = [constant(v) for v in values]
    assert passes(all_of(*parts)) == all(values)
    assert passes(any_of(*parts)) == any(values)


@given(bools)
def test_de_morgan(values: list[bool]) -> None:
    """``not_(all_of(a, b))`` is ``any_of(not_(a), not_(b))``, and the dual."""
    parts = [constant(v) for v in values]
    negated = [not_(p) for p in parts]
    assert passes(not_(all_of(*parts))) == passes(any_of(*negated))
    assert passes(not_(any_of(*parts))) == passes(all_of(*negated))


@given(st.booleans())
def test_double_negation(value: bool) -> None:
    """``not_(not_(v))`` behaves as ``v``."""
    assert passes(not_(not_(constant(value)))) == value


def test_a_crash_is_never_a_pass_even_negated() -> None:
    """A validator that raises fails under every combinator, ``not_`` included."""

    def boom(attempt: Attempt) -> Verdict:
        raise RuntimeError("bug")

    for composite in (boom, not_(boom), all_of(boom), any_of(boom), not_(not_(boom))):
        verdict = asyncio.run(run_validator(composite, ATTEMPT))
        assert not verdict.passed
        assert verdict.fault


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 2), st.lists(st.booleans(), min_size=1, max_size=4)),
        min_size=1,
        max_size=5,
    )
)
def test_a_ladder_never_calls_a_tier_above_the_one_that_accepted(
    tiers: list[tuple[int, list[bool]]],
) -> None:
    """Whatever each tier answers, no model above the accepting tier is ever called."""
    script = {
        f"m{i}": ["ok" if ok else "no" for ok in answers] for i, (_, answers) in enumerate(tiers)
    }
    ladder = [Tier(f"m{i}", reasks=reasks) for i, (reasks, _) in enumerate(tiers)]
    cascade, backend = make(script, ladder)
    outcome = cascade.run({"id": "t", "input": "x"})
    called = [int(model[1:]) for model in models_called(backend)]
    assert called == sorted(called)
    if outcome.accepted:
        assert outcome.tier is not None
        assert max(called) == outcome.tier
    else:
        assert max(called) == len(tiers) - 1


def test_all_of_runs_the_cheapest_first_and_stops_at_the_first_failure() -> None:
    """A costly check is not run when a cheap one has already failed."""
    ran: list[str] = []

    class Check:
        def __init__(self, name: str, cost: CostClass, passed: bool) -> None:
            self.name, self.cost_class, self.passed = name, cost, passed

        def __repr__(self) -> str:
            return self.name

        def __call__(self, attempt: Attempt) -> Verdict:
            ran.append(self.name)
            return Verdict(self.passed, reason=f"{self.name} failed")

    judge = Check("judge", CostClass.MODEL, True)
    schema = Check("schema", CostClass.FREE, False)
    tests = Check("tests", CostClass.PROCESS, True)
    verdict = asyncio.run(run_validator(all_of(judge, tests, schema), ATTEMPT))
    assert ran == ["schema"]
    assert verdict.reason == "schema failed"
    assert repr(all_of(judge, tests, schema)) == "all_of(schema, tests, judge)"


scored = st.lists(
    st.tuples(st.booleans(), st.floats(0, 1), st.floats(0, 10)), min_size=1, max_size=5
)


@given(scored, st.floats(0, 1))
def test_weighted_never_passes_a_failed_gate(
    members: list[tuple[bool, float, float]], bar: float
) -> None:
    """``weighted`` fails whenever a member fails, however high the others score."""

    def scoring(passed: bool, score: float) -> Validator:
        def check(attempt: Attempt) -> Verdict:
            return Verdict(passed, reason="" if passed else "gate failed", score=score)

        return check

    parts = [(scoring(passed, score), weight) for passed, score, weight in members]
    verdict = asyncio.run(run_validator(weighted(*parts, threshold=bar), ATTEMPT))
    if not all(passed for passed, _, _ in members):
        assert not verdict.passed
    else:
        total = sum(w for _, _, w in members) or 1.0
        mean = sum(s * w for _, s, w in members) / total
        assert verdict.passed == (mean >= bar)


def test_a_high_judge_score_cannot_carry_an_invalid_schema() -> None:
    """A perfect score from a judge does not pass JSON that fails its schema."""

    def enthusiastic_judge(attempt: Attempt) -> Verdict:
        return Verdict(True, score=1.0)

    schema = json_schema({"type": "object", "required": ["name"]})
    attempt = dataclasses.replace(ATTEMPT, output='{"nom": "x"}')
    composite = weighted((enthusiastic_judge, 100.0), (schema, 0.01), threshold=0.1)
    verdict = asyncio.run(run_validator(composite, attempt))
    assert not verdict.passed
    assert "required" in verdict.reason


def test_an_unnamed_verdict_is_named_and_kept_whole() -> None:
    """The validator's name is added, and every other field of its verdict is kept."""
    child = Verdict(True, validator="inner")
    full = Verdict(False, reason="r", feedback="f", score=0.5, value={"a": 1}, fault=True,
                   children=(child,), answer="ans", answer_model="m2", self_reported=True,
                   seconds=0.25)  # fmt: skip
    assert {f.name for f in dataclasses.fields(Verdict)} == {
        "passed", "reason", "feedback", "score", "validator", "value", "fault", "children",
        "answer", "answer_model", "self_reported", "seconds",
    }  # a new field must be carried by run_validator too  # fmt: skip

    def unnamed(_: Attempt) -> Verdict:
        return full

    got = asyncio.run(run_validator(unnamed, ATTEMPT))
    assert got == dataclasses.replace(full, validator=unnamed.__qualname__)
    assert got.seconds == 0.25  # compare=False: checked apart
