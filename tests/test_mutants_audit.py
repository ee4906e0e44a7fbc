"""Audits and their sample at the edges, where mutation testing found them unpinned.

Each test states what a report or a run shows at a boundary: a share of 0 or 1, an interval
with no hits or all hits, and the rates a report rounds.
"""

from __future__ import annotations

import asyncio
import errno
import json
import math
import re
from pathlib import Path

import pytest

from cascade.audit import AuditPlan, drift, sampled, wilson
from cascade.audit.auditor import Auditor, AuditTarget
from cascade.audit.drift import Alarm, DriftPlan, DriftWatch, InArrivalOrder
from cascade.audit.plan import proportion
from cascade.backends import ScriptedBackend
from cascade.backends.scripted import Hang, Item, Reply
from cascade.budget import JobBudget
from cascade.engine.calls import Caller
from cascade.enums import CallKind, Decision, Status
from cascade.errors import AuthenticationFailed
from cascade.outcome import Outcome
from cascade.retry import RetryPolicy
from cascade.steplog import StepLog, capture_steps
from cascade.store import Store
from cascade.store.unsaved import read_kept, restore_unsaved
from cascade.tokens import count_tokens
from cascade.types import Price, Request, Task, Tier, Usage

_IDS = [f"t{n}" for n in range(2000)]


@pytest.mark.parametrize(("share", "count"), [(0.0, 0), (-1.0, 0), (1.0, len(_IDS))])
def test_a_share_of_zero_audits_nothing_and_of_one_everything(share: float, count: int) -> None:
    """At share 0 (or below) no answer is audited; at share 1 every one is."""
    plan = AuditPlan(share=share, model="m")
    assert sum(sampled(plan, "kind", 0, i) for i in _IDS) == count


def test_the_sample_differs_between_strata() -> None:
    """Another task type or tier draws other tasks at the same share."""
    plan = AuditPlan(share=0.5, model="m")
    first = {i for i in _IDS if sampled(plan, "a", 0, i)}
    assert first != {i for i in _IDS if sampled(plan, "b", 0, i)}
    assert first != {i for i in _IDS if sampled(plan, "a", 1, i)}


@pytest.mark.parametrize(
    ("hits", "trials", "low", "high"),
    [
        (0, 10, 0.0, 0.277533),
        (10, 10, 0.722467, 1.0),
        (5, 10, 0.236593, 0.763407),
        (1, 1, 0.206549, 1.0),
        (100, 100, 0.963007, 1.0),
    ],
)
def test_the_wilson_interval_at_its_edges(hits: int, trials: int, low: float, high: float) -> None:
    """No hits gives a low end of 0, all hits a high end of 1, half of them a symmetric interval."""
    got = wilson(hits, trials)
    assert got[0] == pytest.approx(low, abs=1e-6)
    assert got[1] == pytest.approx(high, abs=1e-6)
    assert 0.0 <= got[0] <= got[1] <= 1.0


@pytest.mark.parametrize("trials", [0, -1])
def test_no_trials_is_the_whole_interval(trials: int) -> None:
    """With nothing audited the interval says nothing: 0 to 1."""
    assert wilson(0, trials) == (0.0, 1.0)


def test_a_report_gives_the_rate_and_its_interval_rounded() -> None:
    """The rate and both ends are rounded to six places, under the name given."""
    assert proportion("disagreement", 1, 3) == {
        "disagreement_rate": 0.333333,
        "disagreement_ci95": [0.061492, 0.79234],
    }


def test_a_report_with_nothing_audited_says_zero_of_nothing() -> None:
    """No audits: a rate of 0 and the whole interval, not a division by zero."""
    assert proportion("false_accept", 0, 0) == {
        "false_accept_rate": 0.0,
        "false_accept_ci95": [0.0, 1.0],
    }


