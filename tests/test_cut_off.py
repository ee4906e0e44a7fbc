"""A task cut off mid-attempt (an interrupt): every call it paid for is in its steps.

The worker cancels a task that outlives its grace and stores the steps it hands back. Before,
only the calls of finished attempts were there: an answer whose validators were still running,
the failed tries before a call in flight, and the call in flight itself were paid for and lost.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import pytest

from cascade.backends import ScriptedBackend
from cascade.backends.scripted import Hang, Reply, Script
from cascade.engine import Cascade, Plan, Settings
from cascade.enums import CallKind, Decision
from cascade.errors import ServerError
from cascade.outcome import Step
from cascade.store import Store
from cascade.tokens import count_tokens
from cascade.types import Price, Tier, Usage
from cascade.validators import agreement
from tests.helpers import NO_WAIT, says_ok
from tests.test_batcher import TIER, MemoryBatches, batcher

PRICE = Price(1000.0, 2000.0)
SENT = [{"role": "user", "content": "x"}]


def cascade_of(
    script: Mapping[str, Script], ladder: list[Tier], validate: Any = says_ok, **options: Any
) -> tuple[Cascade, ScriptedBackend]:
    """A quiet cascade on a scripted backend whose models all cost :data:`PRICE`.

    The tiers say their price too: a scripted backend quotes none before a call.
    """
    backend = ScriptedBackend(dict(script), prices=dict.fromkeys(script, PRICE), **options)
    plan = Plan(ladder, validate)
    return Cascade(plan, settings=Settings(backend=backend, log=False, retry=NO_WAIT)), backend


async def cut_off(cascade: Cascade, until: Callable[[], bool]) -> list[Step]:
    """Run a task until ``until()`` holds, cut it off as the worker does; its steps."""
    steps: list[Step] = []
    job = asyncio.ensure_future(cascade.arun({"id": "t", "input": "x"}, steps=steps))
    while not until():  # noqa: ASYNC110  # the backend keeps a list, not an event
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.02)
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    return steps


def run(coroutine: Awaitable[list[Step]]) -> list[Step]:
    """Run a test's coroutine."""

    async def main() -> list[Step]:
        return await coroutine

    return asyncio.run(main())


def in_flight_cost(model_messages: list[dict[str, str]] = SENT) -> float:
    """What a call cut off in flight costs: its prompt at :data:`PRICE`'s input price."""
    return count_tokens(model_messages) * PRICE.input_usd_per_mtok / 1e6


def test_an_answer_being_judged_and_the_opinion_in_flight_are_kept() -> None:
    """Cut off while the agreement model thinks: the answer and the call in flight are stored."""
    cascade, backend = cascade_of(
        {"small": ["ok"], "judge": [Hang()], "big": ["ok"]},
        [Tier("small", price=PRICE), Tier("big", price=PRICE)],
        agreement("judge", price=PRICE),
    )
    steps = run(cut_off(cascade, lambda: len(backend.calls) >= 2))
    answer, opinion = steps
    assert (answer.model_requested, answer.output, answer.decision) == (
        "small", "ok", Decision.CANCEL,
    )  # fmt: skip
    assert answer.cost_usd == pytest.approx(PRICE.cost(Usage(1, 1)))
    assert (opinion.model_requested, opinion.kind) == ("judge", CallKind.VALIDATOR)
    assert opinion.output is None
    assert opinion.cost_usd == pytest.approx(in_flight_cost())
    assert {s.tier for s in steps} == {0}


def test_failed_tries_before_a_call_in_flight_are_kept() -> None:
    """Two 5xx, then a hang on the fallback: all three calls are stored, at tier 1."""
    cascade, backend = cascade_of(
        {"small": ["no"], "big": [ServerError("503"), ServerError("503")], "spare": [Hang()]},
        [Tier("small", price=PRICE), Tier("big", retries=1, fallbacks=("spare",), price=PRICE)],
    )
    steps = run(cut_off(cascade, lambda: len(backend.calls) >= 4))
    assert [(s.model_requested, s.decision) for s in steps] == [
        ("small", Decision.ESCALATE),
        ("big", Decision.CANCEL),
        ("big", Decision.CANCEL),
        ("spare", Decision.CANCEL),
    ]
    assert [s.tier for s in steps] == [0, 1, 1, 1]
    assert steps[1].error is not None
    assert "503" in steps[1].error
    assert steps[3].error is None
    assert steps[3].cost_usd == pytest.approx(in_flight_cost())
    assert sum(s.cost_usd for s in steps) == pytest.approx(steps[0].cost_usd + in_flight_cost())


