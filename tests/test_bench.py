"""``cascade bench`` on the recorded bfcl-simple suite: real replays, numbers that add up."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cascade.bench import load_dataset
from cascade.bench.dataset import is_label
from cascade.cli import main

BFCL = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "bfcl-simple"
pytestmark = pytest.mark.skipif(
    not BFCL.is_dir(), reason="../shared/datasets is not beside the repo"
)

MINI, SONNET = "gpt-4o-mini-2024-07-18", "claude-3-5-sonnet-20240620"


def run_json(capsys: pytest.CaptureFixture[str], *ladders: str) -> dict[str, object]:
    """Run ``cascade bench --json`` and decode what it printed."""
    args = ["bench", str(BFCL), "--json"]
    for ladder in ladders:
        args += ["--ladder", ladder]
    assert main(args) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def test_validators_never_see_gold() -> None:
    """No label field survives on the tasks that are replayed."""
    data = load_dataset(BFCL)
    assert len(data.tasks) == 400
    assert not any(is_label(k) for task in data.tasks for k in task.extra)


def test_single_models_match_the_dataset_card(capsys: pytest.CaptureFixture[str]) -> None:
    """Per-model accuracy and mean cost agree with SOURCE.md's table."""
    report = run_json(capsys)
    models = report["models"]
    assert isinstance(models, dict)
    assert models[MINI]["pass_rate"] == pytest.approx(0.935)
    assert models[SONNET]["pass_rate"] == pytest.approx(0.960)
    assert models[MINI]["cost_per_task_usd"] == pytest.approx(0.000062, rel=0.01)


def test_the_oracle_is_at_least_as_good_as_every_model(capsys: pytest.CaptureFixture[str]) -> None:
    """The oracle's pass rate bounds every model's, at no more than the cheapest model's cost."""
    report = run_json(capsys)
    oracle, models = report["oracle"], report["models"]
    assert isinstance(oracle, dict)
    assert isinstance(models, dict)
    assert all(oracle["pass_rate"] >= m["pass_rate"] for m in models.values())


def test_a_ladder_is_reproducible_and_consistent(capsys: pytest.CaptureFixture[str]) -> None:
    """The same ladder gives the same numbers twice, and its counts add up to the tasks."""
    ladder = f"open-mistral-nemo-2407,{MINI},{SONNET}"
    first = run_json(capsys, ladder)["ladders"]
    second = run_json(capsys, ladder)["ladders"]
    assert first == second
    assert isinstance(first, dict)
    (score,) = first.values()
    assert sum(score["statuses"].values()) == 400
    assert sum(score["accepted_by_tier"]) == score["statuses"]["accepted"]
    assert 0 < score["escalation_rate"] < 1
    # A cheap first rung whose bad calls are caught costs less than sonnet alone.
    assert score["cost_usd"] < run_json(capsys)["models"][SONNET]["cost_usd"]  # type: ignore[index]
