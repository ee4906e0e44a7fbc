"""A run store as a dataset: every tier's recorded answer to each task, in the shared format.

A normal run asks a later tier only when an earlier one failed, so its store holds every
tier's answer only for the tasks run with ``--record-all-tiers``: those are the tasks exported,
each answered by every model its kind's ladder has (``every_task`` exports the rest too). For
each task and model, the first answer the model gave to the task's own prompt is kept (a
re-ask, which saw the validators' feedback, is not).

A store knows no truth, so ``correct`` comes from a gold file (``{"id": ..., "answer": ...}``
per line, as ``cascade eval`` reads), compared as ``cascade eval`` compares (and numbers by
value); without one it is ``null``, and ``cascade bench`` asks for it.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cascade.bench.dataset import Dataset, load_dataset
from cascade.dataset_files import write_dataset
from cascade.enums import CallKind
from cascade.errors import ConfigError
from cascade.gold import load_gold, matches_gold
from cascade.store import Store
from cascade.store.queries import first_answers, tasks_of

__all__ = ["Exported", "dataset_from_store", "export_store"]

_ANSWERS = (CallKind.CALL, CallKind.RETRY, CallKind.FALLBACK, CallKind.CALIBRATION)


@dataclass(frozen=True, slots=True)
class Exported:
    """What an export wrote."""

    folder: Path
    tasks: int
    responses: int
    models: tuple[str, ...]
    skipped: int
    """Tasks left out because some model had not answered them."""


def export_store(
    store: str | Path,
    out: str | Path,
    *,
    gold: str | Path | None = None,
    run_id: str | None = None,
    every_task: bool = False,
) -> Exported:
    """Write ``tasks.jsonl``, ``responses.jsonl`` and ``models.json`` for a store's tasks."""
    path = Path(store)
    if not path.is_file():
        raise ConfigError(f"no run store at {path}")
    answers = load_gold(gold) if gold is not None else None
    with Store(path) as db:
        tasks = dict(_tasks(db, run_id))
        responses, models = _responses(db, run_id, tasks)
    if not tasks:
        raise ConfigError(f"{path} holds no tasks" + (f" of run {run_id}" if run_id else ""))
    by_kind: dict[str, set[str]] = {}  # the models that answered some task of each kind
    for task_id, model in responses:
        by_kind.setdefault(tasks[task_id]["kind"], set()).add(model)
    complete = {
        t
        for t, task in tasks.items()
        if every_task or all((t, m) in responses for m in by_kind.get(task["kind"], ()))
    }
    folder = Path(out)
    task_rows, response_rows = [], []
    for task_id, task in tasks.items():
        if task_id not in complete:
            continue
        task_rows.append(task if answers is None else {**task, "gold": answers.get(task_id)})
        for model in models:
            row = responses.get((task_id, model))
            if row is None:
                continue
            truth = None if answers is None or task_id not in answers else answers[task_id]
            row["correct"] = None if answers is None else matches_gold(row["output"], truth)
            response_rows.append(row)
    source = f"the cost recorded per call in {path.name}"
    prices = [{"name": m, "input_usd_per_mtok": None, "output_usd_per_mtok": None,
               "price_source": source} for m in models]  # fmt: skip
    written, answered = write_dataset(folder, task_rows, response_rows, prices)
    return Exported(folder, written, answered, tuple(models), len(tasks) - len(complete))


def dataset_from_store(
    store: str | Path, gold: str | Path | None, *, run_id: str | None = None
) -> tuple[Dataset, Exported]:
    """A store's fully answered tasks as a replayable dataset, judged against ``gold``."""
    if gold is None:
        raise ConfigError(
            f"{store} is a run store, which holds no truth: give --gold with the right answers "
            '({"id": ..., "answer": ...} per line)'
        )
    with tempfile.TemporaryDirectory(prefix="cascade-store-") as folder:
        exported = export_store(store, folder, gold=gold, run_id=run_id)
        if not exported.tasks:
            raise ConfigError(
                f"{store}: no task has an answer from every tier; run with --record-all-tiers"
            )
        data = load_dataset(folder)  # everything is read into memory before the folder goes
    return replace(data, name=Path(store).name), exported


def _tasks(db: Store, run_id: str | None) -> Iterator[tuple[str, dict[str, Any]]]:
    rows = tasks_of(db, run_id)
    for task_id, task_type, payload in rows:
        if payload is None:
            continue
        task = json.loads(payload)
        task.pop("type", None)
        line = {"id": task_id, "kind": task_type}
        line |= {k: v for k, v in task.items() if v not in (None, {}, []) and k != "id"}
        yield task_id, line


def _responses(
    db: Store, run_id: str | None, tasks: Mapping[str, Any]
) -> tuple[dict[tuple[str, str], dict[str, Any]], list[str]]:
    """The first answer of each model to each task, and the models by the tier they serve."""
    rows = first_answers(db, run_id, _ANSWERS)
    found: dict[tuple[str, str], dict[str, Any]] = {}
    tiers: dict[str, int] = {}
    for task_id, tier, model, prompt, completion, cost, latency, output, confidence in rows:
        if task_id not in tasks or (task_id, model) in found:
            continue
        tiers[model] = min(tier, tiers.get(model, tier))
        found[(task_id, model)] = {
            "task_id": task_id, "model": model, "output": output, "prompt_tokens": prompt,
            "completion_tokens": completion, "cost_usd": cost, "latency_s": latency,
        }  # fmt: skip
        if confidence is not None:
            found[(task_id, model)]["confidence"] = confidence
    return found, sorted(tiers, key=lambda m: (tiers[m], m))
