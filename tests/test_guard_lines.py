"""Lines that guard money, data and containment, each pinned by a test that fails when it breaks.

Each test names the line it guards; every one was checked by breaking that line by hand and
watching the test fail (the issue "tests that fail when the lines guarding money, data and
containment break").
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from cascade import Status, Store, Task, Tier
from cascade.backends import LiteLLMBackend, Reply, Request
from cascade.enums import Decision
from cascade.store import db as store_db
from cascade.store.ledger import Entry, Ledger
from cascade.testing import FakeOpenAI, FakeReply, verdict_of
from cascade.types import Attempt, Price, Usage, Verdict
from cascade.validators import grounded, passes_tests
from cascade.validators.sandbox import Limits, Sandbox
from tests.helpers import make, models_called


def test_the_top_tier_rejecting_records_stop_not_escalate() -> None:
    """decide(): with no tier above, a rejected answer stops (the step says so) and exhausts."""
    cascade, backend = make({"small": ["no"], "big": ["no"]}, [Tier("small"), Tier("big")])
    outcome = cascade.run({"id": "t", "input": "x"})
    assert outcome.status is Status.EXHAUSTED
    assert [s.decision for s in outcome.steps] == [Decision.ESCALATE, Decision.STOP]
    assert models_called(backend) == ["small", "big"]


def test_a_judges_cost_counts_against_the_task_budget() -> None:
    """The loop's pending cost holds the judge's calls: $0.003 + $0.003 reaches a $0.006 cap."""

    async def judged(attempt: Attempt) -> Verdict:
        messages = ({"role": "user", "content": f"Is {attempt.output!r} right?"},)
        assert attempt.ask is not None  # the engine gives every attempt its asker
        await attempt.ask("judge", messages, price=Price(3.0, 0.0))
        return Verdict(False, reason="the judge says no")

    cascade, backend = make(
        {
            "small": [Reply("no", usage=Usage(1000, 0))],
            "judge": [Reply("no", usage=Usage(1000, 0))],
            "big": [Reply("ok", usage=Usage(1000, 0))],
        },
        # "big" has no price to check before its call: only the decision can hold the cap.
        [Tier("small", price=Price(3.0, 0.0)), Tier("big")],
        validate=judged,
        budget_usd=0.006,
    )
    outcome = cascade.run({"id": "t", "input": "x"})
    assert outcome.status is Status.BUDGET_EXHAUSTED
    assert "big" not in models_called(backend)
    assert outcome.cost_usd == pytest.approx(0.006)


def test_a_tier_price_wins_over_litellms_listed_price() -> None:
    """The backend prices with the tier's override even for a model litellm can price."""
    reply = FakeReply("ok", prompt_tokens=1000, completion_tokens=500)
    with FakeOpenAI(lambda _body: reply) as server:
        backend = LiteLLMBackend(api_base=server.base_url, api_key="sk-fake-key-for-tests")
        request = Request(
            "openai/gpt-4o-mini",
            ({"role": "user", "content": "hi"},),
            timeout_s=10,
            price=Price(1000.0, 2000.0),
        )
        response = asyncio.run(backend.complete(request))
    assert response.cost_usd == pytest.approx((1000 * 1000.0 + 500 * 2000.0) / 1e6)


def test_recording_many_outcomes_is_one_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Store.record_many: a failure half way leaves nothing, not an attempt with no result."""
    cascade, _ = make({"m": ["ok"]}, ["m"], run_id="r")
    first = cascade.run({"id": "t1", "input": "x"})
    second = cascade.run({"id": "t2", "input": "y"})
    real = getattr(store_db, "result_row")  # noqa: B009  # the name the store calls
    calls = []

    def fails_second(*args: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("the disk went away")
        return real(*args)

    monkeypatch.setattr(store_db, "result_row", fails_second)
    with Store(tmp_path / "run.db") as store:
        with pytest.raises(RuntimeError, match="the disk went away"):
            store.record_many([(first, None), (second, None)])
        assert store.count("attempts") == 0
        assert store.count("results") == 0


@pytest.mark.parametrize("mode", ["bwrap", "unshare"])
def test_the_address_space_limit_raises_memory_error_at_once(mode: str) -> None:
    """The sandbox's RLIMIT_AS: a 2 GiB allocation under a 512 MB cap is a MemoryError, fast.

    Without the limit the allocation succeeds (the pages are never touched), so only the limit
    itself can make this fail; no other limit kills the process first.
    """
    try:
        sandbox = Sandbox(Limits(wall_s=8, memory_mb=512), mode=mode)
        _ = sandbox.mode
    except Exception as exc:  # noqa: BLE001  # a mode this machine lacks
        pytest.skip(f"{mode}: {exc}")
    start = time.monotonic()
    validator = passes_tests(["assert True"], sandbox=sandbox)
    verdict = verdict_of(validator, "hog = bytearray(2 << 30)\n")
    assert not verdict.passed
    assert "MemoryError" in verdict.reason
    assert time.monotonic() - start < 6


@pytest.mark.parametrize("output", ['{"due": "2024-05-03"}', '{"due": "2024-03-05"}'])
def test_an_ambiguous_numeric_date_is_read_both_ways(output: str) -> None:
    """grounded(): 03/05/2024 may be 3 May (day first) or 5 March; an answer with either passes."""
    verdict = verdict_of(grounded(), output, task_input="Delivered on 03/05/2024.")
    assert verdict.passed, verdict.reason


def test_a_lease_is_reclaimed_only_when_expired_or_its_owner_is_gone(tmp_path: Path) -> None:
    """Ledger.reclaim: a live owner's unexpired lease stays; the next lease counts execution 2."""
    with Store(tmp_path / "run.db") as store:
        store.start_run("r")
        ledger = Ledger(store, "r")
        ledger.ingest([Entry(n, task=Task(f"t{n}", input="x")) for n in (1, 2)], finished=True)
        assert [x.execution for x in ledger.lease("live", 1, ttl_s=3600)] == [1]
        assert [x.execution for x in ledger.lease("late", 1, ttl_s=0.001)] == [1]
        time.sleep(0.01)
        assert ledger.reclaim(alive=["live", "late"]) == 1  # only the expired one
        assert ledger.reclaim(alive=["live", "late"]) == 0
        again = ledger.lease("new", 10, ttl_s=3600)
        assert [(x.task.id, x.execution) for x in again] == [("t2", 2)]
        assert ledger.reclaim(alive=["new"]) == 1  # "live" is gone: its lease comes back
        assert [(x.task.id, x.execution) for x in ledger.lease("new", 10, ttl_s=60)] == [("t1", 2)]