def test_audits_that_start_disagreeing_raise_a_disagreement_alarm_for_their_tier() -> None:
    """Ten agreeing audits, then ten disagreeing: the tier's disagreement rose, and says so."""
    watch = DriftWatch(
        {"echo": DriftPlan(window=10, baseline=10, check_every=10, false_alarm=0.01)}
    )
    alarms = [watch.audit("echo", 2, disagreed=n >= 10) for n in range(20)]
    raised = [alarm for alarm in alarms if alarm is not None]
    assert len(raised) == 1
    alarm = raised[0]
    assert (alarm.task_type, alarm.tier, alarm.signal) == ("echo", 2, "disagreement")
    assert (alarm.baseline_rate, alarm.window_rate, alarm.observed) == (0.0, 1.0, 20)
    assert alarm.text().startswith("drift: echo tier 2 disagreement rose from 0.0% to 100.0%")
    assert watch.audit("other", 2, disagreed=True) is None  # a type with no drift alarms


def _auditor(
    answers: list[Item],
    store: Store,
    cap: float | None = None,
    share: float = 1.0,
    budget: JobBudget | None = None,
    model: str = "auditor",
) -> tuple[Auditor, AuditTarget]:
    plan = AuditPlan(share=share, model=model, max_cost_usd=cap, price=Price(1.0, 1.0))
    backend = ScriptedBackend({model: list(answers)})
    return _auditor_on(backend, store, plan, cap, budget)


def _auditor_on(
    backend: ScriptedBackend,
    store: Store,
    plan: AuditPlan,
    cap: float | None = None,
    budget: JobBudget | None = None,
) -> tuple[Auditor, AuditTarget]:
    target = AuditTarget.of(
        plan, (Tier("cheap"), Tier("mid"), Tier("dear")), "{input}", (), JobBudget(cap)
    )
    caller = Caller(backend, RetryPolicy())
    auditor = Auditor({"echo": target}, caller, store, "r1", budget=budget, log=StepLog())
    return auditor, target


def _accepted(tier: int | None, status: Status = Status.ACCEPTED, kind: str = "echo") -> Outcome:
    return Outcome("r1", "t1", kind, status, "yes", None, tier, "cheap", (), 0.0, 0.0)


_TASK = Task("t1", input="q", type="echo")


@pytest.mark.parametrize(
    ("outcome", "task", "model", "audited"),
    [
        (_accepted(0), _TASK, "dear", True),
        (_accepted(1), _TASK, "dear", True),  # the tier just below the top
        (_accepted(2), _TASK, "dear", False),  # the top tier's own model would be asked again
        (_accepted(2), _TASK, "auditor", True),  # another model can check the top tier too
        (_accepted(3), _TASK, "auditor", False),  # no such tier
        (_accepted(None), _TASK, "dear", False),
        (_accepted(0, Status.FAILED), _TASK, "dear", False),
        (_accepted(0, kind="other"), Task("t1", input="q", type="other"), "dear", False),
    ],
)
def test_accepted_answers_of_the_tiers_the_audit_model_can_check_are_audited(
    outcome: Outcome, task: Task, model: str, audited: bool
) -> None:
    """Tiers below the top are audited; the top too, when the audit model is another model."""
    with Store(":memory:") as store:
        auditor, _target = _auditor(["yes"], store, model=model)

        async def go() -> bool:
            started = auditor.consider(task, outcome)
            await auditor.drain()
            return started

        assert asyncio.run(go()) is audited


