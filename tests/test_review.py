"""The human tier: tasks no model got right wait in a review file; reviewed answers come back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cascade import Cascade, Status, Store, Tier
from cascade.cli import main
from cascade.policy import PolicyError, load_policy
from tests.fake_backends import POLICY as LADDER_POLICY
from tests.helpers import make

POLICY = LADDER_POLICY.replace('model = "big"', 'model = "human"')
"""``small`` (tests.fake_backends) answers "nope" to every fifth task, which then waits."""


@pytest.fixture
def queued(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Path:
    """A finished run of 20 tasks, four of them waiting in the review queue."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "echo.toml").write_text(POLICY)
    lines = [
        json.dumps({"id": f"t{n}", "type": "echo", "input": f"item {n}"}) for n in range(1, 21)
    ]
    (tmp_path / "tasks.jsonl").write_text("\n".join(lines) + "\n")
    argv = ["run", "tasks.jsonl", "--policy", "echo.toml", "--no-progress"]
    assert main([*argv, "--backend", "tests.fake_backends:ladder"]) == 0
    out = capsys.readouterr().out
    assert "results.review.jsonl (4 tasks wait for a person;" in out
    return tmp_path


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_tasks_that_reach_the_human_tier_wait_with_their_attempts(queued: Path) -> None:
    """Each waiting task is in the review file once, with the task, attempts and verdicts."""
    results = {r["id"]: r for r in _lines(queued / "results.jsonl")}
    waiting = sorted(k for k, r in results.items() if r["status"] == "needs_review")
    assert waiting == ["t10", "t15", "t20", "t5"]
    assert all(results[k]["tier"] == 1 and results[k]["model"] == "human" for k in waiting)
    review = _lines(queued / "results.review.jsonl")
    assert sorted(str(line["id"]) for line in review) == waiting
    line = next(r for r in review if r["id"] == "t5")
    assert line["task"] == {"id": "t5", "type": "echo", "input": "item 5", "meta": {}}
    assert line["answer"] is None
    assert line["best_output"] == "nope"
    [attempt] = line["attempts"]
    assert attempt["model"] == "small"
    assert attempt["output"] == "nope"
    assert attempt["decision"] == "escalate"
    assert attempt["verdicts"][0]["passed"] is False
    assert "nope" in attempt["verdicts"][0]["reason"]


def test_reviewed_answers_become_accepted_results(
    queued: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Answered lines are imported as accepted (tier human); unanswered ones keep waiting."""
    review = _lines(queued / "results.review.jsonl")
    for line in review:
        if line["id"] in ("t5", "t10"):
            line["answer"] = "ok"
            line["reviewer"] = "dana"
    (queued / "reviewed.jsonl").write_text("".join(json.dumps(r) + "\n" for r in review))
    assert main(["review", "import", "reviewed.jsonl", "--store", "run.db"]) == 0
    out = capsys.readouterr().out
    assert "imported 2 reviewed answers" in out
    assert "2 lines have no answer yet" in out
    assert "results.jsonl (20 lines)" in out
    results = {r["id"]: r for r in _lines(queued / "results.jsonl")}
    assert results["t5"]["status"] == "accepted"
    assert results["t5"]["model"] == "human"
    assert results["t5"]["output"] == "ok"
    assert results["t5"]["attempts"] == 2
    assert results["t15"]["status"] == "needs_review"
    with Store(queued / "run.db") as store:
        run_id = next(store.select("SELECT run_id FROM runs"))[0]
        steps = store.steps(run_id, "t5")
        assert [s.kind for s in steps][-1] == "review"
        assert steps[-1].model_served == "dana"
        assert store.integrity_check() == "ok"
    # Importing the same file again changes nothing.
    assert main(["review", "import", "reviewed.jsonl", "--store", "run.db"]) == 0
    assert "imported 0 reviewed answers" in capsys.readouterr().out
    # The report counts the human tier's acceptances.
    assert main(["report", "run.db", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["statuses"] == {"accepted": 18, "needs_review": 2}
    assert summary["accepted_by_tier"] == {"0": 16, "1": 2}
    # A second run resumes: the queue now holds the two still waiting, and nothing is re-run.
    argv = ["run", "tasks.jsonl", "--policy", "echo.toml", "--no-progress"]
    assert main([*argv, "--backend", "tests.fake_backends:ladder"]) == 0
    assert "(20 tasks were done before)" in capsys.readouterr().out
    assert sorted(str(r["id"]) for r in _lines(queued / "results.review.jsonl")) == ["t15", "t20"]


def test_a_bad_review_file_imports_nothing_and_names_each_bad_line(
    queued: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One bad line anywhere: every problem is listed with its line, and nothing changes."""
    review = _lines(queued / "results.review.jsonl")
    review[0]["answer"] = "ok"
    review[1]["answer"] = "ok"
    review[1]["id"] = "t999"
    text = json.dumps(review[0]) + "\n" + json.dumps(review[1]) + "\n{broken\n"
    (queued / "bad.jsonl").write_text(text + '{"run_id": "x", "id": "t1"}\n')
    assert main(["review", "import", "bad.jsonl", "--store", "run.db"]) == 2
    err = capsys.readouterr().err
    assert "nothing imported" in err
    assert "bad.jsonl:2: task 't999'" in err
    assert "bad.jsonl:3: not JSON" in err
    assert "bad.jsonl:4: no 'answer' field" in err
    statuses = [r["status"] for r in _lines(queued / "results.jsonl")]
    assert statuses.count("needs_review") == 4
    assert main(["review", "import", "bad.jsonl", "--store", "missing.db"]) == 2


def test_an_accepted_task_cannot_be_overwritten_by_a_review(
    queued: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only tasks waiting for review take reviewed answers."""
    run_id = _lines(queued / "results.review.jsonl")[0]["run_id"]
    line = {"run_id": run_id, "id": "t1", "answer": "ok"}
    (queued / "wrong.jsonl").write_text(json.dumps(line) + "\n")
    assert main(["review", "import", "wrong.jsonl", "--store", "run.db"]) == 2
    assert "task 't1' is accepted, not waiting for review" in capsys.readouterr().err


def test_the_human_tier_in_plain_python() -> None:
    """A cascade whose models all fail ends needs_review, at the human tier, with no call."""
    cascade, backend = make({"small": ["nope"]}, ["small", Tier("human")])
    outcome = cascade.run({"id": "t1", "input": "x"})
    assert outcome.status is Status.NEEDS_REVIEW
    assert (outcome.tier, outcome.model, outcome.output) == (1, "human", "nope")
    assert [r.model for r in backend.calls] == ["small"]
    assert isinstance(cascade, Cascade)


def test_the_human_tier_takes_no_fallbacks_and_must_come_last(tmp_path: Path) -> None:
    """Policy errors name the line and field."""
    bad = POLICY.replace('model = "small"', 'model = "human"\n[[tiers]]\nmodel = "small"', 1)
    (tmp_path / "bad.toml").write_text(bad)
    with pytest.raises(PolicyError) as raised:
        load_policy(tmp_path / "bad.toml")
    assert "bad.toml:4: tiers[0].model: the human tier must be the last tier" in str(raised.value)
    with pytest.raises(ValueError, match="no fallbacks"):
        Tier("human", fallbacks=("other",))
