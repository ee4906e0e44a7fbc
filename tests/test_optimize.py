"""``cascade optimize``: the certified choice, the written policy, and the held-out check."""

from __future__ import annotations

import itertools
import json
import shlex
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.stats import binom

from cascade.bench import load_dataset
from cascade.bench.dataset import split_ids
from cascade.cli import main
from cascade.optimize.certify import CERTIFY, Certified, certify, levels, lower_bound
from cascade.optimize.search import ladders, strong_models
from cascade.optimize.splits import failure_share, run_split
from cascade.optimize.table import kind_table
from cascade.policy import load_policies
from tests.synthetic import write_dataset

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic suite: 400 multiple-choice and 400 math tasks, three models."""
    return write_dataset(tmp_path_factory.mktemp("suite"), tasks=400)


def optimize(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    """Run ``cascade optimize --json``; its exit code and what it printed."""
    code = main(["optimize", *args, "--json"])
    return code, json.loads(capsys.readouterr().out)


def bench(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    """Run ``cascade bench --json``."""
    assert main(["bench", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def test_the_written_policies_replay_as_simulated_and_as_reported(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The engine's in-sample figures equal the simulation's; bench's held-out ones the report's."""
    out = tmp_path / "chosen"
    code, found = optimize(capsys, str(dataset), "--target-pass-rate", "0.85", "--out", str(out))
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["math.toml", "multiple_choice.toml"]
    for written in out.iterdir():  # each kind's file says its figure is the mix's, not its own
        assert "pooled over the kinds math, multiple_choice" in " ".join(
            line.lstrip("# ") for line in written.read_text().splitlines()
        )
    assert found["train"]["pass_rate"] == pytest.approx(found["simulated_train"]["pass_rate"])
    assert found["train"]["cost_per_task_usd"] == pytest.approx(
        found["simulated_train"]["cost_per_task_usd"], rel=1e-6
    )
    assert found["train_tasks"] + found["held_out_tasks"] == 800
    assert found["held_out_tasks"] == 240  # 30 % of each kind
    assert found["selection_tasks"] + found["certification_tasks"] == 560
    chosen = found["guarantee"]["chosen"]
    assert chosen["chosen_lower_bound"] >= 0.85
    assert "with probability at least 90%" in found["guarantee"]["statement"]
    held = bench(capsys, str(dataset), "--policy", str(out), "--split", "held-out")
    (ladder,) = held["ladders"].values()
    assert held["tasks"] == 240
    assert ladder["pass_rate"] == pytest.approx(found["held_out"]["pass_rate"])
    assert ladder["cost_per_task_usd"] == pytest.approx(found["held_out"]["cost_per_task_usd"])
    # Cheaper than the strong model on the tasks it never saw, and as good as the target.
    assert ladder["cost_usd"] < 0.6 * held["models"]["big"]["cost_usd"]
    assert ladder["pass_rate"] >= 0.85


