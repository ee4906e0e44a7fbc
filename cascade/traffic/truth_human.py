"""``cascade truth --by human``: people label a seeded sample; their labels define "correct".

Two steps, as the review queue works:

1. ``cascade truth DIR --by human --sample N [--seed S]`` writes a labels file
   (``DIR/labels.jsonl`` unless ``--labels`` names another): for each task of a seeded sample
   stratified by kind (as ``cascade record`` samples), the question, and each distinct answer
   the dataset holds for it, with the models that gave it and ``"correct": null``. Answers that
   match as ``cascade export --gold`` compares answers (JSON and numbers by value, text without
   case or extra space) are one line: a person labels each distinct answer once.
2. A person sets ``correct`` to ``true`` or ``false`` on each line, and
   ``cascade truth DIR --by human`` reads the file back: an answer of a labeled task is correct
   when it matches an answer labeled correct. Only the tasks whose every line is labeled count:
   ``truth.json`` lists them, and :func:`cascade.bench.dataset.load_dataset` reads those tasks
   alone, so ``cascade bench`` and ``cascade optimize`` certify on what people judged and
   nothing else. An answer recorded after the labels were written matches no line: it counts
   as wrong, and the command says how many (write the file again with a larger ``--sample``;
   lines already labeled keep their labels).

A bad line of the labels file (not JSON, an unknown task, a ``correct`` that is not true, false
or null) is an error naming its file and line, and the dataset is left as it was.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cascade.backends.replay import alt_rows
from cascade.errors import ConfigError
from cascade.files import write_atomic
from cascade.gold import answer_value
from cascade.traffic.record_sample import stratified_sample
from cascade.traffic.truth import Judge, Row, Truth
from cascade.types import Task
from cascade.validators.agreement import same_answers

__all__ = [
    "Answer",
    "Labels",
    "distinct_answers",
    "human_truth",
    "label_line",
    "question_of",
    "same_answer",
    "write_labels",
]

LABELS = "labels.jsonl"


@dataclass(frozen=True, slots=True)
class _Line:
    where: str
    task_id: str
    answer: str
    models: tuple[str, ...]
    correct: bool | None


def _answers(rows: Sequence[tuple[str, Row]]) -> dict[str, list[tuple[str, str]]]:
    """Each task's answers, as (model, text): outputs and re-ask alternatives."""
    found: dict[str, list[tuple[str, str]]] = {}
    for where, row in rows:
        answers = found.setdefault(str(row["task_id"]), [])
        answers.append((str(row["model"]), str(row["output"])))
        answers += [(str(row["model"]), str(alt["output"])) for alt in alt_rows(row, where)]
    return found


def same_answer(text: str, other: str, *, calls: bool = False) -> bool:
    """Whether two answers are one answer, strictly: a label is given to what a person read.

    JSON by value (keys in any order, ``391.0`` is ``391``), function calls as calls for a task
    that offers functions, text without case or extra space. Not, as the served comparison
    reads an answer, by its last number: "not 391" is not "391".
    """
    if calls and same_answers(text, other, "call"):
        return True
    one, two = answer_value(text), answer_value(other)
    if isinstance(one, str) or isinstance(two, str):
        if not (isinstance(one, str) and isinstance(two, str)):
            return False
        return " ".join(one.split()).casefold() == " ".join(two.split()).casefold()
    if isinstance(one, bool) or isinstance(two, bool):
        return one is two
    return bool(one == two)


def question_of(task: Task) -> str:
    """What a person (or the judge) reads: every message, the answer's schema, the functions.

    A task of one input is that input.
    """
    if task.input is not None:
        parts = [task.input]
    else:
        parts = [f"[{m.get('role')}] {m.get('content')}" for m in task.messages or ()]
    for name, key in (("answer format", "response_format"), ("functions offered", "tools")):
        if task.extra.get(key) is not None:
            parts.append(f"[{name}] {json.dumps(task.extra[key], sort_keys=True)}")
    return "\n\n".join(parts)


@dataclass(frozen=True, slots=True)
class Answer:
    """One distinct answer of a sampled task, with the models that gave it."""

    task: Task
    text: str
    models: tuple[str, ...]


def distinct_answers(
    tasks: Sequence[Task], rows: Sequence[tuple[str, Row]], sample: int, seed: int
) -> tuple[int, list[Answer]]:
    """The distinct answers of a seeded sample of ``sample`` tasks; (tasks sampled, answers).

    Answers that are the same answer (:func:`same_answer`) are one.
    """
    answers = _answers(rows)
    found: list[Answer] = []
    chosen = stratified_sample(tasks, sample, seed=seed)
    for task in chosen:
        groups: list[tuple[str, list[str]]] = []
        calls = bool(task.extra.get("functions"))
        for model, text in answers.get(task.id, []):
            group = next((g for g in groups if same_answer(text, g[0], calls=calls)), None)
            if group is None:
                groups.append((text, [model]))
            elif model not in group[1]:
                group[1].append(model)
        found += [Answer(task, text, tuple(models)) for text, models in groups]
    return len(chosen), found


