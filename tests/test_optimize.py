"""``cascade optimize``: the search, the margin, the written policy, and the held-out check."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cascade.bench import load_dataset
from cascade.cli import main
from cascade.optimize.search import (
    Ladders,
    calibrate,
    choose,
    cross_validate,
    ladders,
    strong_models,
)
from cascade.optimize.table import KindTable, Turn, kind_table
from cascade.policy import load_policies
from tests.synthetic import write_dataset

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic suite: 150 multiple-choice and 150 math tasks, three models."""
    return write_dataset(tmp_path_factory.mktemp("suite"))


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
    code, found = optimize(capsys, str(dataset), "--target-pass-rate", "0.9", "--out", str(out))
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["math.toml", "multiple_choice.toml"]
    assert found["train"]["pass_rate"] == pytest.approx(found["simulated_train"]["pass_rate"])
    assert found["train"]["cost_per_task_usd"] == pytest.approx(
        found["simulated_train"]["cost_per_task_usd"], rel=1e-5
    )
    assert found["train_tasks"] + found["held_out_tasks"] == 300
    assert found["held_out_tasks"] == 90  # 30 % of each kind
    assert found["train"]["pass_rate"] >= 0.9 + found["margin"] - 1e-9
    held = bench(capsys, str(dataset), "--policy", str(out), "--split", "held-out")
    (ladder,) = held["ladders"].values()
    assert held["tasks"] == 90
    assert ladder["pass_rate"] == pytest.approx(found["held_out"]["pass_rate"])
    assert ladder["cost_per_task_usd"] == pytest.approx(found["held_out"]["cost_per_task_usd"])
    # Cheaper than the strong model on the tasks it never saw, and nearly as good.
    assert ladder["cost_usd"] < 0.6 * held["models"]["big"]["cost_usd"]
    assert ladder["pass_rate"] >= 0.85


