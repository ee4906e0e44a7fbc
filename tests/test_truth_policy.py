"""``cascade truth --by policy``, and a ladder certified on one's own traffic.

A log of 40 contact extractions served by one model is imported, a cheaper model's answers are
added (a quarter without the email, a quarter with the wrong one), and the user's policy (a JSON
schema that requires the email) says what "correct" means; ``cascade optimize --policy`` then
certifies a ladder on the dataset and names the definition.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cascade.cli import main
from tests.test_truth import CHEAP, SERVED, add_cheap, files, log_line, prompts, rows

SCHEMA = {
    "type": "object",
    "required": ["name", "email"],
    "properties": {"name": {"type": "string"}, "email": {"type": "string"}},
}
POLICY = """task_type = "json"

[[tiers]]
model = "cheap-model"

[[tiers]]
model = "gpt-4o-mini"

[[validators]]
kind = "json_schema"
schema = "contact.schema.json"

[[validators]]
kind = "judge"
rubric = "Is the contact right?"
model = "gpt-4o"
"""


def contact(n: int) -> tuple[str, dict[str, str]]:
    """Contact ``n``'s prompt and its answer."""
    name, email = f"Person {n}", f"person{n}@example.com"
    return f"Extract: {name} <{email}>", {"name": name, "email": email}


def cheap_answer(n: int) -> dict[str, str]:
    """The cheap model's answer: no email on every fourth, a wrong one on the next fourth."""
    _, right = contact(n)
    if n % 4 == 0:
        return {"name": right["name"]}
    if n % 4 == 3:
        return {**right, "email": "someone@example.com"}
    return dict(reversed(right.items()))


@pytest.fixture
def traffic(tmp_path: Path) -> dict[str, Path]:
    """The imported contacts with the cheap model's answers, and the user's policy."""
    log = tmp_path / "log.jsonl"
    log.write_text("".join(log_line(p, SERVED, json.dumps(a)) for p, a in map(contact, range(40))))
    folder = tmp_path / "contacts"
    assert main(["import", "openai-chat", str(log), "--out", str(folder)]) == 0
    add_cheap(folder, {contact(n)[0]: json.dumps(cheap_answer(n)) for n in range(40)})
    (tmp_path / "contact.schema.json").write_text(json.dumps(SCHEMA))
    policy = tmp_path / "contact.toml"
    policy.write_text(POLICY)
    return {"dataset": folder, "policy": policy, "root": tmp_path}


def number(prompt: str) -> int:
    """The contact number a prompt asks about."""
    return int(prompt.split()[2].rstrip("<"))


