"""What each model answered on each task of one kind, judged once by the real validators.

Validators are deterministic on recorded outputs, so every check a ladder could run is run
here once per (model, task) and kept as arrays; the search then simulates ladders with array
arithmetic instead of replaying them one by one. The checks are built from the same policy
entries the optimizer writes, through the policy loader's own builder, so what was measured is
what the written policy runs.

Answer-format checks come from what each kind's prompt asks for:

- ``function_call``: a call of an offered function with arguments valid against its schema;
- ``multiple_choice``: exactly one option letter;
- ``math``: a final line ``#### x`` with a number ``x``.

Agreement between two models compares calls, letters, final numbers or short texts, by kind.

Where the dataset recorded other samples of a model's answer (``alt_outputs``), each re-ask is
judged too, on the answer the replay serves it, so re-ask budgets are simulated as they run.
"""

from __future__ import annotations

import asyncio
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import TypeAdapter

from cascade.bench.dataset import Dataset
from cascade.policy.build import build_validator
from cascade.policy.spec import ValidatorSpec
from cascade.types import Attempt, Task, Tier, Usage
from cascade.validators import run_validator
from cascade.validators.agreement import Compare, same_answers

__all__ = ["KindTable", "Turn", "agreement_mode", "format_check", "kind_table"]

Bools = npt.NDArray[np.bool_]
Floats = npt.NDArray[np.float64]

MATH_ANSWER = r"####\s*\$?\s*-?[\d,]*\.?\d+\s*$"

_AGREEMENT: Mapping[str, Compare] = {
    "function_call": "call",
    "multiple_choice": "text",
    "math": "number",
    "open_qa": "text",
}


def agreement_mode(kind: str) -> Compare:
    """How two answers of this kind are compared."""
    return _AGREEMENT.get(kind, "auto")


def format_check(kind: str, tasks: Sequence[Task]) -> dict[str, Any] | None:
    """The policy entry of the answer-format check for a kind, if it has one."""
    if kind == "function_call":
        return {"kind": "function_call"}
    if kind == "multiple_choice":
        options = max((len(t.extra.get("choices") or ()) for t in tasks), default=0) or 4
        return {"kind": "one_of", "labels": list(string.ascii_uppercase[:options])}
    if kind == "math":
        return {
            "kind": "matches",
            "pattern": MATH_ANSWER,
            "hint": "End your answer on a line '#### x', where x is the final number.",
        }
    return None


@dataclass(frozen=True, slots=True)
class Turn:
    """Every model's answer to every task at one ask (the first, or a re-ask), judged.

    Rows follow the table's models, columns its tasks.
    """

    correct: Bools
    confidence: Floats
    """NaN where no confidence was recorded."""
    format_ok: Bools | None
    """Whether each answer passed the table's format check; ``None`` when the kind has none."""
    agree: Bools
    """``agree[a, b, t]``: model ``a``'s answer to task ``t`` at this ask matches model ``b``'s
    first answer, which is what a second model asked the task's own messages replies."""

    def subset(self, columns: npt.NDArray[np.intp]) -> Turn:
        """The same answers for some of the tasks."""
        return Turn(
            self.correct[:, columns],
            self.confidence[:, columns],
            None if self.format_ok is None else self.format_ok[:, columns],
            self.agree[:, :, columns],
        )


@dataclass(frozen=True, slots=True)
class KindTable:
    """Per (model, task) of one kind: cost, and each ask's answers judged (:class:`Turn`).

    ``turns[0]`` holds the first answers; ``turns[k]`` what the ``k``-th re-ask is served, for
    models with recorded ``alt_outputs``. A replay serves every ask at the recorded cost.
    """

    kind: str
    models: tuple[str, ...]
    task_ids: tuple[str, ...]
    cost: Floats
    format_spec: dict[str, Any] | None
    turns: tuple[Turn, ...]
    reasks: npt.NDArray[np.intp]
    """Per model: how many re-asks get an answer of their own (its most ``alt_outputs``)."""

    @property
    def correct(self) -> Bools:
        """Whether each first answer is right."""
        return self.turns[0].correct

    @property
    def confidence(self) -> Floats:
        """Each first answer's confidence, NaN where none was recorded."""
        return self.turns[0].confidence

    @property
    def format_ok(self) -> Bools | None:
        """Whether each first answer passed :attr:`format_spec`."""
        return self.turns[0].format_ok

    @property
    def agree(self) -> Bools:
        """``agree[a, b, t]``: the first answers of ``a`` and ``b`` to task ``t`` match."""
        return self.turns[0].agree

    def subset(self, columns: npt.NDArray[np.intp]) -> KindTable:
        """The same table for some of its tasks."""
        return KindTable(
            self.kind,
            self.models,
            tuple(self.task_ids[i] for i in columns),
            self.cost[:, columns],
            self.format_spec,
            tuple(turn.subset(columns) for turn in self.turns),
            self.reasks,
        )


