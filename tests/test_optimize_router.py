"""``cascade optimize --router``: routed ladders simulated as the engine runs them, certified.

The router is fit on the selection part only, so the certification part is new to it; the
routed ladder's simulation must match a replay through the engine task by task; the written
policy carries the router that was certified; and on tasks a router can tell apart it is cheaper
held out at the same pass rate.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cascade.bench import load_dataset
from cascade.bench.dataset import Dataset
from cascade.bench.suite import policy_cascades
from cascade.cli import main
from cascade.engine import Cascade, first_messages
from cascade.enums import Status
from cascade.optimize.certify import CERTIFY, SELECT
from cascade.optimize.gates import Gate
from cascade.optimize.routing import THRESHOLDS, kind_router, rows_of
from cascade.optimize.search import Routing, ladders
from cascade.optimize.splits import run_split
from cascade.optimize.table import KindTable, kind_table
from cascade.optimize.write import policy_text, tier_tables
from cascade.policy import load_policy
from cascade.route.router import Router, start_at
from cascade.types import Message, Task
from cascade.validators import all_of
from tests.synthetic import write_dataset, write_routed_dataset

RLC = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "rlc-train"

TINY, MID, BIG = 0, 1, 2


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    """Math and multiple-choice tasks, with recorded re-ask answers."""
    return load_dataset(write_dataset(tmp_path_factory.mktemp("s"), tasks=30, alts=2))


@pytest.fixture(scope="module")
def routed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tasks whose words say whether the cheap model fails them."""
    return write_routed_dataset(tmp_path_factory.mktemp("routed"))


