"""The ``auto`` sequence and its top target, checked against the module's stated rules by hand.

Found unpinned by mutation testing (scripts/mutants): the climb's targets and mix, the sequence
on a suite where nothing is reachable, and the reachable target's optimism region and margin.
"""

from __future__ import annotations

import dataclasses
from typing import cast

import numpy as np
import pytest

from cascade.optimize.certify import (
    CERTIFY,
    _selection,
    auto_sequence,
    certify,
    describe_guarantee,
    levels,
    lower_bound,
    optimism,
    reachable_target,
    sequence,
    walk,
)
from cascade.optimize.search import Ladders, Mix
from cascade.optimize.table import KindTable
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


@pytest.mark.parametrize(
    ("right", "total", "bound"),
    [
        (1, 1, 0.1),  # P(1 of 1 | p) = p: the bound is where p = 0.1
        (1, 10, 1 - 0.9 ** (1 / 10)),  # P(at least 1 of 10 | p) = 1 - (1 - p) ** 10 = 0.1
        (0, 10, 0.0),
    ],
)
def test_one_right_answer_has_a_bound_of_its_own(right: int, total: int, bound: float) -> None:
    """A single right answer, of one task or of ten, still bounds the pass rate above zero."""
    assert lower_bound(right, total, CONFIDENCE) == pytest.approx(bound, rel=1e-9, abs=0.0)


def _kind(rights: list[list[int]], size: int = 20) -> Ladders:
    """Ladders of one kind, dearest first: right answers per selection fold, then certifying."""
    count = len(rights)
    return Ladders(
        table=cast("KindTable", None),  # the walk reads scores, never the table
        gates=(),
        tiers=np.array([[-1, -1, i] for i in range(count)], dtype=np.intp),
        rights=np.array(rights, dtype=np.float32),
        costs=np.array([[float(count - i)] * (CERTIFY + 1) for i in range(count)], np.float32),
        sizes=np.full(CERTIFY + 1, size, dtype=np.intp),
        searched=0,
    )


def test_levels_on_one_certifying_task_stop_at_a_pass_rate_of_one() -> None:
    """One certifying task: the error is sqrt(0.5 * 0.5) = 0.5, and no level is above 1."""
    assert levels(0.5, 1) == [1.0, 1.0, 1.0, 1.0, 1.0, 0.75, 0.5]


def _two_kinds() -> dict[str, Ladders]:
    """Kind a is right on all 20 certifying tasks, kind b on 15: pooled, 35 of 40."""
    return {"a": _kind([[19] * CERTIFY + [20]]), "b": _kind([[19] * CERTIFY + [15]])}


def test_the_pooled_bound_decides_unless_per_kind_is_asked() -> None:
    """35 of 40 bounds the mix at 0.78 >= 0.7; kind b's 15 of 20 alone only at 0.585."""
    pooled = certify(_two_kinds(), 0.7, CONFIDENCE)
    first = pooled.sequence[0]
    assert (first.selected_rate, first.certified_rate, first.simulated_rate) == (0.95, 0.875, 0.875)
    assert first.bound == pytest.approx(lower_bound(35, 40, CONFIDENCE))
    assert first.cost_per_task == pytest.approx(12 / 240)  # 1 per kind and part, over 240 tasks
    assert {kind: rate for kind, (rate, _) in first.kinds.items()} == {"a": 1.0, "b": 0.75}
    assert [bound for _, bound in first.kinds.values()] == pytest.approx(
        [lower_bound(20, 20, CONFIDENCE), lower_bound(15, 20, CONFIDENCE)]
    )
    assert pooled.certified == pooled.sequence
    each = certify(_two_kinds(), 0.7, CONFIDENCE, per_kind=True)
    assert each.sequence[0].kinds["b"][1] == pytest.approx(0.585110, abs=1e-6)
    assert (each.target, each.certified) == (0.7, ())  # the target asked, though none holds it


def test_what_is_certified_is_what_the_count_says_not_the_simulation() -> None:
    """A count that finds every certifying answer wrong certifies nothing the simulation would."""
    found = _two_kinds()

    def nothing_right(mix: Mix) -> dict[str, tuple[float, int]]:
        return {kind: (0.0, 20) for kind in mix.picks}

    assert certify(found, 0.7, CONFIDENCE).certified
    counted = certify(found, 0.7, CONFIDENCE, nothing_right)
    assert counted.certified == ()
    assert counted.sequence[0].certified_rate == 0.0
    assert counted.sequence[0].simulated_rate == 35 / 40


def test_a_mix_reaches_a_level_only_with_its_optimism_taken_off() -> None:
    """A mix reaching a level only by its optimism is no candidate.

    In sample 0.81 and 0.77, cross-validated 0.69 and 0.71: the optimism, 0.09, leaves both
    under 0.75, so the sequence is the best in sample alone.
    """
    found = {"k": _kind([[19, 14, 16, 19, 13, 14], [13, 16, 20, 13, 15, 15]])}
    _, rates, estimated, _ = _selection(found)
    assert rates.tolist() == pytest.approx([0.81, 0.77])
    assert estimated.tolist() == pytest.approx([0.69, 0.71])
    assert [dict(mix.picks) for _, mix in sequence(found, 0.75, CONFIDENCE)] == [{"k": 0}]


