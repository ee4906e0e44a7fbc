"""The decision loop: accept, re-ask, escalate, stop; provider errors; deadlines; budgets."""

from __future__ import annotations

import asyncio
import time

import pytest

from cascade import Attempt, CallKind, Decision, Price, RetryPolicy, Status, Tier, Verdict
from cascade.backends import Hang, Reply
from cascade.backends.scripted import Item
from cascade.errors import RateLimited, ServerError, UnknownModel
from cascade.types import Usage
from tests.helpers import make, models_called


def test_acceptance_at_tier_zero_never_calls_tier_one() -> None:
    """A passing answer from the cheapest tier ends the task there."""
    cascade, backend = make({"small": ["ok"], "big": ["ok"]}, ["small", "big"])
    outcome = cascade.run({"id": "t", "input": "x"})
    assert outcome.status is Status.ACCEPTED
    assert outcome.tier == 0
    assert models_called(backend) == ["small"]


def test_reask_carries_the_feedback() -> None:
    """A re-ask sends the rejected answer back with the validators' feedback."""
    cascade, backend = make({"small": ["nope", "ok"]}, [Tier("small", reasks=1)])
    outcome = cascade.run({"id": "t", "input": "x"})
    assert outcome.status is Status.ACCEPTED
    assert [s.kind for s in outcome.steps] == [CallKind.CALL, CallKind.REASK]
    assert [s.decision for s in outcome.steps] == [Decision.REASK, Decision.ACCEPT]
    second = backend.calls[1].messages
    assert second[-2] == {"role": "assistant", "content": "nope"}
    assert "Say ok." in second[-1]["content"]
    assert second[-1]["role"] == "user"


def test_reasks_are_bounded_then_escalate() -> None:
    """A tier is re-asked at most ``reasks`` times before the next tier is tried."""
    cascade, backend = make(
        {"small": ["no"], "mid": ["no"], "big": ["ok"]},
        [Tier("small", reasks=2), Tier("mid"), Tier("big")],
    )
    outcome = cascade.run({"id": "t", "input": "x"})
    assert models_called(backend) == ["small", "small", "small", "mid", "big"]
    assert outcome.tier == 2
    assert outcome.model == "big"


def test_tiers_escalate_in_order() -> None:
    """Rejected answers climb the ladder one rung at a time, cheapest first."""
    cascade, backend = make({"a": ["no"], "b": ["no"], "c": ["no"], "d": ["ok"]}, "abcd")
    outcome = cascade.run({"id": "t", "input": "x"})
    assert models_called(backend) == ["a", "b", "c", "d"]
    assert [s.decision for s in outcome.steps] == [Decision.ESCALATE] * 3 + [Decision.ACCEPT]


def test_budget_stops_a_task_and_keeps_its_best_attempt() -> None:
    """Once the task's spend reaches its budget, it stops instead of escalating."""
    usage = Usage(1000, 1000)
    cascade, backend = make(
        {"small": [Reply("no", usage=usage)], "big": ["ok"]},
        [Tier("small", price=Price(5.0, 5.0)), Tier("big")],
        budget_usd=0.005,
    )
    outcome = cascade.run({"id": "t", "input": "x"})
    assert outcome.status is Status.BUDGET_EXHAUSTED
    assert models_called(backend) == ["small"]
    assert outcome.steps[-1].decision is Decision.STOP
    assert outcome.output == "no"
    assert outcome.best_step == 0
    assert any("budget" in reason for reason in outcome.reasons)


def test_budget_estimate_stops_a_reask_that_would_exceed_it() -> None:
    """A re-ask that would cost as much again as the last attempt is not made past the cap."""
    cascade, backend = make(
        {"small": [Reply("no", usage=Usage(1000, 0))]},
        [Tier("small", reasks=3, price=Price(3.0, 0.0))],
        budget_usd=0.005,
    )
    outcome = cascade.run({"id": "t", "input": "x"})
    assert outcome.status is Status.BUDGET_EXHAUSTED
    assert len(backend.calls) == 1
    assert outcome.cost_usd <= 0.005


def test_exhausted_task_keeps_every_attempt_and_marks_the_best() -> None:
    """When no tier accepts, every step is kept and the best rejected answer is the output."""

    def prefer_longer(attempt: Attempt) -> Verdict:
        return Verdict(False, reason="never good enough", score=len(attempt.output))

    cascade, _ = make(
        {"a": ["short"], "b": ["the longest answer"], "c": ["mid size"]}, "abc", prefer_longer
    )
    outcome = cascade.run({"id": "t", "input": "x"})
    assert outcome.status is Status.EXHAUSTED
    assert len(outcome.steps) == 3
    assert outcome.output == "the longest answer"
    assert outcome.best_step == 1
    assert outcome.to_result()["best_rejected"] is True
    assert outcome.reasons == ("never good enough",)


def test_provider_error_is_retried_then_sent_to_a_fallback() -> None:
    """Transient errors are retried on the model, then its fallback serves; no rejection counted."""
    cascade, backend = make(
        {"primary": [ServerError("503 busy")], "backup": ["ok"], "big": ["ok"]},
        [Tier("primary", retries=2, fallbacks=("backup",)), Tier("big")],
    )
    outcome = cascade.run({"id": "t", "input": "x"})
    assert outcome.status is Status.ACCEPTED
    assert outcome.tier == 0
    assert models_called(backend) == ["primary"] * 3 + ["backup"]
    kinds = [s.kind for s in outcome.steps]
    assert kinds == [CallKind.CALL, CallKind.RETRY, CallKind.RETRY, CallKind.FALLBACK]
    assert [s.decision for s in outcome.steps[:3]] == [Decision.ERROR] * 3
    assert all(s.verdicts == () for s in outcome.steps[:3])


