"""A dataset where no model answered every task (imported traffic, served by several models)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cascade.cli import main


def write_partial(folder: Path) -> Path:
    """Four tasks, two answered by one model and two by another."""
    tasks = [{"id": f"t{i}", "kind": "chat", "messages": [{"role": "user", "content": f"say {i}"}]}
             for i in range(4)]  # fmt: skip
    rows = [
        {"task_id": f"t{i}", "model": "gpt-4o-mini" if i % 2 == 0 else "gpt-4o",
         "output": str(i), "prompt_tokens": 5, "completion_tokens": 1, "cost": 0.0001,
         "latency_s": 0.2, "correct": i % 2 == 0}
        for i in range(4)
    ]  # fmt: skip
    models = [
        {"name": "gpt-4o-mini", "input_usd_per_mtok": 0.15, "output_usd_per_mtok": 0.6},
        {"name": "gpt-4o", "input_usd_per_mtok": 2.5, "output_usd_per_mtok": 10.0},
    ]
    (folder / "tasks.jsonl").write_text("".join(json.dumps(t) + "\n" for t in tasks))
    (folder / "responses.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "models.json").write_text(json.dumps(models))
    return folder


def test_bench_of_a_dataset_no_model_fully_answered_reports_the_ladder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No model row, so no savings against one: the ladder and the oracle are still reported."""
    data = write_partial(tmp_path)
    assert main(["bench", str(data), "--ladder", "gpt-4o-mini,gpt-4o", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["models"] == {}
    (ladder,) = report["ladders"].values()
    assert ladder["oracle_savings_share"] is None
    assert ladder["savings_vs_equal_model"] is None