@pytest.mark.parametrize(
    ("answer", "what", "decision"),
    [("yes", "agreed", Decision.AGREE), ("no", "disagreed", Decision.DISAGREE)],
)
def test_an_audit_is_stored_priced_and_told(answer: str, what: str, decision: Decision) -> None:
    """The audit's call is a step of the task; its cost counts; an event says how it went."""
    with Store(":memory:") as store, capture_steps() as events:
        auditor, target = _auditor([answer], store)

        async def go() -> None:
            assert auditor.consider(_TASK, _accepted(0))
            await auditor.drain()

        asyncio.run(go())
        (step,) = [s for s in store.steps("r1", "t1") if s.kind is CallKind.AUDIT]
    assert (step.model_requested, step.decision, step.tier) == ("auditor", decision, 0)
    assert step.cost_usd > 0
    assert target.spent.spent_usd == pytest.approx(step.cost_usd)
    (event,) = [e for e in events if e["event"] == "cascade.audit"]
    assert {k: event[k] for k in ("what", "task_id", "task_type", "tier", "model", "run_id")} == {
        "what": what,
        "task_id": "t1",
        "task_type": "echo",
        "tier": 0,
        "model": "auditor",
        "run_id": "r1",
    }
    assert event["cost_usd"] == pytest.approx(step.cost_usd)
    assert (event.get("why") is None) is (what == "agreed")


def test_an_audit_past_its_cap_is_skipped_and_says_why() -> None:
    """Once the audit's max_cost_usd is spent, the next audit asks nothing and says so."""
    with Store(":memory:") as store, capture_steps() as events:
        auditor, target = _auditor(["yes"], store, cap=0.5)
        target.spent.add(0.5)

        async def go() -> None:
            assert auditor.consider(_TASK, _accepted(0))
            await auditor.drain()

        asyncio.run(go())
        assert store.steps("r1", "t1") == []
    (event,) = [e for e in events if e["event"] == "cascade.audit"]
    assert (event["what"], event["tier"], event["model"]) == ("skipped", 0, "auditor")
    assert event["why"].startswith(
        "the audit cap of $0.5 was reached: this audit could cost up to $"
    )


def test_the_auditor_audits_exactly_the_seeded_sample() -> None:
    """At a share of one half, the answers audited are those sampled() draws for them."""
    tasks = [Task(f"t{n}", input="q", type="echo") for n in range(40)]
    with Store(":memory:") as store:
        auditor, target = _auditor(["yes"] * 40, store, share=0.5)

        async def go() -> list[bool]:
            started = [auditor.consider(task, _accepted(0)) for task in tasks]
            await auditor.drain()
            return started

        started = asyncio.run(go())
    assert started == [sampled(target.plan, "echo", 0, task.id) for task in tasks]
    assert 0 < sum(started) < len(tasks)


def test_at_most_four_audits_of_a_worker_run_at_once() -> None:
    """Audits beyond the fourth wait for a place: four calls are in flight, not more."""
    with Store(":memory:") as store:
        backend = ScriptedBackend({"auditor": [Hang()] * 6})
        auditor, _target = _auditor_on(backend, store, AuditPlan(share=1.0, model="auditor"))

        async def go() -> int:
            for n in range(6):
                auditor.consider(Task(f"t{n}", input="q", type="echo"), _accepted(0))
            await asyncio.sleep(0.05)
            in_flight = len(backend.calls)
            await auditor.drain(0.0)
            return in_flight

        assert asyncio.run(go()) == 4


def test_an_audit_after_the_jobs_budget_is_spent_is_skipped() -> None:
    """With the job's budget spent, an audit asks nothing and says why."""
    with Store(":memory:") as store, capture_steps() as events:
        spent = JobBudget(0.01, spent_usd=0.01)
        auditor, _target = _auditor(["yes"], store, budget=spent)

        async def go() -> None:
            assert auditor.consider(_TASK, _accepted(0))
            await auditor.drain()

        asyncio.run(go())
        assert store.steps("r1", "t1") == []
    (event,) = [e for e in events if e["event"] == "cascade.audit"]
    assert (event["what"], event["why"]) == ("skipped", "the job's budget is spent")


