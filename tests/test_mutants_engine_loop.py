"""The engine's loop, calls, hedge and front at the edges mutation testing found unpinned.

Each test states what a user sees of a task: its outcome, its steps, the calls a backend got.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Mapping, Sequence

import pytest

from cascade import (
    Attempt,
    CallKind,
    Cascade,
    Decision,
    Outcome,
    Plan,
    Price,
    Settings,
    Status,
    Tier,
    Usage,
    Verdict,
)
from cascade.backends import Hang, Reply, ScriptedBackend
from cascade.backends.scripted import Script
from cascade.errors import AuthenticationFailed, RateLimited, ServerError
from cascade.retry import RetryPolicy
from cascade.run.guard import BreakerSettings, Guard
from cascade.steplog import capture_steps
from cascade.store import Store
from cascade.tokens import count_tokens
from cascade.types import Quote, Request, Response
from cascade.validators import agreement, all_of, any_of, one_of
from tests.helpers import NO_WAIT, make, models_called, says_ok
from tests.test_batcher import TIER, MemoryBatches, batcher
from tests.test_cut_off import cascade_of, cut_off, run


def _timed(
    script: Mapping[str, Script],
    ladder: Sequence[Tier],
    deadline_s: float,
    budget_usd: float | None = None,
    *,
    virtual: bool = True,
) -> tuple[Cascade, ScriptedBackend]:
    """A quiet cascade with a deadline; scripted latencies reported, not slept, if ``virtual``."""
    backend = ScriptedBackend(dict(script), virtual_time=virtual)
    settings = Settings(backend=backend, log=False, retry=NO_WAIT)
    plan = Plan(ladder, says_ok, deadline_s=deadline_s, budget_usd=budget_usd)
    return Cascade(plan, settings=settings), backend


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


def test_a_rejected_hedge_escalates_only_if_the_tier_above_fits_in_time() -> None:
    """Both legs of a race rejected, the deadline spent: the escalation past them is not made.

    The task stops saying so (not that the top tier's first ask would not fit); top is not asked.
    """
    cascade, backend = _timed(
        {"small": [Reply("no", latency_s=1.5)], "big": [Reply("nope", latency_s=0.5)],
         "top": ["ok"]},
        [Tier("small", hedge=True), Tier("big", expected_latency_s=0.5),
         Tier("top", expected_latency_s=5.0)],
        deadline_s=1.0,
    )  # fmt: skip
    outcome = cascade.run({"id": "t", "input": "x"})
    assert outcome.status is Status.DEADLINE
    assert models_called(backend) == ["small", "big"]
    assert outcome.reasons[0].startswith("deadline 1 s: escalating to top not started")


def test_a_hedging_tiers_re_ask_is_not_hedged() -> None:
    """Only a tier's first ask races the tier above: a slow re-ask is waited for."""
    cascade, backend = _timed(
        {"small": [Reply("no", latency_s=0.1), Reply("ok", latency_s=1.2)],
         "big": [Reply("ok", latency_s=0.1)]},
        [Tier("small", hedge=True, reasks=1), Tier("big", expected_latency_s=0.5)],
        deadline_s=1.5,
    )  # fmt: skip
    outcome = cascade.run({"id": "t", "input": "x"})
    assert (outcome.status, outcome.model) == (Status.ACCEPTED, "small")
    assert models_called(backend) == ["small", "small"]


def test_a_hedge_that_spends_the_budget_ends_the_task_there() -> None:
    """The race's second answer spends the budget: the task stops, the top tier is not tried."""
    usage, price = Usage(1000, 1000), Price(5.0, 5.0)
    cascade, backend = _timed(
        {"small": [Reply("no", usage=usage, latency_s=0.7)],
         "big": [Reply("nope", usage=usage, latency_s=0.5)], "top": ["ok"]},
        [Tier("small", hedge=True, price=price), Tier("big", expected_latency_s=0.5, price=price),
         Tier("top", expected_latency_s=0.1, price=price)],
        deadline_s=1.0,
        budget_usd=0.015,
    )  # fmt: skip
    outcome = cascade.run({"id": "t", "input": "x"})
    assert outcome.status is Status.BUDGET_EXHAUSTED
    assert models_called(backend) == ["small", "big"]
    assert [s.kind for s in outcome.steps] == [CallKind.CALL, CallKind.HEDGE]
    assert outcome.reasons == (
        "wanted 'ok', got 'no'",
        "wanted 'ok', got 'nope'",
        "task budget reached after spending $0.020000",
    )


def test_a_validator_is_told_which_tier_answered() -> None:
    """Each attempt a validator judges names its tier, the model served, its time and history."""
    seen: list[tuple[int, str, str | None, float, int, tuple[str, ...]]] = []

    def judge(attempt: Attempt) -> Verdict:
        seen.append(
            (
                attempt.tier_index,
                attempt.tier.model,
                attempt.model_served,
                attempt.latency_s,
                attempt.number,
                tuple(a.output for a in attempt.history),
            )
        )
        return says_ok(attempt)

    cascade, _backend = make(
        {"small": [Reply("no", model_served="small-v2", latency_s=0.05)], "big": ["ok"]},
        ["small", "big"],
        judge,
    )
    assert cascade.run({"id": "t", "input": "x"}).accepted
    assert [(i, m, served, n, h) for i, m, served, _, n, h in seen] == [
        (0, "small", "small-v2", 0, ()),
        (1, "big", "big", 1, ("no",)),
    ]
    assert seen[0][3] >= 0.05


class _Confident:
    """A check that reads the model's confidence: passes when it is at least 0.5."""

    reads_confidence = True

    def __call__(self, attempt: Attempt) -> Verdict:
        return Verdict((attempt.confidence or 0.0) >= 0.5, reason="unsure")


def test_only_an_untrusted_tier_whose_check_reads_confidence_asks_for_it() -> None:
    """The backend is asked for the model's confidence (which may cost) only when it is read."""
    reading, asked = make(
        {"small": [Reply("a", confidence=0.2)], "big": ["b"]},
        ["small", Tier("big", trusted=True)],
        _Confident(),
    )
    outcome = reading.run({"id": "t", "input": "x"})
    assert (outcome.status, outcome.model) == (Status.ACCEPTED, "big")
    assert [r.confidence for r in asked.calls] == [True, False]
    plain, backend = make({"small": ["ok"]}, ["small"])
    assert plain.run({"id": "t", "input": "x"}).accepted
    assert [r.confidence for r in backend.calls] == [False]


def test_a_tier_whose_models_all_fail_is_a_step_of_that_tier() -> None:
    """With escalate_on_provider_error, the failed call is tier 0's step, then tier 1 answers."""
    cascade, _backend = make(
        {"small": [ServerError("503 down")], "big": ["ok"]},
        [Tier("small", retries=0), "big"],
        escalate_on_provider_error=True,
    )
    outcome = cascade.run({"id": "t", "input": "x"})
    assert [(s.tier, s.model_requested, s.decision) for s in outcome.steps] == [
        (0, "small", Decision.ESCALATE),
        (1, "big", Decision.ACCEPT),
    ]


def _passes(attempt: Attempt) -> Verdict:
    return Verdict(True)


def _fails(attempt: Attempt) -> Verdict:
    return Verdict(False, reason="never")


def test_the_accepted_answer_is_delivered_though_a_rejected_one_passed_more_of_its_checks() -> None:
    """The accepted answer is delivered, not a rejected one that passed a larger share.

    Tier 1 accepts passing one of its two checks; tier 0's answer passed two of three.
    """
    cascade, _backend = make(
        {"small": ["no"], "big": ["ok"]},
        ["small", Tier("big", validate=any_of(_fails, says_ok))],
        all_of(_passes, _passes, says_ok),
    )
    outcome = cascade.run({"id": "t", "input": "x"})
    assert (outcome.status, outcome.output, outcome.tier, outcome.best_step) == (
        Status.ACCEPTED,
        "ok",
        1,
        1,
    )


async def _no_wait(seconds: float) -> None:
    """A retry's sleep that only yields, so an outage's waits take no time."""
    await asyncio.sleep(0)


def test_a_wait_for_a_provider_is_logged_and_the_failed_call_is_the_tiers_step() -> None:
    """Each wait names the task, tier, model, seconds (to the millisecond) and the error."""
    with capture_steps() as events:
        cascade, _backend = make(
            {"small": [ServerError("503 down"), "ok"]},
            [Tier("small", retries=0)],
            retry=RetryPolicy(base_s=0.1234, jitter=0.0, sleep=_no_wait),
            log=None,
        )
        outcome = cascade.run({"id": "t", "input": "x"})
    assert outcome.accepted
    assert [(s.tier, s.decision) for s in outcome.steps] == [
        (0, Decision.ERROR),
        (0, Decision.ACCEPT),
    ]
    waits = [e for e in events if e["event"] == "cascade.wait"]
    assert len(waits) == 1
    assert {k: waits[0].get(k) for k in ("task_id", "tier", "model", "seconds", "error")} == {
        "task_id": "t",
        "tier": 0,
        "model": "small",
        "seconds": 0.123,
        "error": "503 down",
    }


def test_a_provider_still_down_at_the_deadline_is_named_with_its_error() -> None:
    """The task ends ``deadline`` saying which model could not answer in time, and why."""
    cascade, _backend = _timed(
        {"small": [ServerError("503 down")]}, [Tier("small", retries=0)], deadline_s=0.3
    )
    outcome = cascade.run({"id": "t", "input": "x"})
    assert outcome.status is Status.DEADLINE
    assert outcome.reasons[0] == "deadline 0.3 s: small could not answer in time: 503 down"


class _FailsOneTask:
    """A backend whose model answers every task but ``bad``, which it fails with a 503."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def complete(self, request: Request) -> Response:
        self.asked.append(request.task_id)
        if request.task_id == "bad":
            raise ServerError("503 not you")
        await asyncio.sleep(0.01)
        return Response("ok", request.model, Usage(1, 1), 0.0, 0.01, None, 0.0)


def test_a_provider_that_answers_other_tasks_fails_this_one_after_three_waits() -> None:
    """Not an outage: after its third wait, while others are answered, the task fails."""
    backend = _FailsOneTask()

    async def pause(seconds: float) -> None:
        await asyncio.sleep(0.02)

    retry = RetryPolicy(base_s=0.1, jitter=0.0, sleep=pause)
    settings = Settings(backend=backend, log=False, retry=retry, max_outage_s=5.0)
    cascade = Cascade(Plan([Tier("m", retries=0)], says_ok), settings=settings)

    async def both() -> tuple[Outcome, Outcome]:
        bad = cascade.arun({"id": "bad", "input": "x"})
        good = cascade.arun({"id": "good", "input": "y"})
        return await asyncio.gather(bad, good)

    bad, good = asyncio.run(both())
    assert good.accepted
    assert bad.status is Status.FAILED
    assert bad.reasons[0] == "tier 0 (m) answers other tasks but not this one: 503 not you"
    assert backend.asked.count("bad") == 4


def test_a_call_is_refused_by_what_is_left_of_the_budget_not_the_whole_budget() -> None:
    """After tier 0 spent $0.01 of $0.015, tier 1's call that could cost $0.01 is not made."""
    price = Price(5.0, 5.0)
    cascade, backend = make(
        {"small": [Reply("no", usage=Usage(1000, 1000))], "big": ["ok"]},
        [Tier("small", price=price), Tier("big", price=price, params={"max_tokens": 2000})],
        budget_usd=0.015,
    )
    outcome = cascade.run({"id": "t", "input": "x"})
    assert outcome.status is Status.BUDGET_EXHAUSTED
    assert models_called(backend) == ["small"]


def test_every_tier_asked_for_the_record_gets_the_task_and_its_own_examples() -> None:
    """Calibration calls carry the task's id and read confidence; a failed one is an error step.

    A tier without few_shot is sent no examples.
    """
    examples = ({"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"})
    cascade, backend = make(
        {"a": ["ok"], "b": ["x"], "c": [ServerError("503 down")]},
        ["a", "b", Tier("c", few_shot=False, retries=0)],
        examples=examples,
        record_all_tiers=1.0,
    )
    outcome = cascade.run({"id": "t", "input": "x"})
    assert (outcome.status, outcome.output, outcome.compute_s) == (Status.ACCEPTED, "ok", 0.0)
    asked = [(r.model, r.task_id, len(r.messages), r.confidence) for r in backend.calls]
    assert asked == [("a", "t", 3, False), ("b", "t", 3, True), ("c", "t", 1, True)]
    assert [(s.tier, s.kind, s.decision) for s in outcome.steps] == [
        (0, CallKind.CALL, Decision.ACCEPT),
        (1, CallKind.CALIBRATION, Decision.RECORD),
        (2, CallKind.CALIBRATION, Decision.ERROR),
    ]


def test_a_calibration_call_cut_off_in_flight_is_a_step_of_its_tier() -> None:
    """Cut off while a tier above is asked for the record: the cancelled call is that tier's."""
    script: dict[str, Script] = {"a": ["ok"], "b": [Hang()]}
    cascade, backend = cascade_of(script, [Tier("a"), Tier("b")])
    settings = dataclasses.replace(cascade.settings, record_all_tiers=1.0)
    calibrating = Cascade(cascade.plan, settings=settings)
    steps = run(cut_off(calibrating, lambda: len(backend.calls) >= 2))
    assert [(s.tier, s.model_requested, s.kind, s.decision) for s in steps] == [
        (0, "a", CallKind.CALL, Decision.ACCEPT),
        (1, "b", CallKind.CALIBRATION, Decision.CANCEL),
    ]


class _Local:
    """A backend that answers "ok" at $0.01 and half a second of local compute per call."""

    async def complete(self, request: Request) -> Response:
        return Response("ok", request.model, Usage(3, 2), 0.01, 0.1, None, 0.5)


def test_a_tasks_cost_and_compute_count_its_calibration_calls() -> None:
    """The tiers asked for the record add their cost and compute to the task's."""
    settings = Settings(backend=_Local(), log=False, retry=NO_WAIT, record_all_tiers=1.0)
    cascade = Cascade(Plan(["a", "b", "c"], says_ok), settings=settings)
    outcome = cascade.run({"id": "t", "input": "x"})
    assert (outcome.status, outcome.tier, len(outcome.steps)) == (Status.ACCEPTED, 0, 3)
    assert (round(outcome.cost_usd, 9), outcome.compute_s) == (0.03, 1.5)


_PRICE = Price(1000.0, 2000.0)


def _live_race(script: Mapping[str, Script]) -> tuple[Outcome, float]:
    """Small (hedged) and big (expected in 0.2 s) raced in real time with 0.4 s to answer."""
    cascade, _backend = _timed(
        script,
        [
            Tier("small", hedge=True, price=_PRICE),
            Tier("big", expected_latency_s=0.2, price=_PRICE),
        ],
        deadline_s=0.4,
        virtual=False,
    )
    began = time.monotonic()
    outcome = cascade.run({"id": "t", "input": "hello there"})
    return outcome, time.monotonic() - began


def _prompt_price() -> float:
    return count_tokens([{"role": "user", "content": "hello there"}]) * 1000.0 / 1e6


def test_a_live_race_won_by_the_hedge_cuts_the_first_call_as_its_tiers_call() -> None:
    """Big, asked 0.2 s in, wins: small's call, cut in flight, is tier 0's cancelled call.

    It is billed its prompt, and ran from the start of the race to the cut.
    """
    outcome, wall_s = _live_race({"small": [Hang()], "big": [Reply("ok", latency_s=0.02)]})
    assert (outcome.status, outcome.model) == (Status.ACCEPTED, "big")
    lost = next(s for s in outcome.steps if s.decision is Decision.CANCEL)
    assert (lost.tier, lost.model_requested, lost.kind, lost.output) == (
        0, "small", CallKind.CALL, None,
    )  # fmt: skip
    assert lost.cost_usd == pytest.approx(_prompt_price())
    assert 0.15 < lost.latency_s <= wall_s


def test_a_live_race_won_by_the_first_call_cuts_the_hedge_as_the_hedge() -> None:
    """Small answers at 0.3 s while big (asked at 0.2 s) runs: big's is tier 1's cut hedge.

    It is billed its prompt, and ran only from its own start to the cut.
    """
    outcome, wall_s = _live_race({"small": [Reply("ok", latency_s=0.3)], "big": [Hang()]})
    assert (outcome.status, outcome.model) == (Status.ACCEPTED, "small")
    lost = next(s for s in outcome.steps if s.decision is Decision.CANCEL)
    assert (lost.tier, lost.model_requested, lost.kind, lost.output) == (
        1, "big", CallKind.HEDGE, None,
    )  # fmt: skip
    assert lost.cost_usd == pytest.approx(_prompt_price())
    assert 0.0 <= lost.latency_s <= wall_s - 0.15


def test_a_tier_without_few_shot_is_sent_no_examples_in_the_climb() -> None:
    """The plan's worked examples go only to the tiers that take them."""
    examples = ({"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"})
    cascade, backend = make(
        {"a": ["no"], "b": ["ok"]}, [Tier("a", few_shot=False), "b"], examples=examples
    )
    assert cascade.run({"id": "t", "input": "x"}).accepted
    assert [(r.model, len(r.messages)) for r in backend.calls] == [("a", 1), ("b", 3)]


def test_a_task_cut_off_mid_race_records_each_legs_call_at_its_own_tier() -> None:
    """Both legs in flight when the task is cut off: each cancelled call is its tier's."""
    script: dict[str, Script] = {"small": [Hang()], "big": [Hang()]}
    cascade, backend = cascade_of(
        script, [Tier("small", hedge=True), Tier("big", expected_latency_s=0.1)]
    )
    hedged = Cascade(Plan(cascade.plan.tiers, says_ok, deadline_s=0.3), settings=cascade.settings)
    steps = run(cut_off(hedged, lambda: len(backend.calls) >= 2))
    assert sorted((s.tier, s.model_requested, s.kind, s.decision) for s in steps) == [
        (0, "small", CallKind.CALL, Decision.CANCEL),
        (1, "big", CallKind.HEDGE, Decision.CANCEL),
    ]


def test_an_answer_due_exactly_when_the_hedge_would_start_starts_no_hedge() -> None:
    """The hedged tier answers just as the hedge is due (on the task's clock): no hedge."""
    cascade, backend = _timed(
        {"a": [Reply("no", latency_s=1.0)], "small": [Reply("ok", latency_s=2.0)],
         "big": [Reply("ok", latency_s=0.5)]},
        [Tier("a"), Tier("small", hedge=True), Tier("big", expected_latency_s=1.0)],
        deadline_s=4.0,
    )  # fmt: skip
    outcome = cascade.run({"id": "t", "input": "x"})
    assert (outcome.status, outcome.model) == (Status.ACCEPTED, "small")
    assert models_called(backend) == ["a", "small"]


def test_a_hedge_is_logged_with_its_task_tier_model_and_start() -> None:
    """The hedge event names the task, the tier and model asked early, and when (to the ms).

    The race's overlap is counted once in the task's time; both legs are first asks.
    """
    backend = ScriptedBackend(
        {"a": [Reply("no", latency_s=1.0)], "small": [Reply("ok", latency_s=2.0)],
         "big": [Reply("ok", latency_s=0.5)]},
        virtual_time=True,
    )  # fmt: skip
    ladder = [Tier("a"), Tier("small", hedge=True), Tier("big", expected_latency_s=1.23456)]
    with capture_steps() as events:
        settings = Settings(backend=backend, log=None, retry=NO_WAIT)
        cascade = Cascade(Plan(ladder, says_ok, deadline_s=4.0), settings=settings)
        outcome = cascade.run({"id": "t", "input": "x"})
    assert (outcome.status, outcome.model) == (Status.ACCEPTED, "small")
    # a 1.0, then small's 2.0 s raced by big from 1.765 s: big's 0.235 s overlap counts once
    assert outcome.latency_s == pytest.approx(3.0)
    assert [(r.model, r.reask, r.confidence) for r in backend.calls] == [
        ("a", 0, False),
        ("small", 0, False),
        ("big", 0, False),
    ]
    hedges = [e for e in events if e["event"] == "cascade.hedge"]
    assert [{k: e.get(k) for k in ("task_id", "tier", "model", "after_s")} for e in hedges] == [
        {"task_id": "t", "tier": 2, "model": "big", "after_s": 1.765}
    ]


class _FailsLate:
    """Small fails for good after 0.3 s; big answers "ok" 0.2 s after it is asked."""

    async def complete(self, request: Request) -> Response:
        if request.model == "small":
            await asyncio.sleep(0.3)
            raise AuthenticationFailed("401 bad key")
        await asyncio.sleep(0.2)
        return Response("ok", request.model, Usage(1, 1), 0.0, 0.2, None, 0.0)


def test_a_hedge_still_runs_when_the_tier_below_fails_for_good_mid_race() -> None:
    """Small's call fails after the hedge started: big's answer, judged next, is accepted."""
    settings = Settings(backend=_FailsLate(), log=False, retry=NO_WAIT)
    ladder = [Tier("small", hedge=True, retries=0), Tier("big", expected_latency_s=0.4)]
    cascade = Cascade(Plan(ladder, says_ok, deadline_s=0.6), settings=settings)
    outcome = cascade.run({"id": "t", "input": "x"})
    assert (outcome.status, outcome.model, outcome.output) == (Status.ACCEPTED, "big", "ok")


def test_the_first_answer_of_a_race_that_spends_the_budget_is_a_stop() -> None:
    """Judged first, the tier below's answer already spends the budget: its step says stop."""
    usage, price = Usage(1000, 1000), Price(5.0, 5.0)
    cascade, _backend = _timed(
        {"small": [Reply("no", usage=usage, latency_s=0.7)],
         "big": [Reply("nope", usage=usage, latency_s=0.5)], "top": ["ok"]},
        [Tier("small", hedge=True, price=price), Tier("big", expected_latency_s=0.5, price=price),
         Tier("top", expected_latency_s=0.1, price=price)],
        deadline_s=1.0,
        budget_usd=0.005,
    )  # fmt: skip
    outcome = cascade.run({"id": "t", "input": "x"})
    assert outcome.status is Status.BUDGET_EXHAUSTED
    assert [(s.model_requested, s.decision) for s in outcome.steps] == [
        ("small", Decision.STOP),
        ("big", Decision.STOP),
    ]


def test_a_race_keeps_the_first_answer_for_the_checks_of_the_other_leg() -> None:
    """Big's agreement check asks small's model the same question: the raced answer is reused."""
    cascade, backend = _timed(
        {"small": [Reply("x", latency_s=0.7), "x"], "big": [Reply("X", latency_s=0.5)]},
        [Tier("small", hedge=True, validate=one_of(["nope"])),
         Tier("big", expected_latency_s=0.5, validate=agreement("small", compare="text"))],
        deadline_s=1.0,
    )  # fmt: skip
    outcome = cascade.run({"id": "t", "input": "x"})
    assert (outcome.status, outcome.model) == (Status.ACCEPTED, "big")
    assert models_called(backend) == ["small", "big"]


def test_a_rejected_hedge_goes_on_with_its_second_ask_and_no_more() -> None:
    """A hedge is its tier's first ask: with one re-ask left, a rejected re-ask ends the climb."""
    cascade, backend = _timed(
        {"small": [Reply("no", latency_s=0.1)] * 19 + [Reply("no", latency_s=1.9)],
         "big": [Reply("ok", latency_s=0.05)] * 19
         + [Reply("nope", latency_s=0.05), Reply("still no", latency_s=0.05),
            Reply("ok", latency_s=0.05)]},
        [Tier("small", hedge=True, reasks=1), Tier("big", expected_latency_s=0.5, reasks=1)],
        deadline_s=60.0,
    )  # fmt: skip
    for number in range(19):  # big's measured p90 (0.05 s) will leave time for a re-ask
        assert cascade.run({"id": f"w{number}", "input": "x"}).model == "big"
    outcome = cascade.run({"id": "t", "input": "x", "deadline_s": 2.0})
    assert outcome.status is Status.EXHAUSTED
    assert [(r.model, r.reask) for r in backend.calls[-3:]] == [
        ("small", 0),
        ("big", 0),
        ("big", 1),
    ]


def test_a_tier_that_failed_to_answer_costs_nothing_against_the_budget() -> None:
    """With escalate_on_provider_error and a budget, a failed tier escalates: nothing was spent."""
    cascade, backend = make(
        {"small": [ServerError("503 down")], "big": ["ok"]},
        [Tier("small", retries=0), "big"],
        escalate_on_provider_error=True,
        budget_usd=0.5,
    )
    outcome = cascade.run({"id": "t", "input": "x"})
    assert (outcome.status, outcome.model) == (Status.ACCEPTED, "big")
    assert models_called(backend) == ["small", "big"]


def test_a_tiers_own_secret_echoed_in_an_error_is_redacted_though_it_looks_like_no_key() -> None:
    """The value of a tier's secret parameter is redacted from errors by its value alone."""
    secret = "correct-horse-battery-staple"
    cascade, _backend = make(
        {"cheap": [AuthenticationFailed(f"bad password {secret} for this account")]},
        [Tier("cheap", params={"api_key": secret})],
    )
    outcome = cascade.run({"id": "t", "input": "x"})
    assert outcome.status is Status.FAILED
    assert secret not in repr(outcome)
    assert "[REDACTED]" in outcome.reasons[0]


class _Knowing:
    """A backend that gets ready per model, quotes big's price, and knows big's latency."""

    def __init__(self, ready_fails: bool = False) -> None:
        self.events: list[tuple[str, str]] = []
        self.ready_fails = ready_fails

    async def ready(self, model: str) -> None:
        self.events.append(("ready", model))
        if self.ready_fails:
            raise RuntimeError("cannot get ready")

    def quote(self, model: str) -> Quote | None:
        return Quote(Price(5.0, 5.0), max_output_tokens=2000) if model == "big" else None

    def expected_latency_s(self, model: str) -> float | None:
        return 5.0 if model == "big" else None

    async def complete(self, request: Request) -> Response:
        self.events.append(("call", request.model))
        return Response("ok", request.model, Usage(1, 1), 0.0, 0.01, None, 0.0)


def _knowing(
    backend: _Knowing,
    tier: Tier | str = "big",
    budget_usd: float | None = None,
    deadline_s: float | None = None,
) -> Cascade:
    settings = Settings(backend=backend, log=False, retry=NO_WAIT)
    plan = Plan([tier], says_ok, budget_usd=budget_usd, deadline_s=deadline_s)
    return Cascade(plan, settings=settings)


def test_a_backend_is_readied_for_a_model_before_its_call_and_a_failed_ready_is_no_failure() -> (
    None
):
    """The backend's setup for a model runs first; if it fails, the call is still made."""
    for fails in (False, True):
        backend = _Knowing(ready_fails=fails)
        assert _knowing(backend).run({"id": "t", "input": "x"}).accepted
        assert backend.events == [("ready", "big"), ("call", "big")]


def test_the_backends_quote_prices_a_call_before_it_is_made() -> None:
    """A tier with no price of its own is priced by the backend's quote: too dear, not asked."""
    backend = _Knowing()
    capped = Tier("big", params={"max_tokens": 2000})
    outcome = _knowing(backend, capped, budget_usd=0.005).run({"id": "t", "input": "x"})
    assert outcome.status is Status.BUDGET_EXHAUSTED
    assert ("call", "big") not in backend.events
    assert "big not asked: the call could cost up to $0.0100" in outcome.reasons[0]


def test_the_backends_known_latency_is_what_a_deadline_plans_by() -> None:
    """The backend says big takes 5 s: with 1 s to answer, it is not asked."""
    backend = _Knowing()
    outcome = _knowing(backend, deadline_s=1.0).run({"id": "t", "input": "x"})
    assert outcome.status is Status.DEADLINE
    assert ("call", "big") not in backend.events
    assert "takes 5 s (p90)" in outcome.reasons[0]


def test_a_losing_hedge_that_retried_keeps_its_error_and_its_answer_cut_where_the_race_ended() -> (
    None
):
    """A losing hedge keeps its failed call as an error, its answer cut where the race ended.

    Big, asked at 0.5 s, fails once then would answer at 1.0 s; small wins at 0.8 s: big's
    answer is dropped, cut to the 0.3 s it ran before small won.
    """
    cascade, _backend = _timed(
        {"small": [Reply("ok", latency_s=0.8)],
         "big": [ServerError("503 busy"), Reply("ok", latency_s=0.5)]},
        [Tier("small", hedge=True), Tier("big", expected_latency_s=0.5, retries=1)],
        deadline_s=1.0,
    )  # fmt: skip
    outcome = cascade.run({"id": "t", "input": "x"})
    assert (outcome.status, outcome.model) == (Status.ACCEPTED, "small")
    lost = [s for s in outcome.steps if s.model_requested == "big"]
    assert [(s.decision, s.error, s.output) for s in lost] == [
        (Decision.ERROR, "ServerError: 503 busy", None),
        (Decision.CANCEL, None, "ok"),
    ]
    assert lost[1].latency_s == pytest.approx(0.3, abs=0.01)


def test_an_open_breaker_is_a_failed_call_of_its_model_and_its_opening_is_logged() -> None:
    """An open breaker refuses the next task's call as cheap's own; its opening is logged.

    Three 503s open cheap's breaker (logged for the task that opened it); the fallback answers.
    After the cooldown, the probe's admission is logged for the task that made it.
    """
    clock = _Clock()
    guard = Guard(keys=["cheap", "spare"], breaker=BreakerSettings(3, 30.0), clock=clock.now)
    with capture_steps() as events:
        cascade, _backend = make(
            {"cheap": [ServerError("503")] * 3 + ["ok"], "spare": ["ok", "ok"]},
            [Tier("cheap", retries=2, fallbacks=("spare",))],
            retry=RetryPolicy(base_s=0.5, jitter=0.0, sleep=clock.sleep),
            guard=guard,
            log=None,
        )
        assert cascade.run({"id": "t1", "input": "x"}).accepted
        second = cascade.run({"id": "t2", "input": "x"})
        clock.time += 31.0  # the cooldown is over: the next call is the breaker's probe
        third = cascade.run({"id": "t3", "input": "x"})
    assert [(s.model_requested, s.kind, s.decision) for s in second.steps] == [
        ("cheap", CallKind.CALL, Decision.ERROR),
        ("spare", CallKind.FALLBACK, Decision.ACCEPT),
    ]
    assert (second.steps[0].error or "").startswith("CircuitOpen: cheap: circuit breaker is open")
    opened = [e for e in events if e["event"] == "cascade.breaker" and e.get("after") == "open"]
    assert [(e.get("model"), e.get("task_id")) for e in opened] == [("cheap", "t1")]
    assert (third.model, third.steps[0].kind) == ("cheap", CallKind.CALL)
    probed = [e for e in events if e["event"] == "cascade.breaker" and e.get("before") == "open"]
    assert [(e.get("model"), e.get("task_id")) for e in probed] == [("cheap", "t3")]


class _Clock:
    """A clock that moves only when something sleeps on it."""

    def __init__(self) -> None:
        self.time = 0.0

    def now(self) -> float:
        return self.time

    async def sleep(self, seconds: float) -> None:
        self.time += seconds


def test_a_call_a_batch_did_not_answer_is_asked_at_once_as_a_retry() -> None:
    """A batch that cannot be submitted: the tier's call is made directly, as a retry."""
    api = MemoryBatches()
    api.faults = {"upload": [AuthenticationFailed("401: bad key")]}
    with Store(":memory:") as store:
        settings = Settings(batcher=batcher(api, store), log=False)
        backend = ScriptedBackend({"openai/cheap": ["ok"]})
        cascade = Cascade([TIER], backend=backend, settings=settings)
        outcome = cascade.run({"id": "t", "input": "x"})
    assert outcome.accepted
    assert [(s.kind, s.decision, s.batch) for s in outcome.steps] == [
        (CallKind.CALL, Decision.ERROR, True),
        (CallKind.RETRY, Decision.ACCEPT, False),
    ]


def test_a_model_paused_by_a_429_longer_than_a_task_waits_is_a_failed_call_of_its_own() -> None:
    """A model paused by a 429 for longer than a task waits is refused at once, as its own call.

    After a 429 asking for 60 s, the next task's call to cheap names the pause; the fallback
    answers.
    """
    clock = _Clock()
    guard = Guard(keys=["cheap", "spare"], clock=clock.now)
    cascade, _backend = make(
        {"cheap": [RateLimited("429 slow down", retry_after_s=60.0)], "spare": ["ok", "ok"]},
        [Tier("cheap", retries=1, fallbacks=("spare",))],
        retry=RetryPolicy(base_s=0.5, jitter=0.0, max_wait_s=5.0, sleep=clock.sleep),
        guard=guard,
    )
    assert cascade.run({"id": "t1", "input": "x"}).accepted
    second = cascade.run({"id": "t2", "input": "x"})
    assert [(s.model_requested, s.kind, s.decision) for s in second.steps] == [
        ("cheap", CallKind.CALL, Decision.ERROR),
        ("spare", CallKind.FALLBACK, Decision.ACCEPT),
    ]
    assert second.steps[0].latency_s == 0.0  # refused without a call
    assert second.steps[0].error == "RateLimited: cheap: paused for 60s after a 429"