def test_both_legs_of_a_hedge_race_in_flight_are_kept() -> None:
    """Cut off while the hedged tier and its hedge both run: two calls, at their tiers."""
    cascade, backend = cascade_of(
        {"small": [Hang()], "big": [Hang()]},
        [Tier("small", hedge=True, price=PRICE), Tier("big", expected_latency_s=0.01, price=PRICE)],
    )
    plan = cascade.plan
    hedged = Cascade(Plan(plan.tiers, says_ok, deadline_s=0.05), settings=cascade.settings)
    steps = run(cut_off(hedged, lambda: len(backend.calls) >= 2))
    assert sorted((s.model_requested, s.tier, s.decision) for s in steps) == [
        ("big", 1, Decision.CANCEL),
        ("small", 0, Decision.CANCEL),
    ]
    assert all(s.cost_usd == pytest.approx(in_flight_cost()) for s in steps)


def test_a_finished_task_records_each_call_once() -> None:
    """No cut: the hedge's loser is recorded once by the race, nothing twice."""
    cascade, _ = cascade_of(
        {"small": [Reply("ok", latency_s=1.5)], "big": [Reply("ok", latency_s=0.5)]},
        [Tier("small", hedge=True), Tier("big", expected_latency_s=0.5)],
        virtual_time=True,
    )
    plan = cascade.plan
    hedged = Cascade(Plan(plan.tiers, says_ok, deadline_s=1.0), settings=cascade.settings)
    outcome = hedged.run({"id": "t", "input": "x"})
    assert [(s.model_requested, s.decision) for s in outcome.steps] == [
        ("big", Decision.ACCEPT),
        ("small", Decision.CANCEL),
    ]


def test_a_race_recorded_before_the_cut_is_not_recorded_again() -> None:
    """A hedge won, its loser recorded; cut off while the ladder's top is asked for the record."""
    cascade, backend = cascade_of(
        {"small": [Reply("ok", latency_s=1.5)], "big": [Reply("ok", latency_s=0.5)],
         "top": [Hang()]},
        [Tier("small", hedge=True, price=PRICE), Tier("big", expected_latency_s=0.5),
         Tier("top", price=PRICE)],
        virtual_time=True,
    )  # fmt: skip
    plan = cascade.plan
    settings = dataclasses.replace(cascade.settings, record_all_tiers=1.0)
    hedged = Cascade(Plan(plan.tiers, says_ok, deadline_s=1.0), settings=settings)
    steps = run(cut_off(hedged, lambda: len(backend.calls) >= 3))
    assert [(s.model_requested, s.kind, s.decision) for s in steps] == [
        ("big", CallKind.HEDGE, Decision.ACCEPT),
        ("small", CallKind.CALL, Decision.CANCEL),
        ("top", CallKind.CALIBRATION, Decision.CANCEL),
    ]
    assert steps[2].cost_usd == pytest.approx(in_flight_cost())


def test_a_call_waiting_in_a_batch_is_left_to_the_ledger() -> None:
    """Cut off while its batch runs: no step, no cost; a resumed run collects the answer."""
    api = MemoryBatches()
    api.faults["retrieve"] = [ServerError("503 still busy")] * 10_000  # the batch never ends
    with Store(":memory:") as store:
        settings = Settings(batcher=batcher(api, store), log=False)
        cascade = Cascade([TIER], backend=ScriptedBackend({}), settings=settings)
        steps = run(cut_off(cascade, lambda: "retrieve" in api.calls))
    assert steps == []
