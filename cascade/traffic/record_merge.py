"""Answers ``cascade record`` kept in its store, added to the dataset's responses and models.

Every answer any record job of the dataset got (``DATASET/record.db``, all runs) is added
that the dataset lacks: each (task, model) pair once, the first answer the model gave, with
its tokens, its cost as charged (a batch tier's at the batch price) and its latency. A pair
the dataset has already keeps its row; an answer for a task the dataset no longer has is left
in the store. ``responses.jsonl`` and ``models.json`` are each written whole or not at all,
the responses first: a rerun after a crash between the two finds the answers there and adds
only the missing model rows.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cascade.backends.replay import read_responses
from cascade.enums import CallKind
from cascade.files import write_atomic
from cascade.store import Store
from cascade.store.queries import first_answers, tasks_of
from cascade.traffic.record_job import STORE

__all__ = ["Merged", "merge_answers", "stored_answers"]

_ANSWERS = (CallKind.CALL, CallKind.RETRY, CallKind.FALLBACK)
Pair = tuple[str, str]
ModelRow = Callable[[str], Mapping[str, Any]]
"""The ``models.json`` row of a model the dataset did not list."""


@dataclass(frozen=True, slots=True)
class Merged:
    """What a merge added to the dataset."""

    added: int
    """Response rows."""
    models: tuple[str, ...]
    """Models that got a row in ``models.json``."""
    orphans: int = 0
    """Answers for tasks the dataset no longer has (left in the store)."""


def stored_answers(folder: Path) -> dict[Pair, dict[str, Any]]:
    """The first answer of each (task, model) pair in the dataset's record store, as rows."""
    path = folder / STORE
    if not path.is_file():
        return {}
    found: dict[Pair, dict[str, Any]] = {}
    with Store(path) as db:
        pairs = dict(_pairs(tasks_of(db, None)))
        for row in first_answers(db, None, _ANSWERS):
            task_id, _tier, _model, prompt, completion, cost, latency, output, confidence = row
            pair = pairs.get(task_id)
            if pair is None or pair in found:
                continue
            found[pair] = {
                "task_id": pair[0], "model": pair[1], "output": output,
                "prompt_tokens": prompt, "completion_tokens": completion, "cost_usd": cost,
                "latency_s": latency, "correct": None,
            }  # fmt: skip
            if confidence is not None:
                found[pair]["confidence"] = confidence
    return found


def _pairs(rows: Iterator[tuple[str, str, str | None]]) -> Iterator[tuple[str, Pair]]:
    """Each record job task's id, with the pair its meta says it asks."""
    for task_id, _type, payload in rows:
        record = json.loads(payload).get("meta", {}).get("record") if payload else None
        if isinstance(record, dict):
            yield task_id, (str(record["task_id"]), str(record["model"]))


def merge_answers(folder: Path, tasks: Collection[str], model_row: ModelRow) -> Merged:
    """Add the store's answers to ``tasks`` the dataset lacks; list each new model."""
    stored = stored_answers(folder)
    if not stored:
        return Merged(0, ())
    have = {(str(r["task_id"]), str(r["model"])) for _, r in read_responses(folder)}
    new = [row for pair, row in stored.items() if pair not in have and pair[0] in tasks]
    orphans = sum(1 for pair in stored if pair[0] not in tasks)
    if new:
        _add_responses(folder, "".join(json.dumps(row) + "\n" for row in new))
    answered = {pair[1] for pair in stored if pair[0] in tasks}
    return Merged(len(new), _add_models(folder, answered, model_row), orphans)


def _add_responses(folder: Path, lines: str) -> None:
    """Append to the responses, written whole: a gzipped file becomes a plain one."""
    plain, packed = folder / "responses.jsonl", folder / "responses.jsonl.gz"
    if plain.exists():
        text = plain.read_text(encoding="utf-8")
    else:
        with gzip.open(packed, "rt", encoding="utf-8") as stream:
            text = stream.read()
    if text and not text.endswith("\n"):
        text += "\n"
    write_atomic(plain, text + lines)
    packed.unlink(missing_ok=True)  # the plain file, read first, holds every row now


def _add_models(folder: Path, models: set[str], model_row: ModelRow) -> tuple[str, ...]:
    path = folder / "models.json"
    rows: list[Any] = json.loads(path.read_text(encoding="utf-8")) if path.exists() else []
    listed = {r.get("name") for r in rows if isinstance(r, dict)}
    missing = sorted(models - listed)
    if missing:
        rows.extend(dict(model_row(m)) for m in missing)
        write_atomic(path, json.dumps(rows, indent=2) + "\n")
    return tuple(missing)
