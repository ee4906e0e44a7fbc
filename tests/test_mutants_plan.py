"""A plan's and the settings' edges, where mutation testing found them unpinned.

Each test states what a user sees at a boundary: the last value a setting accepts, the first it
refuses and the words it refuses with, and where a drift alarm's "one tier higher" starts.
"""

from __future__ import annotations

import re

import pytest

from cascade import Plan, Settings, Task, Tier
from cascade.errors import ConfigError
from cascade.types import Attempt, Verdict
from cascade.validators.combine import all_of


def _no(attempt: Attempt) -> Verdict:
    """A validator that rejects everything."""
    return Verdict(False, reason="no")


def _yes(attempt: Attempt) -> Verdict:
    """A validator that accepts everything."""
    return Verdict(True)


@pytest.mark.parametrize(
    ("setting", "value", "words"),
    [
        ("budget_usd", 0.0, "budget_usd must be > 0, got 0.0"),
        ("budget_usd", -1.0, "budget_usd must be > 0, got -1.0"),
        ("deadline_s", 0.0, "deadline_s must be > 0, got 0.0"),
        ("deadline_s", -0.5, "deadline_s must be > 0, got -0.5"),
    ],
)
def test_a_plan_refuses_a_budget_or_deadline_of_zero(
    setting: str, value: float, words: str
) -> None:
    """A budget or a deadline must be positive: zero is refused, saying so."""
    with pytest.raises(ConfigError, match=f"^{re.escape(words)}$"):
        Plan(["m"], **{setting: value})  # type: ignore[arg-type]


@pytest.mark.parametrize("setting", ["budget_usd", "deadline_s"])
def test_a_plan_takes_the_smallest_positive_budget_or_deadline(setting: str) -> None:
    """A tiny but positive budget or deadline is a valid plan."""
    plan = Plan(["m"], **{setting: 1e-9})  # type: ignore[arg-type]
    assert getattr(plan, setting) == 1e-9


def test_a_plan_needs_a_tier() -> None:
    """An empty ladder is refused, saying it needs a tier."""
    with pytest.raises(ConfigError, match=r"^a ladder needs at least one tier$"):
        Plan([])


def test_a_plans_ladder_and_examples_are_values() -> None:
    """Model names become tiers and the examples a tuple."""
    plan = Plan(["small", Tier("big")], examples=[{"role": "user", "content": "hi"}])
    assert plan.tiers == (Tier("small"), Tier("big"))
    assert plan.examples == ({"role": "user", "content": "hi"},)


def test_one_validator_in_a_list_is_that_validator() -> None:
    """``validate=[v]`` runs v itself; two become their ``all_of``; none accepts everything."""
    assert Plan(["m"], [_no]).validator is _no
    assert repr(Plan(["m"], [_no, _yes]).validator) == repr(all_of(_no, _yes))
    assert repr(Plan(["m"]).validator) == repr(all_of())


def test_a_validator_that_is_not_callable_is_refused() -> None:
    """A plan refuses a validator it cannot call, naming its type."""
    with pytest.raises(ConfigError, match=r"^a validator must be callable, got int$"):
        Plan(["m"], 3)  # type: ignore[arg-type]


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_settings_take_a_calibration_share_of_zero_or_one(share: float) -> None:
    """record_all_tiers may be exactly 0 or exactly 1."""
    assert Settings(record_all_tiers=share).record_all_tiers == share


@pytest.mark.parametrize("share", [-0.001, 1.001])
def test_settings_refuse_a_calibration_share_outside_zero_to_one(share: float) -> None:
    """A share just outside [0, 1] is refused, saying the range."""
    words = f"record_all_tiers must be between 0 and 1, got {share!r}"
    with pytest.raises(ConfigError, match=f"^{re.escape(words)}$"):
        Settings(record_all_tiers=share)


def test_settings_take_an_outage_bound_of_zero_and_refuse_a_negative_one() -> None:
    """max_outage_s = 0 means do not wait; below zero is refused, saying so."""
    assert Settings(max_outage_s=0.0).max_outage_s == 0.0
    with pytest.raises(ConfigError, match=r"^max_outage_s must be >= 0, got -0\.1$"):
        Settings(max_outage_s=-0.1)


def test_one_tier_higher_drops_the_first_tier_of_every_route() -> None:
    """With no route, a task starts at tier 1; with a route, one step into it."""
    plan = Plan(["a", "b", "c"])
    task = Task("t", input="x")
    higher = plan.one_tier_higher()
    assert higher.route is not None
    assert list(higher.route(task, ())) == [1, 2]
    routed = Plan(["a", "b", "c"], route=lambda _task, _messages: [0, 2])
    assert routed.one_tier_higher().route is not None
    assert list(routed.one_tier_higher().route(task, ())) == [2]  # type: ignore[misc]


def test_one_tier_higher_of_a_one_tier_ladder_keeps_that_tier() -> None:
    """A ladder of one tier has nowhere higher to start: the task still asks it."""
    route = Plan(["only"]).one_tier_higher().route
    assert route is not None
    assert list(route(Task("t", input="x"), ())) == [0]


def test_one_tier_higher_routes_on_the_tasks_messages() -> None:
    """A route that reads the messages (a context window, say) still sees them one tier higher."""
    plan = Plan(["a", "b", "c"], route=lambda _task, messages: [0, 1, 2][: len(messages) + 1])
    route = plan.one_tier_higher().route
    assert route is not None
    said = ({"role": "user", "content": "x"},)
    assert list(route(Task("t", input="x"), said + said)) == [1, 2]
