"""``cascade optimize --max-p95-latency``: only ladders that fast on the training tasks are kept."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cascade.bench import load_dataset
from cascade.bench.dataset import kind_stream, split_ids
from cascade.bench.evaluate import score_policy
from cascade.bench.suite import ByKind, default_validators, policy_cascades
from cascade.cli import main
from cascade.optimize.certify import SELECT
from cascade.optimize.pipeline import selection_parts
from cascade.optimize.search import ladders
from cascade.optimize.table import kind_table

BFCL = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "bfcl-simple"
pytestmark = pytest.mark.skipif(not BFCL.is_dir(), reason="../shared/datasets is not beside")


def optimize(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    """Run ``cascade optimize --json`` on bfcl-simple; its exit code and what it printed."""
    code = main(["optimize", str(BFCL), "--target-pass-rate", "auto", *args, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out) if code == 0 else {}


def _selection_p95(policy: Path) -> float:
    """The written policy's p95 task latency, replayed on bfcl-simple's selection tasks."""
    data = load_dataset(BFCL)
    train, _ = split_ids(data, 0.3, 0)
    table, _ = kind_table(data.subset(train), "function_call", max_reasks=2)
    parts = selection_parts(len(table.task_ids), kind_stream(0, "function_call", 1), 0.5)
    chosen = data.subset({t for t, p in zip(table.task_ids, parts, strict=True) if p in SELECT})
    cascades = policy_cascades(str(policy), chosen, ByKind(default_validators(None)), None)
    return asyncio.run(score_policy(chosen, cascades)).latency_quantile(0.95)


def test_the_chosen_ladder_keeps_the_bound_in_the_engine_replay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With a 1.5 s bound the engine's p95 on the selection tasks is within it; without, not."""
    code, _ = optimize(capsys, "--out", str(tmp_path / "free"), "--any-last-tier")
    assert code == 0
    assert _selection_p95(tmp_path / "free") > 1.5
    code, bound = optimize(
        capsys, "--out", str(tmp_path / "fast"), "--any-last-tier", "--max-p95-latency", "1.5"
    )
    assert code == 0
    assert _selection_p95(tmp_path / "fast") <= 1.5
    assert bound["max_p95_latency_s"] == 1.5
    assert "--max-p95-latency 1.5" in (tmp_path / "fast" / "function_call.toml").read_text()


def test_every_kept_ladder_is_within_the_bound_as_simulated() -> None:
    """Each ladder kept has a p95 of its selection tasks' recorded latencies within the bound.

    The certification part (here the odd tasks) never chooses, latency included.
    """
    data = load_dataset(BFCL)
    train, _ = split_ids(data, 0.3, 0)
    table, _ = kind_table(data.subset(train), "function_call", max_reasks=0)
    parts = np.arange(len(table.task_ids)) % 2
    every = ladders(table, parts, last=list(range(len(table.models))), max_tiers=2)
    kept = ladders(table, parts, last=list(range(len(table.models))), max_tiers=2, max_p95_s=1.0)
    assert 0 < len(kept.tiers) < len(every.tiers)
    assert (kept.p95_s <= 1.0).all()
    assert (every.p95_s > 1.0).any()
    for row, (first, _, top) in enumerate(kept.tiers):
        if first >= 0:
            continue  # a lone model: its p95 is its recorded latencies'
        selecting = table.seconds[top][parts == 0]
        assert kept.p95_s[row] == pytest.approx(np.quantile(selecting, 0.95), rel=1e-5)


@pytest.mark.parametrize(
    ("bound", "said"),
    [("0", "--max-p95-latency must be above 0"), ("0.1", "the fastest has a p95 of")],
)
def test_a_bound_nothing_meets_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bound: str, said: str
) -> None:
    """A bound of 0, or one no ladder meets, is exit 2 with why; nothing is written."""
    code = main(["optimize", str(BFCL), "--target-pass-rate", "auto", "--out",
                 str(tmp_path / "out"), "--max-p95-latency", bound])  # fmt: skip
    assert code == 2
    assert said in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# --- batch pricing (issue 21): in the same file, since it shares the bfcl runs ----------------

MINI = "gpt-4o-mini-2024-07-18"


def test_a_batch_tier_is_chosen_at_its_batch_price_and_written_as_a_batch_tier(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--batch-tier: mini's calls cost the batch price in the search and in the replays.

    Its tiers are written with mode = "batch", it is never a voter, and bench prices the written
    policy the same way.
    """
    code, found = optimize(capsys, "--out", str(tmp_path), "--batch-tier", MINI,
                           "--strong-last-tier")  # fmt: skip
    assert code == 0
    assert "litellm's batch price" in found["batch_pricing"][MINI]
    text = (tmp_path / "function_call.toml").read_text()
    assert f'model = "{MINI}"\nmode = "batch"' in text
    assert "--batch-tier gpt-4o-mini-2024-07-18" in text
    validators = text.split("[[tiers.validators]]")
    assert not any(MINI in part.split("[[tiers]]")[0] for part in validators[1:])
    assert main(["bench", str(BFCL), "--json", "--policy", str(tmp_path / "function_call.toml"),
                 "--split", "held-out"]) == 0  # fmt: skip
    benched = json.loads(capsys.readouterr().out)["ladders"]
    held = found["held_out"]
    assert benched["function_call"]["cost_per_task_usd"] == pytest.approx(
        held["cost_per_task_usd"], rel=1e-4
    )
    assert benched["function_call"]["pass_rate"] == pytest.approx(held["pass_rate"])
    assert benched["function_call, synchronous"]["cost_per_task_usd"] > held["cost_per_task_usd"]


def test_a_batch_model_is_never_a_voter() -> None:
    """A validator's second opinions are ordinary calls: a batch-priced model is not asked one."""
    data = load_dataset(BFCL)
    table, _ = kind_table(data, "function_call", max_reasks=0)
    parts = np.arange(len(table.task_ids)) % 2
    mini = table.models.index(MINI)
    every = ladders(table, parts, max_tiers=2)
    assert any(mini in gate.voters for gate in every.gates)
    kept = ladders(table, parts, max_tiers=2, no_voters=[mini])
    assert kept.gates
    assert not any(mini in gate.voters for gate in kept.gates)


def test_the_written_policy_carries_its_acceptance_rates_for_drift_alarms(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """[drift] acceptance: each gated tier's acceptance on the training tasks, as replayed."""
    from cascade.policy import load_policy  # noqa: PLC0415

    code, found = optimize(capsys, "--out", str(tmp_path))
    assert code == 0
    by_tier, tasks = found["train"]["accepted_by_tier"], found["train_tasks"]
    policy = load_policy(tmp_path / "function_call.toml")
    assert policy.drift is not None
    rates = list(policy.drift.acceptance)
    assert len(rates) == len(by_tier) - 1
    assert rates[0] == pytest.approx(by_tier[0] / tasks, abs=1e-4)
    assert rates[1] == pytest.approx(by_tier[1] / (tasks - by_tier[0]), abs=1e-4)
    assert found["drift_acceptance"]["function_call"] == rates
