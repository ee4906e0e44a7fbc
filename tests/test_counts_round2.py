"""Honest counts, second round (issue 33, item 6): what a run, its resume and its report say."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cascade.cli import main

_POLICY = """\
task_type = "echo"
{budget}
[[tiers]]
model = "openai/cheap"
params = {{ max_tokens = {max_tokens} }}
price = {{ input_usd_per_mtok = 1.0, output_usd_per_mtok = 8.0 }}
[[tiers]]
model = "openai/dear"
params = {{ max_tokens = {max_tokens} }}
price = {{ input_usd_per_mtok = 10.0, output_usd_per_mtok = 40.0 }}
[[validators]]
kind = "one_of"
labels = ["ok"]
"""


@pytest.mark.parametrize(
    ("budget", "max_tokens"),
    [("[budget]\nmax_cost_per_task_usd = 0.00004", 1000), ("", 8)],
    ids=["budget-below-a-typical-answer", "max-tokens-below-a-typical-answer"],
)
def test_dry_run_floor_is_never_above_its_worst_case(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], budget: str, max_tokens: int
) -> None:
    """A tight task budget or a short max_tokens keeps the floor at or below the worst case."""
    policy = tmp_path / "p.toml"
    policy.write_text(_POLICY.format(budget=budget, max_tokens=max_tokens))
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text("".join(json.dumps({"id": f"t{n}", "input": "hi"}) + "\n" for n in range(5)))
    code = main(["run", str(tasks), "--policy", str(policy), "--dry-run",
                 "--store", str(tmp_path / "run.db")])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    found = re.search(r"total: floor \$([0-9.]+) .*worst case \$([0-9.]+)", out)
    assert found is not None, out
    floor, worst = float(found[1]), float(found[2])
    assert 0 < floor <= worst
