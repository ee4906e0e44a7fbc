"""Scoring results against gold answers, and the example tasks the project makes."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from cascade.cli import main
from cascade.errors import ConfigError
from cascade.gold import load_gold, same_answer, score_results
from cascade.testing import verdict_of
from cascade.validators import Validator, grounded, not_missing

ROOT = Path(__file__).resolve().parents[1]


def _examples() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "make_contacts", ROOT / "examples" / "make_contacts.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_contacts"] = module
    spec.loader.exec_module(module)
    return module


def _write(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_precision_counts_only_accepted_results(tmp_path: Path) -> None:
    """Precision is right/accepted, overall and per tier; coverage is right/all; fields too."""
    gold = {
        "a": {"name": "Ada", "phone": "+1 415 555 0100"},
        "b": {"name": "Bo", "phone": None},
        "c": {"name": "Cy", "phone": None},
        "d": {"name": "Di", "phone": None},
    }
    results = [
        {
            "id": "a",
            "status": "accepted",
            "tier": 0,
            "model": "m",
            "parsed": {"name": "ada", "phone": "(1) 415-555-0100"},
        },
        {
            "id": "b",
            "status": "accepted",
            "tier": 1,
            "model": "n",
            "parsed": {"name": "Bob", "phone": None},
        },
        {"id": "c", "status": "needs_review", "tier": 2, "model": "human", "parsed": None},
        {
            "id": "d",
            "status": "accepted",
            "tier": 0,
            "model": "m",
            "parsed": None,
            "output": '{"name": "Di"}',
        },
        {"id": "zz", "status": "accepted", "tier": 0, "model": "m", "parsed": {}},
    ]
    score = score_results(_write(tmp_path / "r.jsonl", results), gold)
    assert (score.tasks, score.no_gold) == (4, 1)
    assert (score.accepted.accepted, score.accepted.correct) == (3, 2)
    assert score.by_tier["tier 0: m"].precision == 1.0
    assert score.by_tier["tier 1: n"].precision == 0.0
    assert score.coverage == 0.5
    assert score.fields["name"].correct == 2
    assert score.fields["phone"].correct == 3
    assert score.wrong == ["b"]
    assert score.statuses == {"accepted": 3, "needs_review": 1}


def test_eval_command_prints_text_or_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``cascade eval`` reads both files; a bad gold line is an error with its line number."""
    _write(tmp_path / "gold.jsonl", [{"id": "a", "answer": "yes"}])
    _write(
        tmp_path / "r.jsonl",
        [{"id": "a", "status": "accepted", "tier": 0, "model": "m", "output": "Yes "}],
    )
    assert (
        main(["eval", str(tmp_path / "r.jsonl"), "--gold", str(tmp_path / "gold.jsonl"), "--json"])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["precision"] == 1.0
    (tmp_path / "bad.jsonl").write_text('{"id": "a", "answer": 1}\n{"id": "b"}\n')
    with pytest.raises(ConfigError, match=r"bad.jsonl:2: expected"):
        load_gold(tmp_path / "bad.jsonl")
    assert main(["eval", str(tmp_path / "r.jsonl"), "--gold", str(tmp_path / "nope.jsonl")]) == 2


def test_same_answer_is_strict_about_values_not_formatting() -> None:
    """Case, spacing and phone punctuation do not matter; a different value does."""
    assert same_answer("  Hello   World", "hello world")
    assert not same_answer({"email": "a@b.co"}, {"email": "a@b.com"})
    assert not same_answer(["x"], ["x", "y"])


def test_example_tasks_are_deterministic_and_their_gold_is_in_the_text() -> None:
    """The same seed makes the same tasks, and the gold answers pass the local policy's checks.

    Every gold value occurs in its text, and every field the text holds is in the gold.
    """
    module = _examples()
    tasks, gold = module.make(64, 7)
    assert (tasks, gold) == module.make(64, 7)
    assert tasks != module.make(64, 8)[0]
    assert len({t["id"] for t in tasks}) == 64
    assert len({t["meta"]["template"] for t in tasks}) == 8
    checks: list[Validator] = [
        grounded(),
        not_missing(
            {"email": r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", "phone": r"\+?\(?\d[\d ().-]{6,}\d"}
        ),
    ]
    for task, answer in zip(tasks, gold, strict=True):
        assert task["id"] == answer["id"]
        for check in checks:
            verdict = verdict_of(check, json.dumps(answer["answer"]), task["input"])
            assert verdict.passed, (task["input"], verdict.reason)