def test_an_answer_is_right_when_it_passes_the_policys_validators(
    traffic: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """The schema rejects the answers without an email; a wrong email passes it."""
    folder = traffic["dataset"]
    assert main(["truth", str(folder), "--by", "policy", "--policy", str(traffic["policy"])]) == 0
    asked = prompts(folder)
    for row in rows(folder):
        n = number(asked[row["task_id"]])
        assert row["correct"] is (row["model"] == SERVED or n % 4 != 0), row
    out = capsys.readouterr().out
    assert f"correct means: passes the validators of {traffic['policy']}" in out
    assert "not run     contact.toml: judge (calls a model)" in out
    truth = json.loads((folder / "truth.json").read_text())
    assert truth["by"] == "policy"
    assert truth["policy"] == str(traffic["policy"])
    assert truth["left_out"] == ["contact.toml: judge (calls a model)"]
    assert len(truth["validators"]) == 1


def test_another_definition_replaces_the_first_and_says_so(
    traffic: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Served after policy: the wrong emails become wrong, and the output names the old one."""
    folder = traffic["dataset"]
    assert main(["truth", str(folder), "--by", "policy", "--policy", str(traffic["policy"])]) == 0
    capsys.readouterr()
    assert main(["truth", str(folder), "--by", "served"]) == 0
    out = capsys.readouterr().out
    assert f"replaced the earlier definition: passes the validators of {traffic['policy']}" in out
    asked = prompts(folder)
    for row in rows(folder):
        n = number(asked[row["task_id"]])
        assert row["correct"] is (row["model"] == SERVED or n % 4 in (1, 2)), row
    assert json.loads((folder / "truth.json").read_text())["by"] == "served"


def test_the_same_definition_again_replaces_nothing(
    traffic: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Running the same definition twice gives the same files and no 'replaced' line."""
    folder = traffic["dataset"]
    assert main(["truth", str(folder), "--by", "served"]) == 0
    first = files(folder)
    assert main(["truth", str(folder), "--by", "served"]) == 0
    assert files(folder) == first
    assert "replaced" not in capsys.readouterr().out


def optimized(
    traffic: dict[str, Path], capsys: pytest.CaptureFixture[str], *more: str
) -> tuple[int, str]:
    """``cascade optimize`` on the dataset with the user's policy: its status and output."""
    capsys.readouterr()
    args = ["optimize", str(traffic["dataset"]), "--policy", str(traffic["policy"]),
            "--target-pass-rate", "0.8", "--holdout", "0.2", "--max-reasks", "0",
            "--out", str(traffic["root"] / "chosen.toml"), *more]  # fmt: skip
    status = main(args)
    return status, capsys.readouterr().out


@pytest.mark.parametrize("by", ["served", "policy"])
def test_optimize_certifies_a_ladder_and_names_the_definition(
    traffic: dict[str, Path], capsys: pytest.CaptureFixture[str], by: str
) -> None:
    """A ladder is certified on the judged traffic, and the report says what correct means."""
    policy = ["--policy", str(traffic["policy"])] if by == "policy" else []
    assert main(["truth", str(traffic["dataset"]), "--by", by, *policy]) == 0
    status, out = optimized(traffic, capsys)
    assert status == 0, out
    means = (f"reproduces the served model's answers ({SERVED})" if by == "served"
             else f"passes the validators of {traffic['policy']}")  # fmt: skip
    assert f"correct means: {means}" in out
    lines = (traffic["root"] / "chosen.toml").read_text().splitlines()
    header = "".join(line[2:].replace(" ", "") for line in lines if line.startswith("# "))
    said = f"A pass is a correct answer, and correct means: {means}.".replace(" ", "")
    assert said in header  # the header is wrapped, at spaces and hyphens
    status, text = optimized(traffic, capsys, "--json")
    found: dict[str, Any] = json.loads(text)
    assert found["truth"]["by"] == by
    assert found["guarantee"]["chosen"]["certification_pass_rate"] >= 0.8
    if by == "policy":  # the schema catches every wrong answer: the cheap model goes first
        assert found["ladders"]["json"].startswith(f"{CHEAP} [json_schema]")


def test_a_kind_no_policy_serves_is_refused_unchanged(
    traffic: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A policy for another task type: the error names both, and nothing is written."""
    other = tmp_path / "other.toml"
    other.write_text(POLICY.replace('task_type = "json"', 'task_type = "invoices"'))
    before = files(traffic["dataset"])
    assert main(["truth", str(traffic["dataset"]), "--by", "policy", "--policy", str(other)]) == 2
    err = capsys.readouterr().err
    assert "serves task_type invoices" in err
    assert "tasks of kind json have no policy" in err
    assert files(traffic["dataset"]) == before


def test_a_policy_with_nothing_to_run_is_refused(
    traffic: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only a judge: no validator can run on recorded answers, which the error says."""
    judge_only = tmp_path / "judge.toml"
    head, _schema, judge = POLICY.split("[[validators]]")
    judge_only.write_text(head + "[[validators]]" + judge)
    before = files(traffic["dataset"])
    args = ["truth", str(traffic["dataset"]), "--by", "policy", "--policy", str(judge_only)]
    assert main(args) == 2
    assert "no [[validators]] that truth can run" in capsys.readouterr().err
    assert files(traffic["dataset"]) == before
