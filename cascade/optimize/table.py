"""What each model answered on each task of one kind, judged once by the real validators.

Validators are deterministic on recorded outputs, so every check a ladder could run is run
here once per distinct answer and kept as arrays; the search then simulates ladders with array
arithmetic instead of replaying them one by one. The checks are built from the same policy
entries the optimizer writes, through the policy loader's own builder, so what was measured is
what the written policy runs.

An answer is looked at in *slots*: ``turns[k]`` is what the ``k``-th re-ask is served (``turns[0]``
the first answer), ``samples[j - 1]`` what the ``j``-th extra sample of a self-consistency check
is served, both as a replay serves them from the recorded ``alt_outputs``. Per slot the table
keeps, for every (model, task): whether the answer is right, its confidence, whether it passes
each check, an id of its normalised answer (equal ids agree; -1 cannot be read), and what it
costs alone and with its confidence.

Checks come from what each kind's prompt asks for (see :func:`default_checks`), or from a
user's policy. Sandboxed checks (tests) run in parallel across cores, with their verdicts kept
in a :class:`~cascade.validators.VerdictCache`.
"""

from __future__ import annotations

import asyncio
import os
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import TypeAdapter

from cascade.backends.replay import Recorded
from cascade.bench.dataset import Dataset
from cascade.policy.build import build_validator
from cascade.policy.spec import ValidatorSpec
from cascade.store.verdicts import VerdictCache
from cascade.types import Attempt, Task, Tier, Usage
from cascade.validators import Validator, run_validator
from cascade.validators.agreement import Compare, normal_answer

__all__ = [
    "Check",
    "KindTable",
    "Slot",
    "agreement_mode",
    "build_check",
    "default_checks",
    "kind_table",
]

Bools = npt.NDArray[np.bool_]
Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.intp]

MATH_ANSWER = r"####\s*\$?\s*-?[\d,]*\.?\d+\s*$"

_AGREEMENT: Mapping[str, Compare] = {
    "function_call": "call",
    "multiple_choice": "text",
    "math": "number",
    "open_qa": "text",
}
_NO_OPINIONS = frozenset({"code"})
"""Kinds whose answers are compared by behaviour, not text: no agreement or votes on them."""


def agreement_mode(kind: str, tasks: Sequence[Task] = ()) -> Compare:
    """How two answers of this kind are compared, written out (never ``"auto"``)."""
    if kind in _AGREEMENT:
        return _AGREEMENT[kind]
    if tasks and all(t.extra.get("functions") for t in tasks):
        return "call"
    return "json" if tasks and all(t.extra.get("schema") for t in tasks) else "text"


@dataclass(frozen=True, slots=True)
class Check:
    """One free or sandboxed check a gate may run: its short name and its policy entry."""

    name: str
    spec: Mapping[str, Any]
    validator: Validator


def build_check(
    name: str, spec: Mapping[str, Any], base: Path, cache: VerdictCache | None
) -> Check:
    """A check from its policy entry, built as the policy loader builds it."""
    validator = build_validator(
        TypeAdapter(ValidatorSpec).validate_python(dict(spec)), base, cache=cache
    )
    return Check(name, dict(spec), validator)


def default_checks(kind: str, tasks: Sequence[Task]) -> list[tuple[str, dict[str, Any]]]:
    """The checks a kind's answers get by default: its answer format, or its tests."""
    if kind == "function_call":
        return [("format", {"kind": "function_call"})]
    if kind == "multiple_choice":
        options = max((len(t.extra.get("choices") or ()) for t in tasks), default=0) or 4
        return [("format", {"kind": "one_of", "labels": list(string.ascii_uppercase[:options])})]
    if kind == "math":
        hint = "End your answer on a line '#### x', where x is the final number."
        return [("format", {"kind": "matches", "pattern": MATH_ANSWER, "hint": hint})]
    if kind == "code":
        return [
            ("compiles", {"kind": "compiles"}),
            ("tests", {"kind": "tests", "missing": "fail"}),
        ]
    if tasks and all(isinstance(t.extra.get("schema"), dict) for t in tasks):
        return [("schema", {"kind": "json_schema"}), ("grounded", {"kind": "grounded"})]
    return []