@pytest.mark.parametrize(
    ("signal", "words"),
    [
        (
            "escalation:json_schema",
            "drift: echo tier 1 escalations for json_schema rose from 10.0% to 50.0% of them"
            " (p 1e-05, after 30 escalations)",
        ),
        (
            "escalation:judge:strict",
            "drift: echo tier 1 escalations for judge:strict rose from 10.0% to 50.0% of them"
            " (p 1e-05, after 30 escalations)",
        ),
        (
            "acceptance",
            "drift: echo tier 1 acceptance fell from 10.0% to 50.0%"
            " (p 1e-05, after 30 observations)",
        ),
    ],
)
def test_an_alarm_says_which_validator_and_how_far_in_one_line(signal: str, words: str) -> None:
    """An escalation alarm names the validator whole, colons and all; others name the signal."""
    assert Alarm("echo", 1, signal, 0.1, 0.5, 1e-5, 30).text() == words


def _escalations(watch: DriftWatch, task_type: str, failed: str, count: int) -> list[Alarm]:
    return [a for _ in range(count) for a in watch.escalation(task_type, 0, {failed})]


@pytest.mark.parametrize("other_type_first", [False, True])
def test_a_validator_first_seen_late_counts_the_escalations_before_it(
    other_type_first: bool,
) -> None:
    """Ten escalations for one validator, then ten for another: the second's share rose.

    Its baseline is the ten escalations of its own task type before it, whatever another
    task type saw meanwhile.
    """
    plan = DriftPlan(window=10, baseline=10, check_every=10, false_alarm=0.01)
    watch = DriftWatch({"echo": plan, "other": plan})
    assert _escalations(watch, "echo", "schema", 10) == []
    if other_type_first:
        assert _escalations(watch, "other", "judge", 1) == []
    (alarm,) = _escalations(watch, "echo", "judge", 10)
    assert (alarm.task_type, alarm.tier, alarm.signal) == ("echo", 0, "escalation:judge")
    assert (alarm.baseline_rate, alarm.window_rate, alarm.observed) == (0.0, 1.0, 20)


def test_results_of_one_arrival_come_back_in_the_order_they_were_held() -> None:
    """Ties in arrival keep the order of holding, whatever the items are."""
    order: InArrivalOrder[str] = InArrivalOrder()
    for item in ("b", "c", "a"):
        order.hold(1, item)
    assert order.settled(None) == ["b", "c", "a"]


def test_a_result_is_held_until_the_arrivals_before_it_are_settled() -> None:
    """settled(below) gives back what arrived before ``below``, not at it nor after."""
    order: InArrivalOrder[str] = InArrivalOrder()
    order.hold(5, "e")
    order.hold(3, "c")
    assert order.settled(3) == []
    assert order.settled(4) == ["c"]
    assert len(order) == 1
    assert order.settled(5) == []
    assert order.settled(6) == ["e"]


_SPARSE = DriftPlan(window=20, check_every=1000, false_alarm=0.001, acceptance=(0.9,))
"""One check per 1000 results, so that each check is a horizon of its own: levels 5e-4, 1.7e-4."""


def _results(watch: DriftWatch, accepted: list[bool]) -> list[Alarm]:
    return [
        alarm
        for ok in accepted
        for alarm in watch.result("echo", "accepted" if ok else "rejected", 0, 1)
    ]


_TWELVE_OF_TWENTY = [False] * 8 + [True] * 12
"""A window whose p-value against 0.9 is 4.2e-4: under the first check's level, not the second's."""


def test_the_first_check_spends_its_own_share_of_the_false_alarm_rate() -> None:
    """12 of the last 20 accepted at the first check: p 4.2e-4 is under its level, 5e-4."""
    watch = DriftWatch({"echo": _SPARSE})
    (alarm,) = _results(watch, [True] * 980 + _TWELVE_OF_TWENTY)
    assert (alarm.window_rate, alarm.observed) == (0.6, 1000)
    assert alarm.p_value == pytest.approx(4.156e-4, rel=1e-3)


def test_a_later_check_is_held_to_a_smaller_share() -> None:
    """The same window at the second check is not an alarm: its level is 1.7e-4."""
    watch = DriftWatch({"echo": _SPARSE})
    assert _results(watch, [True] * 1980 + _TWELVE_OF_TWENTY) == []