def test_permanent_error_skips_retries_and_goes_to_the_fallback() -> None:
    """An unknown model is not retried: the fallback is tried at once."""
    cascade, backend = make(
        {"backup": ["ok"]}, [Tier("no-such-model", retries=5, fallbacks=("backup",))]
    )
    outcome = cascade.run({"id": "t", "input": "x"})
    assert outcome.accepted
    assert models_called(backend) == ["no-such-model", "backup"]
    assert outcome.steps[0].error is not None
    assert "UnknownModel" in outcome.steps[0].error


def test_provider_errors_escalate_only_when_the_plan_says_so() -> None:
    """With escalate_on_provider_error, a tier whose models all fail escalates, saying why."""
    cascade, backend = make(
        {"a": [ServerError("down")], "a2": [UnknownModel("gone")], "b": ["ok"]},
        [Tier("a", retries=1, fallbacks=("a2",)), Tier("b")],
        escalate_on_provider_error=True,
    )
    outcome = cascade.run({"id": "t", "input": "x"})
    assert models_called(backend) == ["a", "a", "a2", "b"]
    assert outcome.steps[2].decision is Decision.ESCALATE
    assert outcome.tier == 1


def test_retry_after_is_honoured() -> None:
    """A 429 with Retry-After waits at least that long before the retry."""
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    cascade, _ = make(
        {"m": [RateLimited("429", retry_after_s=7.0), "ok"]},
        [Tier("m", retries=1)],
        retry=RetryPolicy(base_s=0.1, jitter=0.0, sleep=record),
    )
    assert cascade.run({"id": "t", "input": "x"}).accepted
    assert waits == [7.0]


def test_deadline_holds_against_a_backend_that_hangs() -> None:
    """A call that never returns is cut off by our own deadline and the fallback serves."""
    cascade, backend = make(
        {"slow": [Hang()], "quick": ["ok"]},
        [Tier("slow", timeout_s=0.2, retries=0, fallbacks=("quick",))],
    )
    started = time.perf_counter()
    outcome = cascade.run({"id": "t", "input": "x"})
    assert time.perf_counter() - started < 2.0
    assert outcome.accepted
    assert outcome.steps[0].error is not None
    assert "ProviderTimeout" in outcome.steps[0].error
    assert models_called(backend) == ["slow", "quick"]


def test_every_model_failing_ends_failed_with_the_errors() -> None:
    """A task nobody could serve ends ``failed``, with the provider errors as reasons."""
    cascade, _ = make(
        {"a": [ServerError("boom")]},
        [Tier("a", retries=1), Tier("zzz")],
        escalate_on_provider_error=True,
    )
    outcome = cascade.run({"id": "t", "input": "x"})
    assert outcome.status is Status.FAILED
    assert any("boom" in r for r in outcome.reasons)
    assert any("zzz" in r for r in outcome.reasons)


@pytest.mark.parametrize(
    "script",
    [
        {"a": ["no"], "b": ["ok"]},
        {"a": [ServerError("x"), "no"], "b": ["no"]},
        {"a": ["ok"]},
    ],
)
def test_run_and_arun_give_the_same_outcome(script: dict[str, list[Item]]) -> None:
    """The sync and async entry points agree, step for step."""
    sync_cascade, _ = make(script, [Tier("a", retries=0), "b"], run_id="r")
    async_cascade, _ = make(script, [Tier("a", retries=0), "b"], run_id="r")
    one = sync_cascade.run({"id": "t", "input": "x"})
    two = asyncio.run(async_cascade.arun({"id": "t", "input": "x"}))
    strip = [(s.model_requested, s.kind, s.decision, s.output, s.error) for s in one.steps]
    assert strip == [(s.model_requested, s.kind, s.decision, s.output, s.error) for s in two.steps]
    assert (one.status, one.output, one.tier, one.cost_usd) == (
        two.status, two.output, two.tier, two.cost_usd,
    )  # fmt: skip


def test_run_inside_an_event_loop_says_to_use_arun() -> None:
    """Calling the sync entry point from async code is a clear error, not a hang."""
    cascade, _ = make({"a": ["ok"]}, ["a"])

    async def inside() -> None:
        cascade.run({"id": "t", "input": "x"})

    with pytest.raises(Exception, match="arun"):
        asyncio.run(inside())


def test_served_model_is_recorded_beside_the_requested_one() -> None:
    """When a provider serves another model than asked, both are kept."""
    cascade, _ = make({"alias": [Reply("ok", model_served="alias-2024-07-18")]}, ["alias"])
    outcome = cascade.run({"id": "t", "input": "x"})
    step = outcome.steps[0]
    assert (step.model_requested, step.model_served) == ("alias", "alias-2024-07-18")


def test_prompt_template_fills_input_and_task_fields() -> None:
    """Tasks with ``input`` are wrapped in the prompt template, extra fields included."""
    cascade, backend = make({"a": ["ok"]}, ["a"], prompt="Lang: {lang}\n\n{input}")
    cascade.run({"id": "t", "input": "hello", "lang": "fr"})
    assert backend.calls[0].messages == ({"role": "user", "content": "Lang: fr\n\nhello"},)


def test_task_messages_are_sent_as_they_are() -> None:
    """A task with chat messages is not wrapped in the prompt template."""
    cascade, backend = make({"a": ["ok"]}, ["a"], prompt="ignored {input}")
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    cascade.run({"id": "t", "messages": messages})
    assert [dict(m) for m in backend.calls[0].messages] == messages
