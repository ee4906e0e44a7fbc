"""Load a recorded dataset: tasks without their gold labels, responses, and who was correct.

Validators must never see gold, so every label field (``gold``, ``gold_*``, ``hidden_tests``)
is taken off the tasks here and kept only in :attr:`Dataset.correct`.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from cascade.backends.replay import (
    ReplayBackend,
    alt_rows,
    read_prices,
    read_responses,
    recorded,
)
from cascade.errors import ConfigError, TaskError
from cascade.types import Task

__all__ = ["Dataset", "is_label", "kind_stream", "load_dataset", "read_tasks", "split_ids"]


def is_label(field: str) -> bool:
    """Whether a task field is a grading label that validators must not see."""
    return field == "gold" or field.startswith("gold_") or field == "hidden_tests"


@dataclass(frozen=True, slots=True)
class Dataset:
    """A recorded benchmark suite, ready to replay."""

    name: str
    tasks: tuple[Task, ...]
    models: tuple[str, ...]
    correct: Mapping[tuple[str, str], bool]
    """``(task_id, model) -> correct`` as the benchmark's own grading judged it."""
    cost: Mapping[tuple[str, str], float]
    """What the first answer costs alone: without a self-assessment call for its confidence,
    where the dataset records that apart (``answer_only_cost_usd``)."""
    latency: Mapping[tuple[str, str], float]
    backend: ReplayBackend
    alt_correct: Mapping[tuple[str, str], tuple[bool, ...]] = field(default_factory=dict)
    """Per response with ``alt_outputs``: whether each alternative was correct."""
    confidence_cost: Mapping[tuple[str, str], float] = field(default_factory=dict)
    """What the first answer costs with its confidence; where missing, as :attr:`cost`."""
    unpriced: frozenset[str] = frozenset()
    """Models whose cost the dataset does not know (no recorded cost, no list price): they are
    replayed at $0, so their cost figures mean nothing."""

    def right_at(self, task_id: str, model: str, turn: int, sample: int = 0) -> bool:
        """Whether the answer an ask of ``model`` gets is right (turn 0, sample 0: the first)."""
        index = self.backend.record(task_id, model).turn_index(turn, sample)
        return self.right_at_index(task_id, model, index)

    def right_at_index(self, task_id: str, model: str, index: int) -> bool:
        """Whether recorded answer ``index`` (0: the output, ``j``: alternative ``j``) is right."""
        if index == 0:
            return self.correct[(task_id, model)]
        return self.alt_correct[(task_id, model)][index - 1]

    def cost_with_confidence(self, task_id: str, model: str) -> float:
        """What the first answer costs when its confidence is read."""
        key = (task_id, model)
        return self.confidence_cost.get(key, self.cost[key])

    def is_right(self, task_id: str, model: str | None, output: str | None) -> bool:
        """Whether ``output``, which ``model`` gave on ``task_id`` in a replay, is right.

        A re-ask may have been served one of the recorded alternatives, so the answer is
        looked up by its text; an output the dataset never recorded is not right.
        """
        key = (task_id, model or "")
        if key not in self.correct or output is None:
            return False
        record = self.backend.record(*key)
        if output == record.output:
            return self.correct[key]
        for alt, right in zip(record.alt_outputs, self.alt_correct.get(key, ()), strict=False):
            if output == alt:
                return right
        return False

    def subset(self, ids: Collection[str]) -> Dataset:
        """The same dataset with only the tasks ``ids`` names, in the dataset's order."""
        return replace(self, tasks=tuple(t for t in self.tasks if t.id in ids))


def kind_stream(seed: int, kind: str, *purpose: int) -> np.random.Generator:
    """A random stream of its own for one task kind (and purpose), under ``seed``.

    Each kind draws from its own stream, so the side a task falls on never depends on which
    other kinds are in the dataset or selected.
    """
    return np.random.default_rng([seed, zlib.crc32(kind.encode("utf-8")), *purpose])


def split_ids(data: Dataset, holdout: float, seed: int) -> tuple[set[str], set[str]]:
    """A training and a held-out set of task ids: ``holdout`` of each kind, drawn with ``seed``.

    The draw depends only on the kind's own tasks, the share and the seed, so ``cascade
    optimize`` and ``cascade bench --split`` hold out the same tasks, whichever kinds each was
    given.
    """
    if not 0.0 <= holdout < 1.0:
        raise ConfigError(f"--holdout must be at least 0 and below 1, not {holdout}")
    held: set[str] = set()
    for kind in sorted({t.type for t in data.tasks}):
        ids = [t.id for t in data.tasks if t.type == kind]
        order = kind_stream(seed, kind).permutation(len(ids))
        held.update(ids[i] for i in order[: round(holdout * len(ids))])
    return {t.id for t in data.tasks} - held, held