def test_when_only_the_targets_level_is_reached_the_best_in_sample_goes_first() -> None:
    """The best in sample is tested first even when only the target's own level is reached.

    Rates 0.825 and 0.8 (no optimism) reach only the lowest level, 0.8 itself: its pick is the
    cheaper mix, at the target exactly.
    """
    found = {"k": _kind([[33] * (CERTIFY + 1), [32] * (CERTIFY + 1)], size=40)}
    assert levels(0.8, 40)[-2:] == pytest.approx([0.831623, 0.8])
    planned = sequence(found, 0.8, CONFIDENCE)
    assert [(target, dict(mix.picks)) for target, mix in planned] == [
        (0.8, {"k": 0}),
        (0.8, {"k": 1}),
    ]


def test_a_kind_with_no_ladder_has_nothing_to_test_or_certify() -> None:
    """No mix can be made: the sequence is empty, and the outcome certifies nothing at 1.0."""
    empty = dataclasses.replace(
        _kind([[1] * (CERTIFY + 1)]),
        tiers=np.zeros((0, 3), dtype=np.intp),
        rights=np.zeros((0, CERTIFY + 1), dtype=np.float32),
        costs=np.zeros((0, CERTIFY + 1), dtype=np.float32),
    )
    assert sequence({"k": empty}, 0.8, CONFIDENCE) == []
    outcome = certify({"k": empty}, 0.8, CONFIDENCE)
    assert (outcome.target, outcome.sequence, outcome.certified) == (1.0, (), ())


def test_a_walk_pools_the_kinds_unless_told_otherwise() -> None:
    """Walked on its own, the sequence is certified on the pooled bound, as by ``certify``."""
    found = _two_kinds()
    planned = sequence(found, 0.7, CONFIDENCE)
    assert walk(found, planned, CONFIDENCE).certified == certify(found, 0.7, CONFIDENCE).certified
    assert walk(found, planned, CONFIDENCE).certified != ()


def test_one_selection_task_right_is_a_rate_of_one() -> None:
    """A selection part of a single task, answered right, scores the mix at 1.0, not less."""
    one = dataclasses.replace(
        _kind([[1, 0, 0, 0, 0, 3]]), sizes=np.array([1, 0, 0, 0, 0, 4], dtype=np.intp)
    )
    certifying, rates, estimated, _ = _selection({"k": one})
    assert (certifying, rates.tolist(), estimated.tolist()) == (4, [1.0], [1.0])


def test_one_task_in_each_part_right_is_a_rate_of_one_in_each() -> None:
    """One selection task and one certifying task, both right: every rate of the mix is 1.0."""
    one = dataclasses.replace(
        _kind([[1, 0, 0, 0, 0, 1]]), sizes=np.array([1, 0, 0, 0, 0, 1], dtype=np.intp)
    )
    (tested,) = certify({"k": one}, 0.05, CONFIDENCE).sequence
    assert (tested.selected_rate, tested.certified_rate, tested.simulated_rate) == (1.0, 1.0, 1.0)
    rate, bound = tested.kinds["k"]
    assert rate == 1.0
    assert bound == pytest.approx(0.1)


def test_the_cost_of_a_single_task_is_its_cost_per_task() -> None:
    """One task in all, costing 1: the cost per task is 1, not half of it."""
    one = dataclasses.replace(
        _kind([[1, 0, 0, 0, 0, 0]]),
        costs=np.array([[1.0, 0, 0, 0, 0, 0]], dtype=np.float32),
        sizes=np.array([1, 0, 0, 0, 0, 0], dtype=np.intp),
    )
    (tested,) = certify({"k": one}, 0.05, CONFIDENCE).sequence
    assert tested.cost_per_task == 1.0


def test_a_bound_that_equals_the_target_certifies() -> None:
    """The target is reached by a bound equal to it, to the last bit: 20 of 20 at 90 %."""
    found = {"k": _kind([[19] * CERTIFY + [20]])}
    exact = lower_bound(20, 20, CONFIDENCE)
    planned = [(exact, mix) for _, mix in sequence(found, 0.8, CONFIDENCE)]
    outcome = walk(found, planned, CONFIDENCE)
    assert outcome.sequence[0].bound == exact
    assert (outcome.target, outcome.certified) == (exact, outcome.sequence)
    assert outcome.confidence == CONFIDENCE


@pytest.mark.parametrize(
    ("rates", "estimated", "shift"),
    [
        ([0.9, 0.8], [0.8, 0.8], 0.1),  # a rate at the target exactly is in the region
        ([0.8, 0.7], [0.7, 0.7], 0.05),  # none reaches 0.9: the median over every mix
        ([], [], 0.0),  # no mix: nothing overstated
    ],
)
def test_the_optimism_at_the_targets_edge(
    rates: list[float], estimated: list[float], shift: float
) -> None:
    """The region is the mixes at or above the target, else every mix, else nothing."""
    assert optimism(np.array(rates), np.array(estimated), 0.9) == pytest.approx(shift)


def test_a_mix_alike_on_every_fold_is_estimated_out_of_fold_at_its_own_rate() -> None:
    """0.8 of the four other folds' 80 tasks is 64 exactly: the mix with 64 right reaches it."""
    found = {"k": _kind([[17] * (CERTIFY + 1), [16] * (CERTIFY + 1)])}
    _, rates, estimated, _ = _selection(found)
    assert rates.tolist() == pytest.approx([0.85, 0.8])
    assert estimated.tolist() == pytest.approx([0.85, 0.8])
