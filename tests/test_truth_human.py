"""``cascade truth --by human``: people label a seeded sample's answers; only those tasks count.

The dataset is the one of ``tests/test_truth.py``: seven imported requests served by one model,
and a cheaper model's answers to all of them (five agree with the served answer by value).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cascade.bench.dataset import load_dataset
from cascade.cli import main
from cascade.traffic.record_job import check_dataset
from tests.test_truth import CHEAP, SERVED, dataset, files, prompts, rows

__all__ = ["dataset"]  # the fixture: the imported log with the cheap model's answers


def labels(folder: Path) -> list[dict[str, Any]]:
    """The labels file's lines."""
    text = (folder / "labels.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


def write(folder: Path, lines: list[dict[str, Any]]) -> None:
    """The labels file, as a person saves it."""
    (folder / "labels.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))


def test_the_labels_file_has_each_distinct_answer_of_the_sample_once(
    dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Answers equal by value are one line, with both models; nothing else is written."""
    before = files(dataset)
    assert main(["truth", str(dataset), "--by", "human", "--sample", "7"]) == 0
    lines = labels(dataset)
    assert {n: b for n, b in files(dataset).items() if n != "labels.jsonl"} == before
    assert len({line["task_id"] for line in lines}) == 7
    # The same answer is one line (keys in another order; case and spaces); anything a person
    # would read differently is its own: "The product is 391.0" is not "391", "1234" not "1,234".
    assert len(lines) == 7 + 5
    assert all(line["correct"] is None for line in lines)
    asked = prompts(dataset)
    both = [line for line in lines if line["models"] == [SERVED, CHEAP]]
    assert len(both) == 2
    assert {line["question"].removeprefix("[user] ").split("\n\n")[0] for line in lines} == set(
        asked.values()
    )
    out = capsys.readouterr().out
    assert "12 distinct answers of 7 sampled tasks to label" in out


def test_labeled_tasks_alone_count_and_answers_are_judged_by_their_labels(
    dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A person marks Lyon-like slips wrong; a task with a line left blank is left out."""
    assert main(["truth", str(dataset), "--by", "human", "--sample", "7"]) == 0
    lines = labels(dataset)
    ids = [line["task_id"] for line in lines]
    blank = next(task for task in ids if ids.count(task) == 2)  # two answers, one labeled
    for line in lines:  # the cheap model's differing answers are wrong
        line["correct"] = SERVED in line["models"]
    next(line for line in lines if line["task_id"] == blank and CHEAP in line["models"])[
        "correct"
    ] = None
    write(dataset, lines)
    capsys.readouterr()
    assert main(["truth", str(dataset), "--by", "human"]) == 0
    out = capsys.readouterr().out
    assert "left out    1 tasks of the labels file with a line not labeled yet" in out
    truth = json.loads((dataset / "truth.json").read_text())
    assert truth["by"] == "human"
    assert len(truth["tasks"]) == 6
    assert blank not in truth["tasks"]
    data = load_dataset(dataset)
    assert {task.id for task in data.tasks} == set(truth["tasks"])
    for task in data.tasks:
        assert data.correct[(task.id, SERVED)] is True
        cheap_line = [x for x in lines if x["task_id"] == task.id and CHEAP in x["models"]]
        assert data.correct[(task.id, CHEAP)] is cheap_line[0]["correct"]
    capsys.readouterr()
    assert main(["bench", str(dataset), "--ladder", f"{CHEAP},{SERVED}"]) == 0
    assert "correct means: labeled right by people in" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"correct": "yes"}, "field 'correct' must be true, false or null"),
        ({"task_id": "nope"}, "task nope is not a task of the dataset"),
        ({"answer": 3}, "needs task_id, answer (a string) and correct"),
    ],
)
def test_a_bad_labels_line_is_named_and_the_dataset_is_left_as_it_was(
    dataset: Path, change: dict[str, Any], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The error names the file and line; responses.jsonl and truth.json are untouched."""
    assert main(["truth", str(dataset), "--by", "human", "--sample", "7"]) == 0
    lines = labels(dataset)
    for line in lines:
        line["correct"] = True
    lines[2] |= change
    write(dataset, lines)
    before = files(dataset)
    assert main(["truth", str(dataset), "--by", "human"]) == 2
    assert f"labels.jsonl:3: {words}" in capsys.readouterr().err
    assert files(dataset) == before


def test_nothing_labeled_yet_is_an_error(dataset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file with no task fully labeled would certify on nothing: refused."""
    assert main(["truth", str(dataset), "--by", "human"]) == 2
    assert "write it first" in capsys.readouterr().err
    assert main(["truth", str(dataset), "--by", "human", "--sample", "3"]) == 0
    assert main(["truth", str(dataset), "--by", "human"]) == 2
    assert "no task is labeled yet" in capsys.readouterr().err
    assert main(["truth", str(dataset), "--by", "served", "--sample", "3"]) == 2
    assert "--sample is for --by human or judge, not --by served" in capsys.readouterr().err


def test_a_larger_sample_keeps_the_labels_given_and_new_answers_are_named(
    dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Labels already given survive a rewrite; an answer recorded since counts as wrong."""
    assert main(["truth", str(dataset), "--by", "human", "--sample", "3", "--seed", "2"]) == 0
    lines = labels(dataset)
    for line in lines:
        line["correct"] = True
    write(dataset, lines)
    assert main(["truth", str(dataset), "--by", "human", "--sample", "7", "--seed", "2"]) == 0
    assert f"({len(lines)} keep the label they had)" in capsys.readouterr().out  # all 7 now
    again = labels(dataset)
    kept = {(x["task_id"], x["answer"]) for x in lines}
    assert all(x["correct"] is True for x in again if (x["task_id"], x["answer"]) in kept)
    assert all(x["correct"] is None for x in again if (x["task_id"], x["answer"]) not in kept)
    # Label everything; then another model answers one task in a way nobody labeled.
    write(dataset, [x | {"correct": True} for x in again])
    task = again[0]["task_id"]
    with (dataset / "responses.jsonl").open("a") as out:
        out.write(json.dumps({"task_id": task, "model": "newer", "output": "something else",
                              "correct": None}) + "\n")  # fmt: skip
    capsys.readouterr()
    assert main(["truth", str(dataset), "--by", "human"]) == 0
    assert "1 answers of labeled tasks match no labeled answer" in capsys.readouterr().out
    assert {r["correct"] for r in rows(dataset) if r["model"] == "newer"} == {False}


def test_another_definition_afterwards_reads_every_task_again(dataset: Path) -> None:
    """--by served after --by human: the loader reads all seven tasks again."""
    assert main(["truth", str(dataset), "--by", "human", "--sample", "2"]) == 0
    write(dataset, [x | {"correct": True} for x in labels(dataset)])
    assert main(["truth", str(dataset), "--by", "human"]) == 0
    assert len(load_dataset(dataset).tasks) == 2
    assert main(["truth", str(dataset), "--by", "served"]) == 0
    assert len(load_dataset(dataset).tasks) == 7


def test_a_label_goes_to_the_answer_read_and_two_labels_of_it_are_an_error(
    dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An answer "not 391" is not "391": no label spreads by a last number; a clash is named."""
    task = next(t for t, p in prompts(dataset).items() if p == "What is 17 * 23?")
    row = {"task_id": task, "model": "third", "output": "I cannot compute it; not 391"}
    with (dataset / "responses.jsonl").open("a") as out:
        out.write(json.dumps(row | {"correct": None}) + "\n")
    assert main(["truth", str(dataset), "--by", "human", "--sample", "7"]) == 0
    lines = labels(dataset)
    mine = [line for line in lines if line["task_id"] == task]
    assert [line["models"] for line in mine] == [[SERVED], [CHEAP], ["third"]]
    for line in lines:
        line["correct"] = line["answer"] == "391" or SERVED in line["models"]
    write(dataset, [*lines, mine[0] | {"correct": False}])  # the served answer, labeled twice
    assert main(["truth", str(dataset), "--by", "human"]) == 2
    err = capsys.readouterr().err
    assert f"labels.jsonl:{len(lines) + 1}: this answer of task {task} is labeled False" in err
    write(dataset, lines)
    assert main(["truth", str(dataset), "--by", "human"]) == 0
    third = [r for r in rows(dataset) if r["model"] == "third"]
    assert [r["correct"] for r in third] == [False]


def test_record_still_asks_about_every_task_of_a_labeled_dataset(dataset: Path) -> None:
    """Labels limit what certifies; cascade record may ask about the tasks not labeled yet."""
    assert main(["truth", str(dataset), "--by", "human", "--sample", "2"]) == 0
    write(dataset, [x | {"correct": True} for x in labels(dataset)])
    assert main(["truth", str(dataset), "--by", "human"]) == 0
    assert len(load_dataset(dataset).tasks) == 2
    assert len(check_dataset(dataset).tasks) == 7