def load_dataset(path: str | Path, *, every_task: bool = False) -> Dataset:
    """Read a dataset folder in the shared format; errors name the file and line.

    When people or a judge labeled some tasks (``cascade truth --by human|judge``), those are
    the dataset, as bench and optimize read it; ``every_task`` reads the others too (``cascade
    record`` asks about any task).
    """
    folder = Path(path)
    if not (folder / "tasks.jsonl").is_file():
        raise ConfigError(f"{folder} is not a dataset: it has no tasks.jsonl")
    tasks = tuple(read_tasks(folder / "tasks.jsonl"))
    labeled = None if every_task else _labeled(folder)
    if labeled is not None:  # these tasks alone were labeled: the others are left out
        tasks = tuple(task for task in tasks if task.id in labeled)
    records = {}
    correct: dict[tuple[str, str], bool] = {}
    cost: dict[tuple[str, str], float] = {}
    latency: dict[tuple[str, str], float] = {}
    alt_correct: dict[tuple[str, str], tuple[bool, ...]] = {}
    models: dict[str, None] = {}
    for where, row in read_responses(folder):
        _check_response(row, where)
        key = (str(row["task_id"]), str(row["model"]))
        if labeled is not None and key[0] not in labeled:
            continue
        records[key] = recorded(row, where)
        models.setdefault(key[1])
        correct[key] = bool(row.get("correct"))
        if row.get("alt_outputs"):
            alt_correct[key] = tuple(bool(a.get("correct")) for a in alt_rows(row, where))
        latency[key] = float(row.get("latency_s") or 0.0)
    backend = ReplayBackend(records, prices=read_prices(folder), name=folder.name)
    with_confidence: dict[tuple[str, str], float] = {}
    for key, record in records.items():  # priced as a replay prices it: recorded, else listed
        cost[key] = backend.cost_of(*key)
        if record.confidence_is_extra:
            with_confidence[key] = backend.cost_of(*key, confidence=True)
    unpriced = frozenset(m for m in models if not backend.priced(m))
    return Dataset(
        folder.name,
        tasks,
        tuple(models),
        correct,
        cost,
        latency,
        backend,
        alt_correct,
        with_confidence,
        unpriced,
    )


def read_tasks(path: Path) -> list[Task]:
    """Every task of a ``tasks.jsonl``, gold labels off; errors name the file and line."""
    tasks = []
    first: dict[str, int] = {}
    with path.open(encoding="utf-8") as lines:
        for line_no, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                unlabelled = {k: v for k, v in row.items() if not is_label(k)}
                unlabelled["type"] = row.get("kind", "default")
                task = Task.from_dict(unlabelled)
            except (ValueError, TaskError, AttributeError) as exc:
                raise ConfigError(f"{path}:{line_no}: {exc}") from exc
            _check_number(row, "weight", f"{path}:{line_no}")
            if task.id in first:
                raise ConfigError(
                    f"{path}:{line_no}: task id {task.id!r} is already the id of line "
                    f"{first[task.id]}"
                )
            first[task.id] = line_no
            tasks.append(task)
    return tasks


def _check_response(row: dict[str, Any], where: str) -> None:
    """Refuse a response row whose figures or grade are of the wrong kind, naming the field.

    Read as they were, a token count of ``"14 tokens"`` would end in a traceback, and a
    ``correct`` of ``"yes"`` would count as right without a word.
    """
    for name in ("prompt_tokens", "completion_tokens"):
        value = row.get(name)
        if value is not None and (type(value) is not int or value < 0):
            raise ConfigError(f"{where}: field {name!r} must be a whole number, not {value!r}")
    for part, at in [(row, where)] + [(a, f"{where}: alt_outputs") for a in alt_rows(row, where)]:
        for name in ("cost_usd", "answer_only_cost_usd", "latency_s"):
            _check_number(part, name, at)
        if part.get("correct") not in (None, True, False):
            raise ConfigError(
                f"{at}: field 'correct' must be true, false or null, not {part['correct']!r}"
            )


def _check_number(row: Mapping[str, Any], name: str, where: str) -> None:
    """Refuse a field that is there and not null, unless it is a finite number of at least 0."""
    value = row.get(name)
    if value is None:
        return
    if type(value) not in (int, float) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{where}: field {name!r} must be a number of at least 0, not {value!r}")


def _labeled(folder: Path) -> frozenset[str] | None:
    """The tasks labeled, when ``truth.json`` says "correct" is people's or a judge's labels.

    ``cascade truth --by human`` and ``--by judge`` write it (see
    :mod:`cascade.traffic.truth_human`); any other dataset, or one whose truth file is
    unreadable, reads every task.
    """
    try:
        truth = json.loads((folder / "truth.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(truth, dict) or truth.get("by") not in ("human", "judge"):
        return None
    return frozenset(map(str, truth.get("tasks") or ()))