@pytest.mark.parametrize(
    ("check", "level"),
    [
        (1, 0.001 / (1 * 2 * 100)),
        (100, 0.001 / (1 * 2 * 100)),  # horizon 0: the first 100 checks
        (101, 0.001 / (2 * 3 * 100)),  # horizon 1: the next 100
        (200, 0.001 / (2 * 3 * 100)),
        (201, 0.001 / (3 * 4 * 200)),  # horizon 2: the next 200
        (400, 0.001 / (3 * 4 * 200)),
        (401, 0.001 / (4 * 5 * 400)),  # horizon 3: the next 400
    ],
)
def test_each_horizon_shares_its_part_of_the_rate_among_its_checks(
    check: int, level: float
) -> None:
    """With a check every 10 observations, horizon 0 holds 100 checks and each later one doubles."""
    assert drift.check_level(0.001, check, 10) == pytest.approx(level, rel=1e-12)


@pytest.mark.parametrize(("hits", "upper"), [(0, True), (3, False)])
def test_a_tail_over_the_whole_distribution_is_one_not_more(hits: int, upper: bool) -> None:
    """P(X >= 0) and P(X <= n) are 1 exactly; the terms' rounding never makes a p-value pass 1."""
    assert drift.binomial_tail(hits, 3, 0.1, upper=upper) == 1.0


def test_a_measured_baseline_is_the_share_of_its_hits() -> None:
    """8 of the first 10 accepted, then none of 10: Fisher's p is C(10,8) / C(20,8), under 5e-4."""
    plan = DriftPlan(window=10, baseline=10, check_every=10, false_alarm=0.1)
    watch = DriftWatch({"echo": plan})
    (alarm,) = _results(watch, [True] * 8 + [False] * 2 + [False] * 10)
    assert (alarm.baseline_rate, alarm.window_rate, alarm.observed) == (0.8, 0.0, 20)
    assert alarm.p_value == pytest.approx(45 / 125970)


@pytest.mark.parametrize(
    ("base_hits", "hits", "ways", "of"),
    [
        (10, 0, 1, 184756),  # 10 hits in all: C(10, 0) C(10, 10) of C(20, 10)
        (5, 1, 210 + 2520, 38760),  # 6 in all: C(10, 0) C(10, 6) + C(10, 1) C(10, 5) of C(20, 6)
    ],
)
def test_fishers_lower_tail_runs_down_to_no_hits(
    base_hits: int, hits: int, ways: int, of: int
) -> None:
    """The window's lower tail counts the tables with no hits in it too."""
    assert drift.fisher_tail(base_hits, 10, hits, 10, upper=False) == pytest.approx(ways / of)


_TOUCHY = DriftPlan(window=1, check_every=1, false_alarm=0.4, acceptance=(0.9999,) * 4)
"""Calibrated at 99.99 %: one task not accepted at a tier is an alarm (p 1e-4, level 2e-4)."""


@pytest.mark.parametrize(
    ("status", "tier", "tried", "alarmed"),
    [
        ("accepted", 2, 2, [1]),  # started one tier up: tier 1 passed it on, tier 2 accepted
        ("accepted", 0, 1, []),
        ("failed", None, 3, [0, 1, 2]),  # every tier it reached passed it on
        ("failed", None, 0, []),  # it reached no tier
    ],
)
def test_a_result_is_observed_at_each_tier_it_reached_and_no_other(
    status: str, tier: int | None, tried: int, alarmed: list[int]
) -> None:
    """The tiers tried end at the one that accepted (or the last tried); only the last accepts."""
    watch = DriftWatch({"echo": _TOUCHY})
    alarms = watch.result("echo", status, tier, tried)
    assert [(alarm.tier, alarm.signal) for alarm in alarms] == [(t, "acceptance") for t in alarmed]


