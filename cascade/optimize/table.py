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

__all__ = ["KindTable", "agreement_mode", "format_check", "kind_table"]

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
class KindTable:
    """Per (model, task) of one kind: right, cost, confidence and checks, as arrays.

    Rows follow :attr:`models`, columns :attr:`task_ids`.
    """

    kind: str
    models: tuple[str, ...]
    task_ids: tuple[str, ...]
    correct: Bools
    cost: Floats
    confidence: Floats
    """NaN where no confidence was recorded."""
    format_ok: Bools | None
    """Whether each answer passed :attr:`format_spec`; ``None`` when the kind has none."""
    format_spec: dict[str, Any] | None
    agree: Bools
    """``agree[a, b, t]``: model ``a``'s answer to task ``t`` matches model ``b``'s."""

    def subset(self, columns: npt.NDArray[np.intp]) -> KindTable:
        """The same table for some of its tasks."""
        return KindTable(
            self.kind,
            self.models,
            tuple(self.task_ids[i] for i in columns),
            self.correct[:, columns],
            self.cost[:, columns],
            self.confidence[:, columns],
            None if self.format_ok is None else self.format_ok[:, columns],
            self.format_spec,
            self.agree[:, :, columns],
        )


def kind_table(data: Dataset, kind: str) -> tuple[KindTable, list[str]]:
    """The table of one task kind, and the models left out for lack of answers (with why)."""
    tasks = [t for t in data.tasks if t.type == kind]
    ids = [t.id for t in tasks]
    complete = [m for m in data.models if all((i, m) in data.cost for i in ids)]
    left_out = [f"{m}: no answer to some {kind} tasks" for m in data.models if m not in complete]
    outputs = [[_output(data, t.id, m) for t in tasks] for m in complete]
    correct = np.array([[data.correct[(i, m)] for i in ids] for m in complete], dtype=np.bool_)
    cost = np.array([[data.cost[(i, m)] for i in ids] for m in complete], dtype=np.float64)
    confidence = np.array(
        [[_confidence(data, i, m) for i in ids] for m in complete], dtype=np.float64
    )
    spec = format_check(kind, tasks)
    format_ok = None if spec is None else _judge(spec, tasks, complete, outputs)
    mode = agreement_mode(kind)
    agree = np.zeros((len(complete), len(complete), len(ids)), dtype=np.bool_)
    for a in range(len(complete)):
        for b in range(a + 1, len(complete)):
            same = [same_answers(x, y, mode) for x, y in zip(outputs[a], outputs[b], strict=True)]
            agree[a, b] = agree[b, a] = same
    table = KindTable(
        kind, tuple(complete), tuple(ids), correct, cost, confidence, format_ok, spec, agree
    )
    return table, left_out


def _output(data: Dataset, task_id: str, model: str) -> str:
    return data.backend.record(task_id, model).output


def _confidence(data: Dataset, task_id: str, model: str) -> float:
    score = data.backend.record(task_id, model).confidence
    return float("nan") if score is None else float(score)


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
