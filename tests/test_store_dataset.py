"""A run store as a dataset: ``--record-all-tiers``, ``cascade export``, ``cascade bench STORE``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cascade import CallKind, Decision, Status, Tier
from cascade.bench import load_dataset
from cascade.cli import main
from cascade.errors import ConfigError
from cascade.store import Store
from tests.helpers import make, models_called
from tests.synthetic import write_dataset

POLICY = """task_type = "multiple_choice"

[[tiers]]
model = "tiny"

[[tiers.validators]]
kind = "confidence"
threshold = -0.3

[[tiers]]
model = "mid"

[[tiers]]
model = "big"
trusted = true

[[validators]]
kind = "one_of"
labels = ["A", "B", "C", "D"]
"""


def test_every_tier_is_asked_for_the_record_without_changing_the_outcome() -> None:
    """Accepted at tier 0, the task still asks tiers 1 and 2, as calibration steps."""
    cascade, backend = make(
        {"a": ["ok"], "b": ["no"], "c": ["ok"]},
        ["a", "b", Tier("c", trusted=True)],
        record_all_tiers=1.0,
    )
    outcome = cascade.run({"id": "t", "input": "x"})
    assert outcome.status is Status.ACCEPTED
    assert (outcome.tier, outcome.model, outcome.output) == (0, "a", "ok")
    assert models_called(backend) == ["a", "b", "c"]
    kinds = [(s.tier, s.kind, s.decision) for s in outcome.steps]
    assert kinds == [
        (0, CallKind.CALL, Decision.ACCEPT),
        (1, CallKind.CALIBRATION, Decision.RECORD),
        (2, CallKind.CALIBRATION, Decision.RECORD),
    ]
    assert outcome.cost_usd == sum(s.cost_usd for s in outcome.steps)
    assert outcome.to_result()["tier"] == 0


def test_the_sample_is_drawn_by_task_id() -> None:
    """About the share asked for, and the same tasks every time (a resume agrees)."""
    picked = []
    for _ in range(2):
        cascade, backend = make({"a": ["ok"] * 400, "b": ["ok"] * 400}, ["a", "b"],
                                record_all_tiers=0.25)  # fmt: skip
        for number in range(400):
            cascade.run({"id": f"task-{number}", "input": "x"})
        picked.append([r.task_id for r in backend.calls if r.model == "b"])
    assert picked[0] == picked[1]
    assert 70 < len(picked[0]) < 130
    with pytest.raises(ConfigError, match="record_all_tiers"):
        make({}, ["a"], record_all_tiers=1.5)


@pytest.fixture
def recorded(tmp_path: Path) -> dict[str, Path]:
    """A run over the synthetic suite with half the tasks asked of every tier, and its gold."""
    suite = write_dataset(tmp_path / "suite", tasks=60)
    rows = [json.loads(line) for line in (suite / "tasks.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r["kind"] == "multiple_choice"]
    tasks, gold = tmp_path / "tasks.jsonl", tmp_path / "gold.jsonl"
    tasks.write_text("".join(
        json.dumps({k: v for k, v in r.items() if k not in ("gold", "kind")} | {"type": r["kind"]})
        + "\n" for r in rows))  # fmt: skip
    gold.write_text("".join(json.dumps({"id": r["id"], "answer": r["gold"]}) + "\n" for r in rows))
    policy = tmp_path / "mc.toml"
    policy.write_text(POLICY)
    store = tmp_path / "run.db"
    args = ["run", str(tasks), "--policy", str(policy), "--replay", str(suite), "--store",
            str(store), "--out", str(tmp_path / "results.jsonl"), "--no-progress",
            "--record-all-tiers", "0.5"]  # fmt: skip
    assert main(args) == 0
    return {"suite": suite, "store": store, "gold": gold, "policy": policy, "tasks": tasks}


def test_untyped_tasks_go_from_a_run_to_an_optimized_policy_under_its_type(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Untyped tasks served by one policy: recorded, exported, optimized and benched as its type."""
    suite = write_dataset(tmp_path / "suite", tasks=120)
    rows = [json.loads(line) for line in (suite / "tasks.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r["kind"] == "multiple_choice"]
    tasks, gold = tmp_path / "tasks.jsonl", tmp_path / "gold.jsonl"
    tasks.write_text("".join(json.dumps({k: v for k, v in r.items() if k not in ("gold", "kind")})
                             + "\n" for r in rows))  # fmt: skip
    gold.write_text("".join(json.dumps({"id": r["id"], "answer": r["gold"]}) + "\n" for r in rows))
    policy = tmp_path / "mc.toml"
    policy.write_text(POLICY)
    store = tmp_path / "run.db"
    assert main(["run", str(tasks), "--policy", str(policy), "--replay", str(suite), "--store",
                 str(store), "--out", str(tmp_path / "results.jsonl"), "--no-progress",
                 "--record-all-tiers", "1"]) == 0  # fmt: skip
    summary = capsys.readouterr().out
    assert "multiple_choice:" in summary
    assert "default:" not in summary
    out = tmp_path / "exported"
    assert main(["export", str(store), "--out", str(out), "--gold", str(gold)]) == 0
    capsys.readouterr()
    assert {t.type for t in load_dataset(out).tasks} == {"multiple_choice"}
    chosen = tmp_path / "chosen.toml"
    assert main(["optimize", str(out), "--policy", str(policy), "--target-pass-rate", "0.5",
                 "--out", str(chosen), "--json"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out)["guarantee"]["certified"]
    assert main(["bench", str(out), "--policy", str(chosen), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tasks"] == len(rows)


def test_export_writes_the_fully_answered_tasks_as_a_dataset(
    recorded: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each exported answer is the recorded one, with its cost and confidence, judged by gold."""
    out = tmp_path / "exported"
    assert main(["export", str(recorded["store"]), "--out", str(out),
                 "--gold", str(recorded["gold"])]) == 0  # fmt: skip
    said = capsys.readouterr().out
    assert "answers from 3 models (tiny, mid, big)" in said
    data = load_dataset(out)
    source = load_dataset(recorded["suite"])
    assert 15 < len(data.tasks) < 45  # about half of the 60
    assert set(data.models) == {"tiny", "mid", "big"}
    for task in data.tasks:
        assert "gold" not in task.extra
        for model in data.models:
            mine, theirs = (
                data.backend.record(task.id, model),
                source.backend.record(task.id, model),
            )
            assert mine.output == theirs.output
            assert mine.confidence == pytest.approx(theirs.confidence)
            assert data.cost[(task.id, model)] == pytest.approx(source.cost[(task.id, model)])
            # Gold judges the bare answer: "I think the answer is B" is not "B".
            bare = len(mine.output) == 1
            expected = source.correct[(task.id, model)] and bare
            assert data.correct[(task.id, model)] == expected


def test_bench_reads_a_store_as_it_reads_the_dataset(
    recorded: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """The same tasks replayed from the store or from the suite give the same figures."""
    assert main(["bench", str(recorded["store"]), "--gold", str(recorded["gold"]),
                 "--policy", str(recorded["policy"]), "--json"]) == 0  # fmt: skip
    from_store: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert from_store["dataset"] == "run.db"
    exported = recorded["store"].parent / "again"
    assert main(["export", str(recorded["store"]), "--out", str(exported)]) == 0
    assert "'correct' is null" in capsys.readouterr().out
    ids = [json.loads(line)["id"] for line in (exported / "tasks.jsonl").read_text().splitlines()]
    suite = load_dataset(recorded["suite"]).subset(set(ids))
    from cascade.bench.evaluate import score_models  # noqa: PLC0415

    direct = score_models(suite)
    assert from_store["tasks"] == len(ids)
    for model, score in direct.items():
        found = from_store["models"][model]["pass_rate"]
        if model == "tiny":  # its wordy answers were graded right by the suite, not by gold
            assert found < score.pass_rate
        else:
            assert found == pytest.approx(score.pass_rate)
    (ladder,) = from_store["ladders"].values()
    assert sum(ladder["accepted_by_tier"]) == len(ids)


def test_a_store_needs_gold_and_a_dataset_takes_none(
    recorded: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Errors name what is missing: gold for a store, a store that is not there."""
    assert main(["bench", str(recorded["store"])]) == 2
    assert "holds no truth: give --gold" in capsys.readouterr().err
    assert main(["bench", str(recorded["suite"]), "--gold", str(recorded["gold"])]) == 2
    assert "--gold is for run stores" in capsys.readouterr().err
    missing = recorded["store"].parent / "nothing.db"
    assert main(["export", str(missing), "--out", str(missing.parent / "x")]) == 2
    assert "no run store at" in capsys.readouterr().err


def test_reports_count_calibration_calls_as_cost_not_as_tiers_reached(
    recorded: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """The ladder's own counts leave calibration steps out; their cost is still counted."""
    with Store(recorded["store"]) as store:
        calibration = next(
            store.select("SELECT count(*), sum(cost_usd) FROM attempts WHERE kind = 'calibration'")
        )
        (reached_big,) = next(
            store.select(
                "SELECT count(DISTINCT task_id) FROM attempts WHERE tier = 2 AND kind = 'call'"
            )
        )
    assert calibration[0] > 0
    assert main(["report", str(recorded["store"]), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    tiers = report["by_type"]["multiple_choice"]
    big = next(t for t in tiers if t["tier"] == 2)
    assert big["tasks_reached"] == reached_big
    assert sum(t["calibration_calls"] for t in tiers) == calibration[0]
    assert sum(t["calibration_usd"] for t in tiers) == pytest.approx(calibration[1])
    assert big["models"] == ["big"]
    assert big["cost_usd"] >= big["calibration_usd"] > 0


def test_a_model_that_answered_only_some_tasks_is_not_scored_on_all(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A model asked for one kind only is named apart, not shown as wrong and free elsewhere."""
    suite = write_dataset(tmp_path / "suite", tasks=20)
    rows = (suite / "responses.jsonl").read_text().splitlines()
    kept = [r for r in rows if not ('"model": "mid"' in r and '"task_id": "math-' in r)]
    (suite / "responses.jsonl").write_text("\n".join(kept) + "\n")
    report = tmp_path / "report"
    args = ["bench", str(suite), "--ladder", "tiny,big", "--report", str(report)]
    assert main([*args, "--json"]) == 0
    found: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert set(found["models"]) == {"tiny", "big"}
    assert found["partial_models"] == {"mid": 20}
    assert "`mid` (20 of 40)" in (report / "report.md").read_text()
    assert main(args) == 0
    assert "only some of the tasks: mid (20 of 40)" in capsys.readouterr().out