def test_a_task_type_without_drift_alarms_is_not_watched() -> None:
    """Results, audits and escalations of another task type are ignored, not an error."""
    watch = DriftWatch({"echo": _TOUCHY})
    assert not watch.watches("other")
    assert watch.result("other", "failed", None, 2) == []
    assert watch.audit("other", 0, disagreed=True) is None
    assert watch.escalation("other", 0, {"schema"}) == []


def test_a_disagreement_rate_given_with_its_audits_is_tested_as_a_sample() -> None:
    """0.1 of 50 audits is 5 of 50: ten disagreements in ten are Fisher's C(50,5) / C(60,15)."""
    plan = DriftPlan(
        window=10, check_every=10, false_alarm=0.1, disagreement=(0.1,), disagreement_n=(50,)
    )
    watch = DriftWatch({"echo": plan})
    alarms = [watch.audit("echo", 0, disagreed=True) for _ in range(10)]
    assert alarms[:-1] == [None] * 9
    alarm = alarms[-1]
    assert alarm is not None
    assert (alarm.signal, alarm.baseline_rate, alarm.window_rate) == ("disagreement", 0.1, 1.0)
    assert alarm.p_value == pytest.approx(math.comb(50, 5) / math.comb(60, 15))


@pytest.mark.parametrize(
    ("latency_s", "grace_s", "cut"), [(0.05, 0.5, 0), (0.05, 1.5, 0), (None, 0.05, 1)]
)
def test_a_drain_waits_out_its_grace_period_and_cuts_only_what_is_left(
    latency_s: float | None, grace_s: float, cut: int
) -> None:
    """An audit that answers within the grace period is kept; one still hanging is cut, and said."""
    answer = Hang() if latency_s is None else Reply("yes", latency_s=latency_s)
    with Store(":memory:") as store, capture_steps() as events:
        auditor, _target = _auditor_on(
            ScriptedBackend({"auditor": [answer]}), store, AuditPlan(share=1.0, model="auditor")
        )

        async def go() -> int:
            assert auditor.consider(_TASK, _accepted(0))
            return await auditor.drain(grace_s)

        assert asyncio.run(go()) == cut
        (step,) = [s for s in store.steps("r1", "t1") if s.kind is CallKind.AUDIT]
    assert step.decision is (Decision.CANCEL if cut else Decision.AGREE)
    told = [(e["event"], e["what"], e.get("audits"), e["run_id"]) for e in events]
    said = (
        [("cascade.audit", "cut off", 1, "r1")]
        if cut
        else [("cascade.audit", "agreed", None, "r1")]
    )
    assert told == said


def _audit_once(auditor: Auditor) -> None:
    """Audit the accepted answer of task t1 at tier 0, to the end."""

    async def go() -> None:
        assert auditor.consider(_TASK, _accepted(0))
        await auditor.drain()

    asyncio.run(go())


def test_an_audits_call_is_asked_for_its_task() -> None:
    """The audit model is asked under the task's id, with the audit's params."""
    backend = ScriptedBackend({"auditor": ["yes"]})
    plan = AuditPlan(share=1.0, model="auditor", params={"max_tokens": 77})
    with Store(":memory:") as store:
        auditor, _target = _auditor_on(backend, store, plan)

        _audit_once(auditor)
    assert [(call.model, call.task_id, call.params) for call in backend.calls] == [
        ("auditor", "t1", {"max_tokens": 77})
    ]


_PRICED = Price(1000.0, 2000.0)
"""A thousandth of a dollar a prompt token, two thousandths an answer token."""


