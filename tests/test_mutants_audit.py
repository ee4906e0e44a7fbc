"""Audits and their sample at the edges, where mutation testing found them unpinned.

Each test states what a report or a run shows at a boundary: a share of 0 or 1, an interval
with no hits or all hits, and the rates a report rounds.
"""

from __future__ import annotations

import pytest

from cascade.audit import AuditPlan, sampled, wilson
from cascade.audit.plan import proportion

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