def kind_table(data: Dataset, kind: str, *, max_reasks: int = 0) -> tuple[KindTable, list[str]]:
    """The table of one task kind, and the models left out for lack of answers (with why).

    Re-asks are judged up to ``max_reasks``, as far as some model recorded alternatives.
    """
    tasks = [t for t in data.tasks if t.type == kind]
    ids = [t.id for t in tasks]
    complete = [m for m in data.models if all((i, m) in data.cost for i in ids)]
    left_out = [f"{m}: no answer to some {kind} tasks" for m in data.models if m not in complete]
    records = [[data.backend.record(i, m) for i in ids] for m in complete]
    recorded_alts = [max((len(r.alt_outputs) for r in row), default=0) for row in records]
    reasks = np.minimum(np.array(recorded_alts, dtype=np.intp), max_reasks)
    cost = np.array([[data.cost[(i, m)] for i in ids] for m in complete], dtype=np.float64)
    spec = format_check(kind, tasks)
    first = [[r.output for r in row] for row in records]
    turns = [
        _turn(data, kind, tasks, complete, turn, first, spec)
        for turn in range(int(reasks.max(initial=0)) + 1)
    ]
    table = KindTable(kind, tuple(complete), tuple(ids), cost, spec, tuple(turns), reasks)
    return table, left_out


def _turn(
    data: Dataset,
    kind: str,
    tasks: Sequence[Task],
    models: Sequence[str],
    turn: int,
    first: list[list[str]],
    spec: dict[str, Any] | None,
) -> Turn:
    """Every model's answer at ask ``turn``, judged: right, confidence, format, agreement."""
    ids = [t.id for t in tasks]
    answers = [[data.backend.record(i, m).answer(turn) for i in ids] for m in models]
    outputs = [[text for text, _ in row] for row in answers]
    correct = np.array([[data.right_at(i, m, turn) for i in ids] for m in models], dtype=np.bool_)
    confidence = np.array(
        [[np.nan if score is None else float(score) for _, score in row] for row in answers],
        dtype=np.float64,
    ).reshape(len(models), len(ids))
    format_ok = None if spec is None else _judge(spec, tasks, models, outputs)
    mode = agreement_mode(kind)
    agree = np.zeros((len(models), len(models), len(ids)), dtype=np.bool_)
    for a in range(len(models)):
        for b in range(len(models)):
            if a == b or (turn == 0 and b < a):
                continue
            same = [same_answers(x, y, mode) for x, y in zip(outputs[a], first[b], strict=True)]
            agree[a, b] = same
            if turn == 0:
                agree[b, a] = same
    return Turn(correct, confidence, format_ok, agree)


def _judge(
    spec: dict[str, Any], tasks: Sequence[Task], models: Sequence[str], outputs: list[list[str]]
) -> Bools:
    """Run the check ``spec`` describes on every answer, as the engine would."""
    validator = build_validator(TypeAdapter(ValidatorSpec).validate_python(spec), Path.cwd())

    async def judge_all() -> list[list[bool]]:
        rows = []
        for model, answers in zip(models, outputs, strict=True):
            tier = Tier(model)
            row = []
            for task, output in zip(tasks, answers, strict=True):
                attempt = Attempt(task, 0, tier, model, model, output, Usage(0, 0), 0.0, 0.0)
                row.append((await run_validator(validator, attempt)).passed)
            rows.append(row)
        return rows

    return np.array(asyncio.run(judge_all()), dtype=np.bool_)
