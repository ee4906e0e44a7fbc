"""``--target-pass-rate auto`` walks a fixed sequence of (target, ladder) pairs.

Before, ``auto`` set one target from the selection part and came back empty whenever its
surest candidate missed it: on 280-task suites, about half the time.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from cascade.bench import load_dataset
from cascade.bench.dataset import split_ids
from cascade.optimize.certify import SELECT, auto_sequence, certify, sequence, walk
from cascade.optimize.pipeline import selection_parts
from cascade.optimize.search import Ladders, Mix, ladders
from cascade.optimize.splits import failure_share, run_split
from cascade.optimize.table import KindTable, kind_table

BFCL = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "bfcl-simple"
pytestmark = pytest.mark.skipif(not BFCL.is_dir(), reason="../shared/datasets is not beside")


@pytest.fixture(scope="module")
def tables() -> dict[str, KindTable]:
    """bfcl-simple's training split (280 tasks), judged once."""
    data = load_dataset(BFCL)
    train = data.subset(split_ids(data, 0.3, 0)[0])
    return {"function_call": kind_table(train, "function_call")[0]}


def test_auto_certifies_a_target_on_every_split_and_keeps_the_guarantee(
    tables: dict[str, KindTable],
) -> None:
    """30 random splits of 280 tasks: something is certified on each, above 0, none wrongly."""
    rng = np.random.default_rng(5)
    results = [run_split(tables, None, 0.9, rng) for _ in range(30)]
    assert all(r.certified for r in results)
    assert min(r.target for r in results) > 0.5
    assert failure_share(results) <= 0.1


def test_the_sequence_climbs_with_the_surest_mix_then_tries_cheaper_ones(
    tables: dict[str, KindTable],
) -> None:
    """Targets climb by half a point with the best mix, then the top target's candidates."""
    rng = np.random.default_rng(5)
    found = _found(tables, rng)
    pairs = auto_sequence(found, 0.9)
    targets = [t for t, _ in pairs]
    top = targets[-1]
    climb = [t for t in targets if t < top]
    assert climb == sorted(climb)
    assert all(b - a == pytest.approx(0.005) for a, b in itertools.pairwise(climb))
    assert climb[0] == pytest.approx(max(0.005, top - 0.15))
    assert all(m == pairs[0][1] for t, m in pairs if t < top)
    assert [p for p in pairs if p[0] == top] == sequence(found, top, 0.9)


def test_a_failure_on_the_climb_states_the_last_target_certified(
    tables: dict[str, KindTable],
) -> None:
    """If the surest mix falls short at some target, the walk stops and states the one before."""
    found = _found(tables, np.random.default_rng(5))
    pairs = auto_sequence(found, 0.9)
    stop = pairs[10][0]

    def count(_mix: Mix) -> dict[str, tuple[float, int]]:
        total = 1_000_000  # so many tasks that the bound sits just under the rate
        return {"function_call": (total * (stop - 0.0025), total)}  # below the 11th, above the 10th

    result = walk(found, pairs, 0.9, count)
    assert len(result.sequence) == 11
    assert result.chosen is not None
    assert result.target == pairs[9][0]
    assert result.chosen.target == pairs[9][0]
    assert certify(found, None, 0.9).target > 0


def _found(tables: dict[str, KindTable], rng: np.random.Generator) -> dict[str, Ladders]:
    table = tables["function_call"]
    parts = selection_parts(len(table.task_ids), rng, 0.5)
    return {"function_call": ladders(table, parts, choose_on=SELECT)}


def test_single_models_and_any_last_tier_are_candidates_by_default() -> None:
    """Every model alone is a candidate, and the choice is no dearer than a strong-last one's."""
    from cascade.optimize.pipeline import Options, search  # noqa: PLC0415

    default = search(str(BFCL), Options(target=0.9, out="unused"))
    strong = search(str(BFCL), Options(target=0.9, out="unused", any_last_tier=False))
    ladders_of = default.found["function_call"]
    alone = {int(t[2]) for t in ladders_of.tiers if t[0] < 0 and t[1] < 0}
    assert alone == set(range(len(ladders_of.table.models)))
    strong_alone = {int(t[2]) for t in strong.found["function_call"].tiers if t[0] < 0}
    assert strong_alone < alone  # the strong-last search has fewer lone models
    assert default.result.chosen is not None
    assert strong.result.chosen is not None
    assert default.result.chosen.cost_per_task <= strong.result.chosen.cost_per_task