@dataclass(frozen=True, slots=True)
class Slot:
    """Every model's answer to every task at one ask, judged. Rows: models; columns: tasks."""

    correct: Bools
    confidence: Floats
    """NaN where no confidence was recorded."""
    passes: Bools
    """``passes[c, m, t]``: whether the answer passed check ``c``."""
    answer: Ints
    """An id per distinct normalised answer, shared by the task's slots; -1 when unreadable."""
    cost: Floats
    """What the answer costs alone."""
    cost_confidence: Floats
    """What it costs with its confidence (a self-assessment call, where there is one)."""

    def subset(self, columns: Ints) -> Slot:
        """The same answers for some of the tasks."""
        return Slot(
            self.correct[:, columns],
            self.confidence[:, columns],
            self.passes[:, :, columns],
            self.answer[:, columns],
            self.cost[:, columns],
            self.cost_confidence[:, columns],
        )


@dataclass(frozen=True, slots=True)
class KindTable:
    """Per (model, task) of one kind: each slot's answers, judged (see the module's doc)."""

    kind: str
    models: tuple[str, ...]
    task_ids: tuple[str, ...]
    checks: tuple[Check, ...]
    turns: tuple[Slot, ...]
    samples: tuple[Slot, ...]
    compare: Compare
    reasks: Ints
    """Per model: how many re-asks get an answer of their own (its fewest ``alt_outputs``)."""
    opinions: bool = True
    """Whether answers of this kind can be compared (for agreement, votes and samples)."""
    latency: Floats | None = None
    """Per (model, task): the recorded seconds of its answer (0 where none was recorded); a
    replay serves every ask of the task (re-asks, samples) with the same latency."""

    @property
    def seconds(self) -> Floats:
        """Each answer's recorded latency (zeros when the table has none)."""
        if self.latency is None:
            return np.zeros((len(self.models), len(self.task_ids)))
        return self.latency

    @property
    def correct(self) -> Bools:
        """Whether each first answer is right."""
        return self.turns[0].correct

    @property
    def cost(self) -> Floats:
        """What each first answer costs alone."""
        return self.turns[0].cost

    def subset(self, columns: Ints) -> KindTable:
        """The same table for some of its tasks."""
        return KindTable(
            self.kind,
            self.models,
            tuple(self.task_ids[i] for i in columns),
            self.checks,
            tuple(slot.subset(columns) for slot in self.turns),
            tuple(slot.subset(columns) for slot in self.samples),
            self.compare,
            self.reasks,
            self.opinions,
            None if self.latency is None else self.latency[:, columns],
        )


def kind_table(
    data: Dataset,
    kind: str,
    *,
    max_reasks: int = 0,
    max_samples: int = 2,
    checks: Sequence[Check] | None = None,
    cache: VerdictCache | None = None,
) -> tuple[KindTable, list[str]]:
    """The table of one task kind, and the models left out (with why).

    A model is left out when it did not answer every task of the kind, or when the dataset does
    not know its price. Re-asks are judged up to ``max_reasks`` and extra samples up to
    ``max_samples``, as far as every task has recorded alternatives of the model.
    """
    tasks = [t for t in data.tasks if t.type == kind]
    ids = [t.id for t in tasks]
    complete = [m for m in data.models if all((i, m) in data.cost for i in ids)]
    left_out = [f"{m}: no answer to some {kind} tasks" for m in data.models if m not in complete]
    left_out += [f"{m}: its price is unknown" for m in complete if m in data.unpriced]
    models = [m for m in complete if m not in data.unpriced]
    if checks is None:
        checks = [build_check(n, s, Path.cwd(), cache) for n, s in default_checks(kind, tasks)]
    alts = np.array(
        [min((len(data.backend.record(i, m).alt_outputs) for i in ids), default=0) for m in models],
        dtype=np.intp,
    ).reshape(len(models))
    reasks = np.minimum(alts, max_reasks)
    samples = int(min(max_samples, alts.max(initial=0)))
    compare = agreement_mode(kind, tasks)
    judge = _Judge(data, tasks, models, checks, compare)
    asks = range(int(reasks.max(initial=0)) + 1)
    turns = tuple(judge.slot(_asked(k, 0)) for k in asks)
    drawn = tuple(judge.slot(_asked(0, j)) for j in range(1, samples + 1))
    judge.settle()
    table = KindTable(
        kind,
        tuple(models),
        tuple(ids),
        tuple(checks),
        tuple(judge.finish(slot) for slot in turns),
        tuple(judge.finish(slot) for slot in drawn),
        compare,
        reasks,
        opinions=kind not in _NO_OPINIONS,
        latency=np.array(
            [[data.latency.get((i, m), 0.0) or 0.0 for i in ids] for m in models], dtype=np.float64
        ).reshape(len(models), len(ids)),
    )
    return table, left_out


