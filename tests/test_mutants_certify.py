"""The ``auto`` sequence and its top target, checked against the module's stated rules by hand.

Found unpinned by mutation testing (scripts/mutants): the climb's targets and mix, the sequence
on a suite where nothing is reachable, and the reachable target's optimism region and margin.
"""

from __future__ import annotations

import numpy as np
import pytest

from cascade.optimize.certify import (
    _selection,
    auto_sequence,
    describe_guarantee,
    reachable_target,
    sequence,
)
from tests.test_certify_walk import _ladders

CONFIDENCE = 0.9


def test_auto_climbs_with_the_best_mix_by_half_points_then_tests_the_top_target() -> None:
    """From 15 points under the top, by 0.005, the best mix in sample; then the top's sequence."""
    found = {"k": _ladders((19, 12, 17))}
    certifying, rates, estimated, full = _selection(found)
    top = reachable_target(rates, estimated, certifying, CONFIDENCE)
    planned = auto_sequence(found, CONFIDENCE)
    climb = [(round(top - 0.15 + 0.005 * i, 4), full[0]) for i in range(30)]
    assert planned[:30] == climb
    assert planned[30:] == sequence(found, top, CONFIDENCE)


def test_auto_on_a_suite_that_reaches_nothing_is_the_lowest_targets_sequence() -> None:
    """When the top target is the floor of half a point, there is no climb before it."""
    found = {"k": _ladders((1, 1, 0))}
    bad = found["k"]
    bad.rights[:, :-1] = np.array([[1.0], [1.0], [0.0]])  # every selection fold: 1 of 20 right
    certifying, rates, estimated, _ = _selection(found)
    assert reachable_target(rates, estimated, certifying, CONFIDENCE) == 0.0
    assert auto_sequence(found, CONFIDENCE) == sequence(found, 0.005, CONFIDENCE)


def test_no_candidates_reach_no_target_below_the_whole() -> None:
    """With no mix at all, the reachable target is 1.0: nothing lower can be promised."""
    assert reachable_target(np.array([]), np.array([]), 400, CONFIDENCE) == 1.0


def test_one_candidate_has_a_reachable_target_of_its_own() -> None:
    """One mix is not 'no mix': 0.95 less 1.7816 * sqrt(0.95 * 0.05 / 400) is 0.9306, so 0.93."""
    assert reachable_target(np.array([0.95]), np.array([0.95]), 400, CONFIDENCE) == 0.93


def test_the_optimism_is_taken_over_the_mixes_within_five_points_of_the_best() -> None:
    """Only mixes within five points of the best count toward the optimism.

    Best 0.95; mixes at 0.95 and 0.91 overstate by 0 and 0.08: median 0.04, so 0.91 less the
    margin (1.2816 + 0.5) * sqrt(0.91 * 0.09 / 400) = 0.0255 is 0.8845, floored to 0.88. The
    mix at 0.87, eight points under, does not count.
    """
    rates = np.array([0.95, 0.91, 0.87])
    estimated = np.array([0.95, 0.83, 0.5])
    assert reachable_target(rates, estimated, 400, CONFIDENCE) == 0.88


def test_one_certifying_task_gives_the_widest_margin() -> None:
    """With one certifying task, the error is sqrt(0.91 * 0.09): 0.91 - 1.7816 * 0.2862 -> 0.4."""
    rates = np.array([0.95, 0.91, 0.87])
    estimated = np.array([0.95, 0.83, 0.5])
    assert reachable_target(rates, estimated, 1, CONFIDENCE) == 0.4


def test_the_guarantee_is_for_the_mix_unless_per_kind_is_asked() -> None:
    """By default, a guarantee over several kinds is for their mix, not for each kind."""
    said = describe_guarantee(0.9, 0.9, ["a", "b"])
    assert "(in the same mix of a, b) is at least 90.0%" in said
    assert "for each kind" not in said


HEAD = "with probability at least 90% over the draw of the training tasks, the pass rate on new"


@pytest.mark.parametrize(
    ("kinds", "per_kind", "said"),
    [
        (["a"], False, f"{HEAD} tasks drawn like them is at least 85.0%"),
        (["a"], True, f"{HEAD} tasks drawn like them is at least 85.0%"),
        (
            ["a", "b"],
            False,
            f"{HEAD} tasks drawn like them (in the same mix of a, b) is at least 85.0%",
        ),
        (
            ["a", "b"],
            True,
            f"{HEAD} tasks drawn like them is at least 85.0% for each kind (a, b) on its own",
        ),
        (
            ["a", "b", "c"],
            True,
            f"{HEAD} tasks drawn like them is at least 85.0% for each kind (a, b, c) on its own",
        ),
    ],
)
def test_the_guarantee_says_what_it_covers(kinds: list[str], per_kind: bool, said: str) -> None:
    """One kind: plain; several: their mix, or each kind on its own when per_kind."""
    assert describe_guarantee(0.85, 0.9, kinds, per_kind=per_kind) == said