def test_the_ladders_end_at_a_strong_trusted_model_and_gate_the_rest(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every written tier but the last has checks; the last is the strong model, trusted."""
    out = tmp_path / "chosen"
    assert optimize(capsys, str(dataset), "--target-pass-rate", "0.9", "--out", str(out))[0] == 0
    for policy in load_policies(out):
        *gated, last = policy.spec.tiers
        assert last.model == "big"
        assert last.trusted
        assert not last.validators
        assert gated
        assert all(tier.validators for tier in gated)
        assert main(["policy", "check", str(policy.path)]) == 0
    text = (out / "math.toml").read_text()
    assert text.startswith("# Written by cascade optimize:\n#   cascade optimize suite")
    assert "--split held-out --holdout 0.3 --seed 0" in text


def test_the_same_run_gives_the_same_answer(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Splits, folds and choices are seeded: twice the same figures and the same files."""
    runs = []
    for name in ("one", "two"):
        args = [str(dataset), "--target-pass-rate", "0.88", "--out", str(tmp_path / name)]
        _, found = optimize(capsys, *args)
        found.pop("search_s")
        found.pop("written")
        runs.append(found)
    assert runs[0] == runs[1]
    assert (tmp_path / "one" / "math.toml").read_text() == (
        tmp_path / "two" / "math.toml"
    ).read_text()


def test_an_unreachable_target_writes_nothing_and_says_why(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No ladder passes 99.5 % out of fold here: exit 2, the best figure named, no file."""
    out = tmp_path / "chosen"
    assert main(["optimize", str(dataset), "--target-pass-rate", "0.995", "--out", str(out)]) == 2
    said = capsys.readouterr().out
    assert "no ladder of" in said
    assert "reaches 99.5%" in said
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


def test_one_kind_goes_to_one_file(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --kind, --out may be a file, and run --replay accepts the policy."""
    out = tmp_path / "math.toml"
    args = [str(dataset), "--target-pass-rate", "0.9", "--out", str(out), "--kind", "math"]
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


def small_table(correct: list[list[bool]], cost: list[float]) -> KindTable:
    """A table of models answering tasks, with no confidence and no format check."""
    right = np.array(correct, dtype=np.bool_)
    models, tasks = right.shape
    first = Turn(
        right, np.full(right.shape, np.nan), None, np.zeros((models, models, tasks), np.bool_)
    )
    return KindTable(
        "k",
        tuple(f"m{i}" for i in range(models)),
        tuple(f"t{i}" for i in range(tasks)),
        np.array([[c] * tasks for c in cost], dtype=np.float64),
        None,
        (first,),
        np.zeros(models, dtype=np.intp),
    )


def test_agreement_gates_are_simulated_as_the_engine_runs_them() -> None:
    """Two cheap models that agree are accepted; the partner's call is paid; else the strong one."""
    table = small_table([[True, True, False, False], [True, False, False, True], [True] * 4],
                        [1.0, 2.0, 10.0])  # fmt: skip
    table.agree[0, 1] = table.agree[1, 0] = [True, False, True, False]
    found = ladders(table, np.array([0, 1, 0, 1]), last=[2], max_tiers=2)
    agree = [
        i for i, (first, _, last) in enumerate(found.tiers)
        if first >= 0 and found.gates[first].model == 0 and found.gates[first].partner == 1
    ]  # fmt: skip
    (index,) = agree
    # Tasks 0 and 2 accepted at m0 (right, wrong); 1 and 3 go on to m2 (right, right).
    assert found.rights[index].sum() == 3
    assert found.costs[index].sum() == pytest.approx(4 * 1.0 + 4 * 2.0 + 2 * 10.0)


def test_choose_mixes_kinds_for_the_cheapest_overall_target() -> None:
    """An easy kind may carry a hard one: the cheapest mix reaching the target overall wins."""
    easy = small_table([[True] * 10, [True] * 10], [1.0, 5.0])
    hard = small_table([[True] * 5 + [False] * 5, [True] * 10], [1.0, 5.0])
    folds = np.zeros(10, dtype=np.intp)
    found: dict[str, Ladders] = {
        "easy": ladders(easy, folds, last=[0, 1], max_tiers=1),
        "hard": ladders(hard, folds, last=[0, 1], max_tiers=1),
    }
    use = np.ones(1, dtype=np.bool_)
    cheap = choose(found, use, 0.75)
    assert cheap is not None
    assert cheap.pass_rate == 0.75
    assert cheap.cost_per_task == 1.0
    better = choose(found, use, 0.8)
    assert better is not None
    assert better.pass_rate == 1.0
    assert better.cost_per_task == 3.0
    assert choose(found, use, 1.0) == better
    assert strong_models(hard) == [1]


def test_the_margin_grows_when_choices_do_worse_out_of_fold() -> None:
    """A cheap model that passes the target only on lucky folds: calibration raises the bar."""
    pattern = [True, True, False, True, True, False, True, True, False, True] * 4
    lucky = small_table([pattern, [True] * 40], [1.0, 5.0])
    found = {"k": ladders(lucky, np.arange(40) % 5, last=[0, 1], max_tiers=1)}
    naive = cross_validate(found, 0.72)
    assert naive[0] == pytest.approx(0.7)  # chosen in sample at 72 %, it passes 70 % out of fold
    calibration = calibrate([found], 0.72)
    assert calibration.margin > 0
    assert calibration.out_of_fold == 1.0
    choice = choose(found, np.ones(5, dtype=np.bool_), calibration.target)
    assert choice is not None
    assert choice.cost_per_task == 5.0


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/datasets is not beside the repo")
@pytest.mark.parametrize(("suite", "target"), [("bfcl-simple", "0.95"), ("rlc-train", "0.86")])
def test_the_recorded_suites(
    suite: str, target: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """On the real suites: the engine agrees with the simulation, and held out is reported."""
    out = tmp_path / ("chosen.toml" if suite == "bfcl-simple" else "chosen")
    code, found = optimize(capsys, str(SHARED / suite), "--target-pass-rate", target,
                           "--out", str(out))  # fmt: skip
    assert code == 0
    assert found["train"]["pass_rate"] == pytest.approx(found["simulated_train"]["pass_rate"])
    assert found["train"]["cost_per_task_usd"] == pytest.approx(
        found["simulated_train"]["cost_per_task_usd"], rel=1e-4
    )
    low, high = found["held_out"]["pass_rate_ci95"]
    assert low <= float(target) <= high or found["held_out"]["pass_rate"] >= float(target)
    best = max(m["cost_per_task_usd"] for m in found["held_out_models"].values())
    assert found["held_out"]["cost_per_task_usd"] < best


def test_kind_tables_never_see_gold(tmp_path: Path) -> None:
    """The table's tasks come from the replay dataset, which drops every label."""
    data = load_dataset(write_dataset(tmp_path / "suite", tasks=40))
    table, left_out = kind_table(data, "multiple_choice")
    assert left_out == []
    assert table.models == ("tiny", "mid", "big")
    assert all("gold" not in t.extra for t in data.tasks)
    assert table.format_spec == {"kind": "one_of", "labels": ["A", "B", "C", "D"]}
    assert table.format_ok is not None
    assert not table.format_ok[0].all()
    assert table.format_ok[2].all()


def test_two_policies_of_the_same_name_are_both_benched(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ladders are named by file; a second file of the same name is named with its folder."""
    for name, target in (("one", "0.85"), ("two", "0.9")):
        args = [str(dataset), "--target-pass-rate", target, "--kind", "math"]
        assert optimize(capsys, *args, "--out", str(tmp_path / name / "math.toml"))[0] == 0
    report = bench(capsys, str(dataset), "--policy", str(tmp_path / "one" / "math.toml"),
                   "--policy", str(tmp_path / "two" / "math.toml"))  # fmt: skip
    assert sorted(report["ladders"]) == ["math", "two/math"]
    assert report["split"] == "all tasks"