def optimize(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    """Run ``cascade optimize --json``, which must choose; what it printed."""
    assert main(["optimize", *args, "--json"]) == 0
    found: dict[str, Any] = json.loads(capsys.readouterr().out)
    return found


@pytest.mark.parametrize("kind", ["math", "multiple_choice"])
def test_routed_ladders_replay_through_the_engine_as_simulated(
    data: Dataset, kind: str, tmp_path: Path
) -> None:
    """Each routed ladder of two and three tiers: the same right answers and cost, per task."""
    table, _ = kind_table(data, kind, max_reasks=2)
    gates = [Gate(TINY, checks=1), Gate(TINY, voters=(MID,), reasks=1),
             Gate(MID, voters=(TINY,)), Gate(MID, threshold=-0.2)]  # fmt: skip
    chances = np.random.default_rng(3).random((len(table.models), len(table.task_ids)))
    parts = np.arange(len(table.task_ids))
    found = ladders(table, parts, choose_on=tuple(parts), last=[BIG], gates=gates,
                    routing=Routing(chances, [0.3, 0.6]))  # fmt: skip
    column = {task_id: n for n, task_id in enumerate(table.task_ids)}
    tasks = [t for t in data.tasks if t.type == kind]
    routed = [i for i in range(len(found.tiers)) if found.threshold(i)]
    assert len(routed) == 2 * (len(gates) + 4)  # two tiers, and tiny then mid, at each threshold
    for index in routed:
        policy = tmp_path / f"{kind}-{index}.toml"
        policy.write_text(policy_text(kind, tier_tables(found, index), []))
        plain = policy_cascades(str(policy), data, all_of())["*"]
        models = [table.models.index(t.model) for t in plain.plan.tiers]
        route = start_at(None, len(models), _reading(chances, column, models),
                         found.threshold(index))  # fmt: skip
        cascade = Cascade(dataclasses.replace(plain.plan, route=route), settings=plain.settings)
        for task in tasks:
            outcome = cascade.run(task)
            right = outcome.status is Status.ACCEPTED and data.is_right(
                outcome.task_id, outcome.model, outcome.output
            )
            where = f"ladder {found.tiers[index]} at {found.threshold(index)} on {task.id}"
            assert right == bool(found.rights[index, column[task.id]]), where
            assert outcome.cost_usd == pytest.approx(float(found.costs[index, column[task.id]])), (
                where
            )
    unrouted = [i for i in range(len(found.tiers)) if not found.threshold(i)]
    assert len(unrouted) == 1 + len(gates) + 4


def test_a_router_that_skips_every_tier_leaves_the_top_alone(data: Dataset) -> None:
    """Chances under the threshold at every cheap tier: each routed ladder is its top alone."""
    table, _ = kind_table(data, "math", max_reasks=2)
    gates = [Gate(TINY, checks=1), Gate(MID, voters=(TINY,))]
    chances = np.zeros((len(table.models), len(table.task_ids)))
    parts = np.arange(len(table.task_ids)) % 3
    found = ladders(table, parts, choose_on=(0, 1, 2), last=[BIG], gates=gates,
                    routing=Routing(chances, [0.5]))  # fmt: skip
    top = [i for i in range(len(found.tiers)) if found.tiers[i, 0] < 0]
    routed = [i for i in range(len(found.tiers)) if found.threshold(i)]
    assert len(top) == 1
    assert len(routed) == 3  # tiny → big, mid → big, tiny → mid → big
    for index in routed:
        assert np.allclose(found.rights[index], found.rights[top[0]])
        assert np.allclose(found.costs[index], found.costs[top[0]])
        assert found.p95_s[index] == pytest.approx(found.p95_s[top[0]])
    assert found.p95_s[top[0]] > 0
    # Chances over the threshold everywhere: no task would start past a tier, no routed ladder.
    every = ladders(table, parts, choose_on=(0, 1, 2), last=[BIG], gates=gates,
                    routing=Routing(chances + 1.0, [0.5]))  # fmt: skip
    assert not any(every.threshold(i) for i in range(len(every.tiers)))


def _reading(
    chances: np.ndarray, column: dict[str, int], models: list[int]
) -> Callable[[Task, tuple[Message, ...]], list[float]]:
    """A router's chances per tier of a ladder of ``models``, from the search's array."""
    return lambda task, _sent: [float(chances[m, column[task.id]]) for m in models]


def _flipped(table: KindTable, columns: np.ndarray) -> KindTable:
    """The same table, every model's first answer right where it was wrong on ``columns``."""
    first = table.turns[0]
    correct = first.correct.copy()
    correct[:, columns] = ~correct[:, columns]
    return dataclasses.replace(table, turns=(dataclasses.replace(first, correct=correct),
                                             *table.turns[1:]))  # fmt: skip


def test_the_certification_part_is_new_to_the_router(data: Dataset) -> None:
    """No chance the search uses depends on a label it is meant to be blind to."""
    table, _ = kind_table(data, "math")
    tasks = {t.id: t for t in data.tasks}
    rows = rows_of(tasks, table.task_ids, lambda t: first_messages(t, "{input}"))
    parts = np.arange(len(table.task_ids)) % (CERTIFY + 1)
    base = kind_router(table, rows, parts)
    # Certification labels: nothing the search or the written router sees changes.
    certifying = np.flatnonzero(parts == CERTIFY)
    again = kind_router(_flipped(table, certifying), rows, parts)
    assert np.allclose(again.chances, base.chances)
    assert again.router == base.router
    # A selection fold's labels: its own out-of-fold chances stay; the written router moves.
    fold = np.flatnonzero(parts == SELECT[0])
    moved = kind_router(_flipped(table, fold), rows, parts)
    assert np.allclose(moved.chances[:, fold], base.chances[:, fold])
    assert not np.allclose(moved.chances[:, certifying], base.chances[:, certifying])
    assert moved.router != base.router


def test_a_routed_ladder_is_certified_written_and_cheaper_held_out(
    routed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Hard questions skip the cheap tier that fails them: same pass rate, lower cost."""
    out = tmp_path / "chosen.toml"
    args = [str(routed), "--target-pass-rate", "0.95", "--out", str(out)]
    plain = optimize(capsys, *args)
    assert not (tmp_path / "chosen.router.json").exists()
    assert "--router" not in plain["command"]
    assert plain["router_thresholds"] == []
    found = optimize(capsys, *args, "--router")
    assert "--router" in found["command"]
    assert found["router_thresholds"] == list(THRESHOLDS)
    assert "routed" in found["ladders"]["multiple_choice"]
    assert found["guarantee"]["chosen"]["chosen_lower_bound"] >= 0.95
    # The engine's replay of the written policy is what the search simulated.
    assert found["train"]["pass_rate"] == pytest.approx(found["simulated_train"]["pass_rate"])
    assert found["train"]["cost_per_task_usd"] == pytest.approx(
        found["simulated_train"]["cost_per_task_usd"], rel=1e-6
    )
    assert found["held_out"]["pass_rate"] == plain["held_out"]["pass_rate"] == 1.0
    assert found["held_out"]["cost_per_task_usd"] < 0.9 * plain["held_out"]["cost_per_task_usd"]
    # A task started past the cheap tier did not escalate: only a rejection escalates.
    assert found["held_out"]["escalation_rate"] == 0.0
    assert plain["held_out"]["escalation_rate"] > 0.3
    # The policy names its router, written beside it, for its ladder.
    policy = load_policy(out)
    assert policy.spec.route is not None
    assert policy.spec.route.file == "chosen.router.json"
    assert policy.spec.route.threshold in THRESHOLDS  # the very threshold simulated
    assert Router.load(tmp_path / "chosen.router.json").models == ("tiny", "big")
    # Its drift baseline counts only the tasks asked at the cheap tier: it fails none of them.
    assert found["drift_acceptance"]["multiple_choice"] == [0.999]
    assert plain["drift_acceptance"]["multiple_choice"][0] < 0.7


def test_a_users_router_is_not_kept_for_another_ladder(
    routed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The user's ``[route]`` was fit for the user's ladder; the written policy drops it."""
    width = len(Router.load(_router_file(routed, tmp_path, capsys)).weights[0])
    theirs = Router(("big", "tiny"), ((0.0,) * width, (0.0,) * width), (3.0, 0.0))
    theirs.save(tmp_path / "theirs.json")
    user = tmp_path / "user.toml"
    user.write_text('task_type = "multiple_choice"\n[[tiers]]\nmodel = "big"\n'
                    '[[tiers]]\nmodel = "tiny"\n[route]\nfile = "theirs.json"\n'
                    "threshold = 0.5\n")  # fmt: skip
    load_policy(user)
    out = tmp_path / "written.toml"
    args = [str(routed), "--target-pass-rate", "0.95", "--out", str(out), "--policy", str(user)]
    optimize(capsys, *args)
    assert load_policy(out).spec.route is None
    optimize(capsys, *args, "--router")
    route = load_policy(out).spec.route
    assert route is not None
    assert route.file == "written.router.json"


def _router_file(routed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    optimize(capsys, str(routed), "--target-pass-rate", "0.95", "--router",
             "--out", str(tmp_path / "first.toml"))  # fmt: skip
    return tmp_path / "first.router.json"


def test_the_guarantee_holds_with_routers_over_many_splits(tmp_path: Path) -> None:
    """Routers fit on each split's selection part: held out, the target is missed rarely."""
    data = load_dataset(write_dataset(tmp_path, tasks=300))
    tables = {k: kind_table(data, k)[0] for k in ("math", "multiple_choice")}
    tasks = {t.id: t for t in data.tasks}
    rows = {k: rows_of(tasks, t.task_ids, lambda t: first_messages(t, "{input}"))
            for k, t in tables.items()}  # fmt: skip
    rng = np.random.default_rng(5)
    results = [run_split(tables, 0.92, 0.9, rng, rows=rows) for _ in range(16)]
    certified = [r for r in results if r.certified]
    assert len(certified) >= 8
    assert sum(r.held_upper < 0.92 for r in certified) <= 0.1 * len(certified)


@pytest.mark.skipif(not RLC.is_dir(), reason="../shared/datasets is not beside the repo")
def test_on_rlc_the_replay_of_routed_ladders_is_what_was_simulated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real suite, where the written router reads its selection tasks unlike out of fold."""
    found = optimize(capsys, str(RLC), "--target-pass-rate", "auto", "--router",
                     "--out", str(tmp_path / "rlc"))  # fmt: skip
    assert any("routed" in text for text in found["ladders"].values())
    assert found["train"]["pass_rate"] == pytest.approx(found["simulated_train"]["pass_rate"])
    assert found["train"]["cost_per_task_usd"] == pytest.approx(
        found["simulated_train"]["cost_per_task_usd"], rel=1e-6
    )
    assert found["guarantee"]["chosen"]["chosen_lower_bound"] >= found["target_pass_rate"]