def _asked(turn: int, sample: int) -> Callable[[Recorded], int]:
    """Which recorded answer a re-ask or a sample is served (see :meth:`Recorded.turn_index`)."""
    return lambda record: record.turn_index(turn, sample)


_Pending = tuple[list[list[int]], Floats, Floats, Floats]
"""A slot before judging: answer indices per (model, task), confidence, costs."""


class _Judge:
    """Judges each distinct recorded answer once, whichever slots serve it."""

    def __init__(
        self,
        data: Dataset,
        tasks: Sequence[Task],
        models: Sequence[str],
        checks: Sequence[Check],
        compare: Compare,
    ) -> None:
        self._data = data
        self._tasks = tasks
        self._models = models
        self._checks = checks
        self._compare = compare
        self._verdicts: dict[tuple[int, int, int], tuple[bool, ...]] = {}
        self._keys: dict[tuple[int, int, int], Any] = {}

    def slot(self, index_of: Callable[[Recorded], int]) -> _Pending:
        """Which recorded answer each (model, task) gets in one slot, and what it costs."""
        shape = (len(self._models), len(self._tasks))
        indices = [[0] * shape[1] for _ in range(shape[0])]
        confidence = np.full(shape, np.nan)
        alone, full = np.zeros(shape), np.zeros(shape)
        backend = self._data.backend
        for m, model in enumerate(self._models):
            for t, task in enumerate(self._tasks):
                record = backend.record(task.id, model)
                index = index_of(record)
                indices[m][t] = index
                text, score = _at(record, index)
                if score is not None:
                    confidence[m, t] = float(score)
                alone[m, t] = backend.cost_of(task.id, model, index=index)
                full[m, t] = backend.cost_of(task.id, model, index=index, confidence=True)
                self._keys.setdefault((m, t, index), text)
        return indices, confidence, alone, full

    def settle(self) -> None:
        """Run every check on every distinct answer, and read every answer for agreement."""
        verdicts = asyncio.run(self._judge_all(list(self._keys)))
        self._verdicts = dict(zip(self._keys, verdicts, strict=True))
        ids: dict[tuple[int, Any], int] = {}
        for key, text in list(self._keys.items()):
            normal = normal_answer(text, self._compare) if self._compare != "auto" else None
            self._keys[key] = -1 if normal is None else ids.setdefault((key[1], normal), len(ids))

    def finish(self, pending: _Pending) -> Slot:
        """A slot's arrays, once :meth:`settle` has judged its answers."""
        indices, confidence, alone, full = pending
        models, tasks = len(self._models), len(self._tasks)
        correct = np.zeros((models, tasks), dtype=np.bool_)
        passes = np.zeros((len(self._checks), models, tasks), dtype=np.bool_)
        answer = np.full((models, tasks), -1, dtype=np.intp)
        for m, model in enumerate(self._models):
            for t, task in enumerate(self._tasks):
                index = indices[m][t]
                correct[m, t] = self._data.right_at_index(task.id, model, index)
                passes[:, m, t] = self._verdicts[(m, t, index)]
                answer[m, t] = self._keys[(m, t, index)]
        return Slot(correct, confidence, passes, answer, alone, full)

    async def _judge_all(self, keys: list[tuple[int, int, int]]) -> list[tuple[bool, ...]]:
        # Sandboxed checks start processes: as many at once as there are cores.
        limit = asyncio.Semaphore(max(1, os.cpu_count() or 1))

        async def one(key: tuple[int, int, int]) -> tuple[bool, ...]:
            m, t, _ = key
            text = str(self._keys[key])
            model = self._models[m]
            task = self._tasks[t]
            attempt = Attempt(task, 0, Tier(model), model, model, text, Usage(0, 0), 0.0, 0.0)
            found = []
            for check in self._checks:
                async with limit:
                    found.append((await run_validator(check.validator, attempt)).passed)
            return tuple(found)

        return list(await asyncio.gather(*(one(key) for key in keys)))


def _at(record: Recorded, index: int) -> tuple[str, float | None]:
    """The recorded answer at ``index`` (0: the output, ``j``: the ``j``-th alternative)."""
    if index == 0:
        return str(record.output), record.confidence
    score = record.alt_confidence[index - 1] if index <= len(record.alt_confidence) else None
    return str(record.alt_outputs[index - 1]), score