@pytest.mark.parametrize("judge", [False, True])
def test_an_audit_that_could_never_fit_its_cap_says_its_worst_cost(judge: bool) -> None:
    """The worst cost is the prompt (and for a judge the rubric and answer) and the longest answer.

    At 0.001 and 0.002 a token, with max_tokens 50, it cannot fit a cap of a tenth of a cent.
    """
    plan = AuditPlan(share=1.0, model="auditor", judge=judge, rubric="Right?", max_cost_usd=0.001,
                     params={"max_tokens": 50}, price=_PRICED)  # fmt: skip
    asked = [{"role": "user", "content": "q"}] + judge * [
        {"role": "user", "content": "Right?\nyes"}
    ]
    worst = count_tokens(asked) * 0.001 + 50 * 0.002
    with Store(":memory:") as store, capture_steps() as events:
        auditor, _target = _auditor_on(ScriptedBackend({"auditor": ["yes"]}), store, plan, 0.001)

        _audit_once(auditor)
    (event,) = [e for e in events if e["event"] == "cascade.audit"]
    assert event["why"] == (
        f"the audit cap of $0.001 was reached: this audit could cost up to ${worst:.6f} (50 answer"
        " tokens), and $0.000000 is spent; max_tokens in the audit's params bounds its worst cost"
    )


def test_an_audit_that_cannot_be_priced_runs_while_its_cap_is_not_spent() -> None:
    """With no price, the audit reserves nothing: under its cap it is made, and its cost counted."""
    plan = AuditPlan(share=1.0, model="auditor", max_cost_usd=0.5)
    with Store(":memory:") as store:
        auditor, target = _auditor_on(ScriptedBackend({"auditor": ["yes"]}), store, plan, 0.5)

        _audit_once(auditor)
        (step,) = [s for s in store.steps("r1", "t1") if s.kind is CallKind.AUDIT]
    assert step.decision is Decision.AGREE
    assert target.spent.spent_usd == step.cost_usd


def test_an_unpriced_audit_past_its_spent_cap_is_skipped_without_a_worst_cost() -> None:
    """Nothing can be said of its answer's length: the words stop at what it could cost."""
    plan = AuditPlan(share=1.0, model="auditor", max_cost_usd=0.5)
    with Store(":memory:") as store, capture_steps() as events:
        auditor, target = _auditor_on(ScriptedBackend({"auditor": ["yes"]}), store, plan, 0.5)
        target.spent.add(0.5)
        _audit_once(auditor)
    (event,) = [e for e in events if e["event"] == "cascade.audit"]
    assert event["why"] == (
        "the audit cap of $0.5 was reached: this audit could cost up to $0.000000, and $0.500000"
        " is spent; max_tokens in the audit's params bounds its worst cost"
    )


@pytest.mark.parametrize(
    ("answer", "passed", "reason", "score"),
    [
        ("yes", True, "auditor gave the same answer", 1.0),
        ("no", False, "auditor answered differently: 'no'", 0.0),
        ("n" * 250, False, f"auditor answered differently: {'n' * 200!r}", 0.0),
    ],
)
def test_an_audits_verdict_is_kept_with_its_step_and_its_cost_in_the_jobs(
    answer: str, passed: bool, reason: str, score: float
) -> None:
    """The step keeps whether the audit agreed, why (its answer, to 200 characters), a score."""
    budget = JobBudget(None)
    with Store(":memory:") as store:
        backend = ScriptedBackend({"auditor": [answer]})
        plan = AuditPlan(share=1.0, model="auditor", price=_PRICED)
        auditor, _target = _auditor_on(backend, store, plan, budget=budget)
        _audit_once(auditor)
        (step,) = [s for s in store.steps("r1", "t1") if s.kind is CallKind.AUDIT]
    assert [(v.passed, v.reason, v.score) for v in step.verdicts] == [(passed, reason, score)]
    assert budget.spent_usd == step.cost_usd


