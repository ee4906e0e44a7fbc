"""Gates (agreement, votes, self-consistency, conjunctions), simulated as the engine runs them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cascade.bench import load_dataset
from cascade.bench.dataset import Dataset
from cascade.bench.suite import policy_cascades
from cascade.enums import Status
from cascade.optimize.gates import Gate, simulate
from cascade.optimize.search import Ladders, ladders
from cascade.optimize.table import kind_table
from cascade.optimize.write import policy_text, tier_tables
from cascade.validators import all_of
from tests.synthetic import write_dataset

TINY, MID, BIG = 0, 1, 2


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    """Math and multiple-choice tasks; two recorded samples per cheap answer; paid confidence."""
    folder = write_dataset(tmp_path_factory.mktemp("s"), tasks=30, alts=2, self_assessed=True)
    return load_dataset(folder)


GATES = [
    Gate(TINY, checks=1),
    Gate(TINY, voters=(MID,)),
    Gate(TINY, checks=1, threshold=-0.3, voters=(MID,)),
    Gate(TINY, voters=(MID, BIG)),
    Gate(TINY, checks=1, voters=(BIG, MID)),
    Gate(TINY, samples=1),
    Gate(TINY, checks=1, samples=2),
    Gate(TINY, checks=1, voters=(MID,), reasks=2),
    Gate(TINY, threshold=-0.5, reasks=1),
    Gate(MID, voters=(TINY,)),
    Gate(MID, checks=1, voters=(TINY, BIG)),
    Gate(MID, threshold=-0.2),
]


def per_task(data: Dataset, kind: str) -> Ladders:
    """Every ladder of :data:`GATES`, with each task in a part of its own."""
    table, _ = kind_table(data, kind, max_reasks=2)
    parts = np.arange(len(table.task_ids))
    return ladders(table, parts, choose_on=tuple(parts), last=[BIG], gates=GATES)


@pytest.mark.parametrize("kind", ["math", "multiple_choice"])
def test_every_ladder_replays_through_the_engine_as_simulated(
    data: Dataset, kind: str, tmp_path: Path
) -> None:
    """Every ladder of two or three tiers: the same right answers and the same cost, per task."""
    found = per_task(data, kind)
    tasks = [t for t in data.tasks if t.type == kind]
    assert len(found.tiers) == 1 + len(GATES) + 9 * 3  # alone, two tiers, tiny then mid
    for index in range(len(found.tiers)):
        policy = tmp_path / f"{kind}-{index}.toml"
        policy.write_text(policy_text(kind, tier_tables(found, index), []))
        cascade = policy_cascades(str(policy), data, all_of())["*"]
        outcomes = [cascade.run(t) for t in tasks]
        for column, outcome in enumerate(outcomes):
            right = outcome.status is Status.ACCEPTED and data.is_right(
                outcome.task_id, outcome.model, outcome.output
            )
            where = f"ladder {found.tiers[index]} on {outcome.task_id}"
            assert right == bool(found.rights[index, column]), where
            assert outcome.cost_usd == pytest.approx(float(found.costs[index, column])), where


def test_a_vote_delivers_the_majority_answer(data: Dataset) -> None:
    """When the two voters agree against the tier's own answer, their answer is delivered."""
    table, _ = kind_table(data, "math")
    arrays = simulate(table, Gate(TINY, voters=(MID, BIG)))
    first = table.turns[0]
    own, one, two = first.answer[TINY], first.answer[MID], first.answer[BIG]
    outvoted = (own != one) & (own != two) & (one == two) & (one >= 0)
    assert outvoted.any()
    assert arrays.accepted[outvoted].all()
    assert (arrays.right[outvoted] == first.correct[MID][outvoted]).all()


def test_a_voter_already_asked_is_not_paid_again(data: Dataset) -> None:
    """A second tier that asks the first tier's model for agreement reuses its answer, free."""
    table, _ = kind_table(data, "math")
    parts = np.zeros(len(table.task_ids), dtype=np.intp)
    gates = [Gate(TINY, checks=1), Gate(MID, voters=(TINY,)), Gate(MID, voters=(BIG,))]
    found = ladders(table, parts, last=[BIG], gates=gates)
    cost = {tuple(t): float(c[0]) for t, c in zip(found.tiers.tolist(), found.costs, strict=True)}
    first, mid = simulate(table, gates[0]), simulate(table, gates[1])
    passed_on = ~first.accepted
    assert mid.paid[TINY].any()  # alone, mid pays to ask tiny
    after = (mid.cost - mid.paid[TINY]) + ~mid.accepted * table.cost[BIG]
    expected = float((first.cost + passed_on * after).sum())
    assert cost[(0, 1, BIG)] == pytest.approx(expected, rel=1e-6)
    assert cost[(0, 2, BIG)] > cost[(0, 1, BIG)]  # asking big instead is paid for


def test_a_threshold_pays_for_the_confidence_and_no_other_gate_does(data: Dataset) -> None:
    """Where confidence costs a call of its own, only a gate that reads it pays that call."""
    table, _ = kind_table(data, "math")
    first = table.turns[0]
    assert (first.cost_confidence[TINY] > first.cost[TINY]).all()
    plain = simulate(table, Gate(TINY, checks=1))
    scored = simulate(table, Gate(TINY, checks=1, threshold=-10.0))
    assert plain.cost == pytest.approx(first.cost[TINY])
    assert scored.cost == pytest.approx(first.cost_confidence[TINY])
