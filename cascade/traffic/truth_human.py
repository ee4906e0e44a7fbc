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
from cascade.gold import matches_answer
from cascade.traffic.record_sample import stratified_sample
from cascade.traffic.truth import Judge, Row, Truth
from cascade.types import Task

__all__ = [
    "Answer",
    "Labels",
    "distinct_answers",
    "human_truth",
    "label_line",
    "question_of",
    "write_labels",
]

LABELS = "labels.jsonl"


@dataclass(frozen=True, slots=True)
class _Line:
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


def question_of(task: Task) -> str:
    """What a person reads: the task's last user message (its input, for a task with none)."""
    asked = [m.get("content") for m in task.messages or () if m.get("role") == "user"]
    if asked and isinstance(asked[-1], str):
        return asked[-1]
    return str(task.input) if task.input is not None else json.dumps(task.messages)


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

    Answers equal as :func:`cascade.gold.matches_answer` compares them are one.
    """
    answers = _answers(rows)
    found: list[Answer] = []
    chosen = stratified_sample(tasks, sample, seed=seed)
    for task in chosen:
        groups: list[tuple[str, list[str]]] = []
        calls = bool(task.extra.get("functions"))
        for model, text in answers.get(task.id, []):
            group = next((g for g in groups if matches_answer(text, g[0], calls=calls)), None)
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
    earlier = _read(path, {t.id for t in tasks}) if path.is_file() else []
    sampled, answers = distinct_answers(tasks, rows, sample, seed)
    lines: list[dict[str, Any]] = []
    kept = 0
    for answer in answers:
        calls = bool(answer.task.extra.get("functions"))
        label = next((e.correct for e in earlier if e.task_id == answer.task.id
                      and e.correct is not None
                      and matches_answer(answer.text, e.answer, calls=calls)), None)  # fmt: skip
        kept += label is not None
        lines.append(label_line(answer, label))
    write_atomic(path, "".join(json.dumps(line) + "\n" for line in lines))
    return sampled, len(lines), kept


def _read(path: Path, known: set[str]) -> list[_Line]:
    """The labels file's lines, each checked; errors name the file and line."""
    lines = []
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
        lines.append(_Line(task_id, line["answer"], tuple(map(str, models)), correct))
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
    lines = _read(path, {t.id for t in tasks})
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
        return matches_answer(text, line.answer, calls=task_id in calls)

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
