"""The main use: record a job on every tier, export it, and optimize with the user's own checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cascade.cli import main
from cascade.policy import load_policy
from tests.fake_backends import contact_of

SCHEMA = {
    "title": "contact",
    "type": "object",
    "required": ["name", "email"],
    "properties": {"name": {"type": "string"}, "email": {"type": "string"}},
}
POLICY = """task_type = "contact"
prompt = "Extract the contact as JSON.\\n\\n{input}"

[[tiers]]
model = "mini"
timeout_s = 20

[[tiers]]
model = "big"

[[validators]]
kind = "json_schema"
schema = "schemas/contact.json"

[[validators]]
kind = "grounded"
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """300 contact tasks run on every tier, exported with their gold answers."""
    root = tmp_path_factory.mktemp("job")
    (root / "policies" / "schemas").mkdir(parents=True)
    (root / "policies" / "schemas" / "contact.json").write_text(json.dumps(SCHEMA))
    policy = root / "policies" / "contact.toml"
    policy.write_text(POLICY)
    tasks, gold = root / "tasks.jsonl", root / "gold.jsonl"
    rows = [(n, contact_of(n)) for n in range(300)]
    lines = [{"id": f"c{n}", "type": "contact", "input": f"Write to {c['name']} at {c['email']}."}
             for n, c in rows]  # fmt: skip
    tasks.write_text("".join(json.dumps(line) + "\n" for line in lines))
    gold.write_text("".join(json.dumps({"id": f"c{n}", "answer": c}) + "\n" for n, c in rows))
    store = root / "run.db"
    run = ["run", str(tasks), "--policy", str(policy), "--backend", "tests.fake_backends:contacts",
           "--store", str(store), "--out", str(root / "results.jsonl"), "--no-progress",
           "--record-all-tiers", "1", "--workers", "1"]  # fmt: skip
    assert main(run) == 0
    out = root / "exported"
    assert main(["export", str(store), "--out", str(out), "--gold", str(gold)]) == 0
    return {"root": root, "policy": policy, "exported": out}


def optimize(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    """``cascade optimize --json``, which must succeed."""
    assert main(["optimize", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def test_the_users_checks_are_searched_and_the_policy_keeps_the_rest(
    exported: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Schema and grounding gate the cheap tier; prompt and tier settings survive; paths move."""
    out = exported["root"] / "chosen" / "contact.toml"
    found = optimize(capsys, str(exported["exported"]), "--policy", str(exported["policy"]),
                     "--target-pass-rate", "0.9", "--out", str(out),
                     "--holdout", "0.2")  # fmt: skip
    assert found["train"]["pass_rate"] == pytest.approx(found["simulated_train"]["pass_rate"])
    assert found["train"]["cost_per_task_usd"] == pytest.approx(
        found["simulated_train"]["cost_per_task_usd"], rel=1e-6
    )
    policy = load_policy(out)
    assert policy.spec.prompt == "Extract the contact as JSON.\n\n{input}"
    assert not policy.spec.validators  # now on the tiers, as chosen
    first = policy.spec.tiers[0]
    assert first.model == "mini"
    assert first.timeout_s == 20
    kinds = {v.kind for v in first.validators}
    assert "grounded" in kinds
    schemas = [v for v in first.validators if v.kind == "json_schema"]
    assert all(v.schema_ == "../policies/schemas/contact.json" for v in schemas)
    assert policy.spec.tiers[-1].trusted
    models = found["held_out_models"]
    assert found["held_out"]["pass_rate"] >= 0.9
    assert found["held_out"]["cost_per_task_usd"] < 0.5 * models["big"]["cost_per_task_usd"]


def test_without_the_policy_the_export_gets_no_checks_it_lacks(
    exported: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Tasks that bring no schema have no default checks: only opinions can gate them."""
    out = exported["root"] / "plain.toml"
    found = optimize(capsys, str(exported["exported"]), "--target-pass-rate", "0.9",
                     "--out", str(out), "--holdout", "0.2")  # fmt: skip
    assert "grounded" not in out.read_text()
    assert found["gates_searched"] > 0


def test_a_policy_for_another_task_type_is_refused(
    exported: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The policy must serve one of the dataset's kinds; the error names both."""
    other = tmp_path / "other.toml"
    other.write_text('task_type = "invoices"\n[[tiers]]\nmodel = "mini"\n')
    args = [str(exported["exported"]), "--policy", str(other), "--target-pass-rate", "0.9",
            "--out", str(tmp_path / "x.toml")]  # fmt: skip
    assert main(["optimize", *args]) == 2
    assert "serves task_type 'invoices'" in capsys.readouterr().err
