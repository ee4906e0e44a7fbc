"""The human tier's queue: tasks no model got right wait here for a person's answer.

``cascade run`` writes every task of the run whose status is ``needs_review`` to the review file
(JSONL), from the store, so the file always holds each such task exactly once. A line carries the
task, every attempt with its output and verdicts, the best rejected output and ``"answer": null``.
A reviewer fills in ``answer`` (the JSON the task should have produced, or text), and
``cascade review import FILE --store STORE`` records those answers as accepted results of the
human tier: one step of kind ``review`` per answer, in one transaction. Importing the same file
again changes nothing; lines still unanswered are counted and left waiting.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from cascade.enums import Status
from cascade.errors import ConfigError
from cascade.jsonable import to_jsonable
from cascade.store import Store
from cascade.store.queries import (
    Review,
    record_reviews,
    result_state,
    run_config,
    task_payload,
    waiting_for_review,
)
from cascade.types import HUMAN

__all__ = [
    "Imported",
    "import_reviews",
    "results_paths",
    "review_line",
    "rewrite_results",
    "write_review_queue",
]


def review_line(store: Store, run_id: str, task_id: str) -> dict[str, Any]:
    """The review-file line of one task: the task, its attempts and verdicts, and no answer."""
    outcome = store.outcome(run_id, task_id)
    if outcome is None:
        raise KeyError(task_id)
    payload = task_payload(store, run_id, task_id)
    task = json.loads(payload) if payload else {"id": task_id}
    attempts = [
        {
            "step": s.step,
            "tier": s.tier,
            "model": s.model_served or s.model_requested,
            "kind": str(s.kind),
            "output": s.output,
            "verdicts": [
                {"validator": v.validator, "passed": v.passed, "reason": v.reason}
                for v in s.verdicts
            ],
            "decision": str(s.decision),
            "error": s.error,
        }
        for s in outcome.steps
    ]
    return {
        "run_id": run_id,
        "id": task_id,
        "type": outcome.task_type,
        "task": {k: v for k, v in task.items() if v is not None},
        "attempts": attempts,
        "best_output": outcome.output,
        "reasons": list(outcome.reasons),
        "answer": None,
    }


def write_review_queue(store: Store, run_id: str, out: IO[str]) -> int:
    """Write every task of the run waiting for review; return how many."""
    waiting = waiting_for_review(store, run_id)
    for task_id in waiting:
        out.write(json.dumps(review_line(store, run_id, task_id), ensure_ascii=False) + "\n")
    return len(waiting)


@dataclass(frozen=True, slots=True)
class Imported:
    """What an import did: answers recorded, lines still unanswered, answers already in."""

    imported: int
    unanswered: int
    already: int
    runs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Answer:
    run_id: str
    task_id: str
    answer: Any
    reviewer: str


def import_reviews(store: Store, path: str | Path) -> Imported:
    """Record the answers of a review file as accepted results; all of them, or none.

    Every line is checked first; a problem anywhere is a :class:`ConfigError` naming each bad
    line, and nothing is imported.
    """
    answers, unanswered, problems = _read(path)
    fresh: list[_Answer] = []
    already = 0
    for number, answer in answers:
        state = result_state(store, answer.run_id, answer.task_id)
        where = f"{path}:{number}"
        if state is None:
            problems.append(f"{where}: task {answer.task_id!r} of run {answer.run_id} not found")
        elif state[0] == str(Status.NEEDS_REVIEW):
            fresh.append(answer)
        elif state == (str(Status.ACCEPTED), HUMAN):
            already += 1
        else:
            problems.append(
                f"{where}: task {answer.task_id!r} is {state[0]}, not waiting for review"
            )
    if problems:
        raise ConfigError("nothing imported:\n" + "\n".join(problems))
    record_reviews(store, [_review(answer) for answer in fresh])
    runs = tuple(dict.fromkeys(a.run_id for a in fresh))
    return Imported(len(fresh), unanswered, already, runs)


def _read(path: str | Path) -> tuple[list[tuple[int, _Answer]], int, list[str]]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"review file {path}: {exc}") from exc
    answers: list[tuple[int, _Answer]] = []
    problems: list[str] = []
    unanswered = 0
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            problems.append(f"{path}:{number}: not JSON: {exc}")
            continue
        if not isinstance(row, dict) or not all(
            isinstance(row.get(k), str) for k in ("run_id", "id")
        ):
            problems.append(f"{path}:{number}: a review line needs the run_id and id it was given")
        elif "answer" not in row:
            problems.append(f"{path}:{number}: no 'answer' field")
        elif row["answer"] is None:
            unanswered += 1
        else:
            reviewer = row.get("reviewer")
            answers.append(
                (number, _Answer(row["run_id"], row["id"], row["answer"], str(reviewer or HUMAN)))
            )
    return answers, unanswered, problems


def _review(answer: _Answer) -> Review:
    """A reviewed answer as the store records it: its text and its parsed value."""
    output = answer.answer if isinstance(answer.answer, str) else json.dumps(answer.answer)
    return (answer.run_id, answer.task_id, output, _parsed(answer.answer), answer.reviewer)


def _parsed(answer: Any) -> Any:
    """A structured answer as it is; text that holds JSON, decoded; other text as text."""
    if not isinstance(answer, str):
        return answer
    try:
        return json.loads(answer)
    except ValueError:
        return answer


def rewrite_results(store: Store, run_id: str, path: str | Path) -> int:
    """Write the run's results file again from the store (atomically); return its lines."""
    target = Path(path)
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    count = 0
    with partial.open("w", encoding="utf-8") as file:
        for count, line in enumerate(store.results(run_id), 1):  # noqa: B007  # count is kept
            file.write(json.dumps(line, default=to_jsonable) + "\n")
    partial.replace(target)
    return count


def results_paths(store: Store, runs: Iterable[str]) -> list[tuple[str, str]]:
    """The results file each run wrote, from its configuration, where it still exists."""
    found = []
    for run_id in runs:
        out = (run_config(store, run_id) or {}).get("out")
        if isinstance(out, str) and Path(out).is_file():
            found.append((run_id, out))
    return found