def test_the_header_command_runs_as_written_and_writes_the_same_policy(
    dataset: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The command in a written policy's header, with every option, makes that policy again."""
    monkeypatch.chdir(tmp_path)
    args = [str(dataset), "--target-pass-rate", "0.8", "--out", "first.toml", "--kind",
            "math", "--confidence", "0.8", "--max-reasks", "1", "--holdout", "0.25",
            "--seed", "3"]  # fmt: skip
    assert optimize(capsys, *args)[0] == 0
    text = Path("first.toml").read_text()
    written = text.splitlines()[1].removeprefix("#   ")
    assert written.startswith(f"cascade optimize {dataset} ")
    for option in ("--kind math", "--confidence 0.8", "--max-reasks 1", "--seed 3"):
        assert option in written
    again = shlex.split(written.replace("first.toml", "again.toml"))
    assert main([*again[1:], "--json"]) == 0
    capsys.readouterr()
    assert Path("again.toml").read_text() == text.replace("first.toml", "again.toml")
    assert "pooled" not in text  # one kind: its figure is its own
    bench_line = next(line for line in text.splitlines() if "cascade bench" in line)
    assert f"cascade bench {dataset} --policy THIS --split held-out --kind math" in bench_line
    assert "--holdout 0.25 --seed 3" in bench_line


def test_the_ladders_end_at_a_strong_trusted_model_and_gate_the_rest(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--strong-last-tier: every tier but the last has checks; the last is the strong model."""
    out = tmp_path / "chosen"
    args = ["--target-pass-rate", "0.85", "--out", str(out), "--strong-last-tier"]
    assert optimize(capsys, str(dataset), *args)[0] == 0
    for policy in load_policies(out):
        *gated, last = policy.spec.tiers
        assert last.model == "big"
        assert last.trusted
        assert not last.validators
        assert gated
        assert all(tier.validators for tier in gated)
        code = main(["policy", "check", str(policy.path)])
        printed = capsys.readouterr().out.splitlines()
        # The synthetic models have no list price, which the check says, and nothing else.
        assert code == 0 or all("set a price on the tier" in line for line in printed)


def test_the_same_run_gives_the_same_answer(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Splits, parts and choices are seeded: twice the same figures and the same files."""
    runs = []
    for name in ("one", "two"):
        args = [str(dataset), "--target-pass-rate", "0.85", "--out", str(tmp_path / name)]
        _, found = optimize(capsys, *args)
        for key in ("search_s", "written", "command"):
            found.pop(key)
        runs.append(found)
    assert runs[0] == runs[1]
    assert (tmp_path / "one" / "math.toml").read_text() == (
        tmp_path / "two" / "math.toml"
    ).read_text().replace(str(tmp_path / "two"), str(tmp_path / "one"))


def test_an_uncertifiable_target_writes_nothing_and_names_the_best_it_can_certify(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No ladder is certified at 99.5 %: exit 2, the best candidate and its bound, no file."""
    out = tmp_path / "chosen"
    assert main(["optimize", str(dataset), "--target-pass-rate", "0.995", "--out", str(out)]) == 2
    said = capsys.readouterr().out
    assert "could be certified to pass 99.5% with probability 90%" in said
    rate = float(said.split("(its lower bound: ")[1].split("%")[0]) / 100
    assert 0.7 < rate < 0.995
    assert "nothing was written" in said
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target-pass-rate", "1.5", "--out", "x"], "--target-pass-rate must be above 0"),
        (["--target-pass-rate", "0.9", "--out", "one.toml"], "2 task kinds"),
        (["--target-pass-rate", "0.9", "--out", "x", "--kind", "code"], "--kind code"),
        (["--target-pass-rate", "0.9", "--out", "x", "--max-tiers", "4"], "--max-tiers"),
        (["--target-pass-rate", "0.9", "--out", "x", "--holdout", "1"], "--holdout"),
        (["--target-pass-rate", "0.9", "--out", "x", "--confidence", "1"], "--confidence"),
        (["--target-pass-rate", "0.9", "--out", "x", "--select", "0"], "--select"),
    ],
)
def test_bad_options_are_named(
    dataset: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    """Each bad option gets an error naming it, and nothing is written."""
    fixed = [str(tmp_path / a) if a in ("x", "one.toml") else a for a in args]
    assert main(["optimize", str(dataset), *fixed]) == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_one_kind_goes_to_one_file_and_runs(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --kind, --out may be a file, and run --replay accepts the policy."""
    out = tmp_path / "math.toml"
    args = [str(dataset), "--target-pass-rate", "0.85", "--out", str(out), "--kind", "math"]
    code, found = optimize(capsys, *args)
    assert code == 0
    assert found["written"] == [str(out)]
    tasks = tmp_path / "tasks.jsonl"
    lines = [
        line for line in (dataset / "tasks.jsonl").read_text().splitlines() if '"math"' in line
    ]
    tasks.write_text("\n".join(lines[:20]) + "\n")
    results = tmp_path / "results.jsonl"
    run = ["run", str(tasks), "--policy", str(out), "--replay", str(dataset)]
    assert main([*run, "--out", str(results), "--store", str(tmp_path / "run.db")]) == 0
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert len(rows) == 20
    assert {r["status"] for r in rows} == {"accepted"}


def test_the_held_out_split_is_the_same_whichever_kinds_are_chosen(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each kind draws its own stream: optimize --kind and bench --kind hold out the same tasks."""
    data = load_dataset(dataset)
    _, held_all = split_ids(data, 0.3, 0)
    math_only = data.subset({t.id for t in data.tasks if t.type == "math"})
    _, held_math = split_ids(math_only, 0.3, 0)
    assert held_math == {i for i in held_all if i.startswith("math")}
    out = tmp_path / "math.toml"
    code, found = optimize(capsys, str(dataset), "--target-pass-rate", "0.85", "--out", str(out),
                           "--kind", "math")  # fmt: skip
    assert code == 0
    held = bench(capsys, str(dataset), "--policy", str(out), "--split", "held-out",
                 "--kind", "math")  # fmt: skip
    assert held["tasks"] == found["held_out_tasks"] == len(held_math)
    assert held["ladders"]["math"]["pass_rate"] == pytest.approx(found["held_out"]["pass_rate"])


def test_the_lower_bound_is_exact_clopper_pearson() -> None:
    """At the bound, seeing as many right answers or more has chance 1 - confidence; edges."""
    bound = lower_bound(95, 100, 0.9)
    assert binom.sf(94, 100, bound) == pytest.approx(0.1)
    assert bound == pytest.approx(0.90923, abs=1e-5)
    assert lower_bound(100, 100, 0.9) == pytest.approx(0.1 ** (1 / 100))
    assert lower_bound(0, 50, 0.9) == 0.0
    assert lower_bound(80, 100, 0.95) < lower_bound(80, 100, 0.9) < 0.8


def test_levels_start_three_errors_above_the_target_and_end_at_it() -> None:
    """The sequence's levels are spaced by half a standard error of the certifying part."""
    found = levels(0.84, 400)
    error = (0.84 * 0.16 / 400) ** 0.5
    assert found[0] == pytest.approx(0.84 + 3 * error)
    assert found[-1] == pytest.approx(0.84)
    assert all(a > b for a, b in itertools.pairwise(found))


def test_the_walk_stops_at_the_first_candidate_that_fails(dataset: Path) -> None:
    """Fixed-sequence testing: certified candidates form a prefix, the choice is the cheapest."""
    data = load_dataset(dataset)
    table, _ = kind_table(data, "math")
    parts = np.arange(len(table.task_ids)) % (CERTIFY + 1)
    found = {"math": ladders(table, parts)}
    result = certify(found, 0.8, 0.9)
    assert isinstance(result, Certified)
    assert result.certified == result.sequence[: len(result.certified)]
    assert all(c.bound >= 0.8 for c in result.certified)
    if len(result.sequence) > len(result.certified):
        assert result.sequence[len(result.certified)].bound < 0.8
    assert result.chosen == min(result.certified, key=lambda c: c.cost_per_task)
    assert strong_models(table) == [2]


def test_the_guarantee_holds_over_random_splits_and_the_check_would_catch_a_broken_one(
    dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The guarantee's check passes on the real certifier and fails on a broken one.

    Over 30 splits, a certified ladder whose pass rate on the whole suite (the truth, as near
    as the suite tells it) is below the target turns up no more often than 1 - confidence
    allows, counted over all splits; the same check on a certifier that overstates its bound
    fails.
    """
    data = load_dataset(dataset)
    tables = {k: kind_table(data, k)[0] for k in ("math", "multiple_choice")}
    rng = np.random.default_rng(11)
    results = [run_split(tables, 0.92, 0.9, rng) for _ in range(30)]
    assert sum(r.certified for r in results) >= 15
    assert all(0 < r.true_rate <= 1 for r in results)
    assert failure_share(results) <= 0.1
    # A bound five points above what was seen certifies ladders that miss the target.
    overstated = lambda right, total, _: right / max(1, total) + 0.05  # noqa: E731
    monkeypatch.setattr("cascade.optimize.certify.lower_bound", overstated)
    rng = np.random.default_rng(11)
    broken = [run_split(tables, 0.99, 0.9, rng) for _ in range(30)]
    assert failure_share(broken) > 0.1


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/datasets is not beside the repo")
@pytest.mark.parametrize(("suite", "target"), [("bfcl-simple", "0.92"), ("rlc-train", "0.84")])
def test_the_recorded_suites(
    suite: str, target: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """On the real suites: certified, the engine agrees with the simulation, cheaper held out."""
    out = tmp_path / ("chosen.toml" if suite == "bfcl-simple" else "chosen")
    code, found = optimize(capsys, str(SHARED / suite), "--target-pass-rate", target,
                           "--out", str(out))  # fmt: skip
    assert code == 0
    assert found["guarantee"]["chosen"]["chosen_lower_bound"] >= float(target)
    assert found["train"]["pass_rate"] == pytest.approx(found["simulated_train"]["pass_rate"])
    assert found["train"]["cost_per_task_usd"] == pytest.approx(
        found["simulated_train"]["cost_per_task_usd"], rel=1e-6
    )
    best = max(found["held_out_models"].values(), key=lambda m: m["pass_rate"])
    assert found["held_out"]["cost_per_task_usd"] < 0.5 * best["cost_per_task_usd"]


def test_kind_tables_never_see_gold(tmp_path: Path) -> None:
    """The table's tasks come from the replay dataset, which drops every label."""
    data = load_dataset(write_dataset(tmp_path / "suite", tasks=40))
    table, left_out = kind_table(data, "multiple_choice")
    assert left_out == []
    assert table.models == ("tiny", "mid", "big")
    assert all("gold" not in t.extra for t in data.tasks)
    assert [c.spec for c in table.checks] == [{"kind": "one_of", "labels": ["A", "B", "C", "D"]}]
    passes = table.turns[0].passes[0]
    assert not passes[0].all()
    assert passes[2].all()
