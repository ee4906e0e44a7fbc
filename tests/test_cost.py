"""Cost: every call is priced from its own usage, and totals are the sum of the steps."""

from __future__ import annotations

import pytest

from cascade import Cascade, Price, Tier, Usage
from cascade.backends import Reply, ScriptedBackend
from cascade.errors import ServerError
from tests.helpers import make

PRICES = {"small": Price(1.0, 2.0), "backup": Price(3.0, 4.0), "big": Price(10.0, 30.0)}


def test_every_call_is_priced_including_reasks_retries_and_fallbacks() -> None:
    """Each answered call carries the cost of its own usage at its model's price."""
    usage = Usage(prompt_tokens=1000, completion_tokens=100)
    cascade, _ = make(
        {
            "small": [Reply("no", usage=usage), ServerError("503")],
            "backup": [Reply("no", usage=usage)],
            "big": [Reply("ok", usage=usage)],
        },
        [
            Tier("small", reasks=1, retries=0, fallbacks=("backup",), price=PRICES["small"]),
            Tier("big", price=PRICES["big"]),
        ],
    )
    outcome = cascade.run({"id": "t", "input": "x"})
    assert outcome.accepted
    answered = [s for s in outcome.steps if s.output is not None]
    assert [s.model_requested for s in answered] == ["small", "backup", "big"]
    for step in answered:
        tier_price = PRICES["small"] if step.tier == 0 else PRICES["big"]
        assert step.cost_usd == pytest.approx(tier_price.cost(usage))
        assert step.cost_usd > 0
    failed = [s for s in outcome.steps if s.output is None]
    assert [s.cost_usd for s in failed] == [0.0]
    assert outcome.cost_usd == sum(s.cost_usd for s in outcome.steps)
    assert outcome.to_result()["cost_usd"] == outcome.cost_usd


def test_backend_prices_apply_when_the_tier_sets_none() -> None:
    """Without a tier override, the backend's own price for the served model is used."""
    backend = ScriptedBackend({"small": [Reply("x", usage=Usage(2000, 0))]}, prices=PRICES)
    outcome = Cascade(["small"], backend=backend, log=False).run({"id": "t", "input": "x"})
    assert outcome.cost_usd == pytest.approx(0.002)


def test_latency_totals_are_the_sum_of_the_steps() -> None:
    """A task's latency is the sum of its calls' latencies."""
    cascade, _ = make(
        {"a": [Reply("no", latency_s=0.01)], "b": [Reply("ok", latency_s=0.02)]}, "ab"
    )
    outcome = cascade.run({"id": "t", "input": "x"})
    assert outcome.latency_s == sum(s.latency_s for s in outcome.steps)
    assert outcome.latency_s >= 0.03
