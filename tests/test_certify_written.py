"""What ``cascade optimize`` certifies is the policy it writes, replayed through the engine.

A user's ``[budget]`` is kept in the written policy, and the search's simulation knows nothing
of it: on bfcl-simple with $0.0006 per task, candidates the simulation certified end some
tasks ``budget_exhausted`` when their written policy runs.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from cascade.bench import load_dataset
from cascade.bench.dataset import kind_stream, split_ids
from cascade.bench.evaluate import score_policy
from cascade.bench.suite import ByKind, default_validators, policy_cascades
from cascade.cli import main
from cascade.optimize.certify import CERTIFY, lower_bound
from cascade.optimize.certify_written import WrittenCount
from cascade.optimize.pipeline import Options, search, selection_parts
from cascade.optimize.table import kind_table

ROOT = Path(__file__).resolve().parents[1]
BFCL = ROOT.parent / "shared" / "datasets" / "bfcl-simple"
pytestmark = pytest.mark.skipif(not BFCL.is_dir(), reason="../shared/datasets is not beside")


@pytest.fixture
def budget_policy(tmp_path: Path) -> Path:
    """The shipped function_call policy with a per-task budget of $0.0006."""
    text = (ROOT / "policies" / "function_call.toml").read_text()
    assert "max_cost_per_task_usd = 0.05" in text
    path = tmp_path / "fc.toml"
    path.write_text(text.replace("max_cost_per_task_usd = 0.05", "max_cost_per_task_usd = 0.0006"))
    return path


def _certification_ids(seed: int = 0, holdout: float = 0.3, select: float = 0.5) -> set[str]:
    """bfcl-simple's certification tasks, found as the optimizer documents its split."""
    data = load_dataset(str(BFCL))
    train, _held = split_ids(data, holdout, seed)
    table, _ = kind_table(data.subset(train), "function_call", max_reasks=2)
    parts = selection_parts(len(table.task_ids), kind_stream(seed, "function_call", 1), select)
    return {t for t, p in zip(table.task_ids, parts, strict=True) if p == CERTIFY}


def test_the_certified_count_is_the_written_policys_replay(
    budget_policy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The reported certification figures equal a replay of the written file on those tasks."""
    out = tmp_path / "chosen.toml"
    argv = ["optimize", str(BFCL), "--target-pass-rate", "0.9", "--policy", str(budget_policy),
            "--strong-last-tier"]  # fmt: skip
    assert main([*argv, "--out", str(out), "--json"]) == 0
    found: dict[str, Any] = json.loads(capsys.readouterr().out)
    chosen = found["guarantee"]["chosen"]
    ids = _certification_ids()
    data = load_dataset(str(BFCL)).subset(ids)
    cascades = policy_cascades(str(out), data, ByKind(default_validators(None)), None)
    score = asyncio.run(score_policy(data, cascades))
    assert found["certification_tasks"] == score.tasks == len(ids)
    assert chosen["certification_pass_rate"] == pytest.approx(score.passed / score.tasks)
    assert chosen["chosen_lower_bound"] == pytest.approx(
        lower_bound(score.passed, score.tasks, 0.9), abs=1e-6
    )
    assert chosen["chosen_lower_bound"] >= 0.9
    # The simulation alone certified more candidates than the written policies hold up.
    assert found["simulated_walk_certified"] > found["certified_candidates"]
    assert found["simulation_differs_on"] == []
    # Beside the best model, the cheapest whose held-out rate is within the best's interval.
    models = found["held_out_models"]
    low = models[found["held_out_best_model"]]["pass_rate_ci95"][0]
    equal = [m for m, s in models.items() if s["pass_rate"] >= low - 1e-6]
    cheapest = min(equal, key=lambda m: models[m]["cost_per_task_usd"])
    assert found["held_out_cheapest_equal_model"] == cheapest == "gpt-4o-mini-2024-07-18"


def test_each_pass_the_replay_loses_is_named_task_by_task(budget_policy: Path) -> None:
    """Where a candidate's written policy runs out of budget, its tasks are the differences."""
    options = Options(target=0.9, out="unused", policy=str(budget_policy), any_last_tier=False)
    found = search(str(BFCL), options)
    count = WrittenCount(found, options)
    _target, second = found.result.planned[1]
    ((right, total),) = count(second).values()
    simulated = found.result.sequence[1].certified_rate * total
    assert right < simulated
    differences = count.differences(second)
    assert len(differences) == round(simulated - right)
    assert set(differences) <= _certification_ids()