@pytest.mark.parametrize(
    ("verdict", "decision"), [("pass", Decision.AGREE), ("fail", Decision.DISAGREE)]
)
def test_a_judge_audit_grades_the_accepted_answer_by_its_rubric(
    verdict: str, decision: Decision
) -> None:
    """A judge audit shows the rubric and the answer, with the audit's params; a fail disagrees.

    The judge is asked under the task's id, and its call is priced at the audit's price.
    """
    asked: list[Request] = []

    def grade(request: Request) -> Reply:
        asked.append(request)
        nonce = re.search(r"<<<(\w+):BEGIN CANDIDATE>>>", str(request.messages[-1]["content"]))
        assert nonce is not None
        said = {"nonce": nonce.group(1), "verdict": verdict, "score": 1.0, "reason": "graded"}
        return Reply(json.dumps(said), usage=Usage(prompt_tokens=10, completion_tokens=5))

    plan = AuditPlan(share=1.0, model="judge", judge=True, rubric="Is it polite?",
                     params={"max_tokens": 77}, price=_PRICED)  # fmt: skip
    with Store(":memory:") as store:
        auditor, _target = _auditor_on(ScriptedBackend({"judge": grade}), store, plan)

        _audit_once(auditor)
        (step,) = [s for s in store.steps("r1", "t1") if s.kind is CallKind.AUDIT]
    assert (step.model_requested, step.decision, step.tier) == ("judge", decision, 0)
    assert step.cost_usd == pytest.approx(10 * 0.001 + 5 * 0.002)
    (request,) = asked
    shown = "\n".join(str(message["content"]) for message in request.messages)
    assert "Is it polite?" in shown
    assert "yes" in shown
    assert (request.task_id, request.params.get("max_tokens")) == ("t1", 77)


def test_answers_that_hold_the_same_json_agree_however_it_is_spaced() -> None:
    """With compare "auto", two answers that both hold JSON are compared as JSON, not as text."""
    with Store(":memory:") as store:
        backend = ScriptedBackend({"auditor": ['{"a":1}']})
        auditor, _target = _auditor_on(backend, store, AuditPlan(share=1.0, model="auditor"))

        async def go() -> None:
            spaced = Outcome("r1", "t1", "echo", Status.ACCEPTED, '{"a": 1}', None, 0, "cheap", (),
                             0.0, 0.0)  # fmt: skip
            assert auditor.consider(_TASK, spaced)
            await auditor.drain()

        asyncio.run(go())
        (step,) = [s for s in store.steps("r1", "t1") if s.kind is CallKind.AUDIT]
    assert step.decision is Decision.AGREE


def test_an_audit_model_that_is_down_is_a_failed_audit_not_a_disagreement() -> None:
    """A provider error is the audit's fault: the step is an error, the event says why."""
    with Store(":memory:") as store, capture_steps() as events:
        backend = ScriptedBackend({"auditor": [AuthenticationFailed("401: bad key")]})
        auditor, _target = _auditor_on(backend, store, AuditPlan(share=1.0, model="auditor"))
        _audit_once(auditor)
        (step,) = [s for s in store.steps("r1", "t1") if s.kind is CallKind.AUDIT]
    assert step.decision is Decision.ERROR
    (event,) = [e for e in events if e["event"] == "cascade.audit"]
    assert event["what"] == "failed"
    assert event["why"].startswith("no audit from auditor: ")


def test_an_audits_steps_the_store_cannot_take_are_kept_aside_and_restored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk when the audit's steps are written: they go to the side file, and back."""
    with Store(str(tmp_path / "runs.db")) as store:
        plan = AuditPlan(share=1.0, model="auditor", price=_PRICED)
        auditor, _target = _auditor_on(ScriptedBackend({"auditor": ["yes"]}), store, plan)

        def full(*_args: object) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        with monkeypatch.context() as patch:
            patch.setattr(Store, "append_steps", full)
            _audit_once(auditor)
        kept = read_kept(store.path)
        assert kept is not None
        failure = f"could not write {store.path} (No space left on device)"
        assert (kept.entries, kept.calls, kept.failure) == (1, 1, failure)
        assert kept.cost_usd > 0
        assert restore_unsaved(store) == 1
        (step,) = [s for s in store.steps("r1", "t1") if s.kind is CallKind.AUDIT]
    assert (step.decision, step.cost_usd) == (Decision.AGREE, kept.cost_usd)