def label_line(answer: Answer, correct: bool | None) -> dict[str, Any]:
    """A line of a labels file."""
    return {"task_id": answer.task.id, "kind": answer.task.type,
            "question": question_of(answer.task), "answer": answer.text,
            "models": list(answer.models), "correct": correct}  # fmt: skip


def write_labels(
    path: Path, tasks: Sequence[Task], rows: Sequence[tuple[str, Row]], sample: int, seed: int
) -> tuple[int, int, int]:
    """Write the labels file for a seeded sample; (tasks, lines, lines kept labeled).

    Lines of an earlier file that are labeled keep their label when their answer is still one.
    """
    earlier = _read(path, tasks) if path.is_file() else []
    sampled, answers = distinct_answers(tasks, rows, sample, seed)
    lines: list[dict[str, Any]] = []
    kept = 0
    for answer in answers:
        calls = bool(answer.task.extra.get("functions"))
        label = next((e.correct for e in earlier if e.task_id == answer.task.id
                      and e.correct is not None
                      and same_answer(answer.text, e.answer, calls=calls)), None)  # fmt: skip
        kept += label is not None
        lines.append(label_line(answer, label))
    write_atomic(path, "".join(json.dumps(line) + "\n" for line in lines))
    return sampled, len(lines), kept


def _read(path: Path, tasks: Sequence[Task]) -> list[_Line]:
    """The labels file's lines, each checked; errors name the file and line."""
    known = {task.id for task in tasks}
    functions = {task.id for task in tasks if task.extra.get("functions")}
    lines: list[_Line] = []
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not text.strip():
            continue
        where = f"{path}:{number}"
        try:
            line = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{where}: not JSON: {exc}") from exc
        if not isinstance(line, dict) or not isinstance(line.get("answer"), str):
            raise ConfigError(f"{where}: needs task_id, answer (a string) and correct")
        task_id = str(line.get("task_id"))
        if task_id not in known:
            raise ConfigError(f"{where}: task {task_id} is not a task of the dataset")
        correct = line.get("correct")
        if correct not in (None, True, False):
            raise ConfigError(f"{where}: field 'correct' must be true, false or null (not yet "
                              f"labeled), not {correct!r}")  # fmt: skip
        models = line.get("models") or ()
        found = _Line(where, task_id, line["answer"], tuple(map(str, models)), correct)
        calls = task_id in functions
        for other in lines:  # one answer, two labels: which one a person meant is unknown
            if (other.task_id == task_id and None not in (other.correct, correct)
                    and other.correct != correct and same_answer(other.answer, found.answer,
                                                                 calls=calls)):  # fmt: skip
                raise ConfigError(f"{where}: this answer of task {task_id} is labeled "
                                  f"{correct}, and {other.where} labels it "
                                  f"{other.correct}")  # fmt: skip
        lines.append(found)
    return lines


@dataclass(frozen=True, slots=True)
class Labels:
    """What a labels file says: its judge, its truth, and what it left out."""

    judge: Judge
    truth: Truth
    unlabeled: int
    """Tasks of the file with a line not labeled yet: left out."""
    unmatched: int
    """Answers of labeled tasks that match no line (recorded since): counted wrong."""


def human_truth(path: Path, tasks: Sequence[Task], rows: Sequence[tuple[str, Row]]) -> Labels:
    """The ``human`` judge of ``rows`` by the labels file at ``path``."""
    if not path.is_file():
        raise ConfigError(
            f"{path} not found: write it first with cascade truth DATASET --by human --sample N"
        )
    lines = _read(path, tasks)
    by_task: dict[str, list[_Line]] = {}
    for line in lines:
        by_task.setdefault(line.task_id, []).append(line)
    labeled = {
        t: found for t, found in by_task.items() if all(x.correct is not None for x in found)
    }
    if not labeled:
        raise ConfigError(
            f"{path}: no task is labeled yet: set correct to true or false on each of a task's "
            "lines (a task counts once all its lines are labeled)"
        )
    calls = {task.id for task in tasks if task.extra.get("functions")}

    def same(task_id: str, text: str, line: _Line) -> bool:
        return same_answer(text, line.answer, calls=task_id in calls)

    unmatched = 0
    for task_id, text in ((t, x) for t, found in _answers(rows).items() for _, x in found):
        if task_id in labeled and not any(same(task_id, text, x) for x in labeled[task_id]):
            unmatched += 1

    def judge(where: str, row: Row, index: int) -> bool:
        task_id = str(row["task_id"])
        found = labeled.get(task_id)
        if found is None:
            return False  # not labeled: the dataset's loader leaves the task out
        text = row["output"] if index == 0 else alt_rows(row, where)[index - 1]["output"]
        return any(x.correct is True and same(task_id, str(text), x) for x in found)

    truth = Truth("human", labels=str(path), tasks=tuple(sorted(labeled)))
    return Labels(judge, truth, len(by_task) - len(labeled), unmatched)
