"""What "correct" means on a dataset of one's own traffic: ``cascade truth DATASET --by ...``.

Imported and recorded answers carry ``correct: null``: nothing can be certified on them until
the user says what a right answer is. :func:`set_truth` fills ``correct`` on every response row
(and on each of its ``alt_outputs``) by one definition, and writes ``truth.json`` beside the
rows, saying which; ``cascade bench`` and ``cascade optimize`` read it (:func:`read_truth`) and
name the definition beside their figures.

- ``served``: the answer reproduces today's. The served answers are the rows ``cascade import``
  marked ``"served": true`` (the model that served each logged request), or the rows of the
  models ``served`` names. A served answer is correct by definition; any other answer is correct
  when it matches a served answer of its task as ``cascade export --gold`` judges an answer
  against the gold (:func:`cascade.gold.matches_answer`: JSON by value, numbers by value, text
  without case or extra space, and function calls as calls for a task that offers functions),
  the served answer playing the gold. A task that several models
  served (a log that mixed them) has several served answers: each is correct, and another
  answer is correct when it matches any of them.
- ``policy``: the answer passes the validators of the user's policy (see
  :mod:`cascade.traffic.truth_policy`).
- ``human``: people labeled a seeded sample's answers (see :mod:`cascade.traffic.truth_human`).

Every row is judged before anything is written; ``responses.jsonl`` is then written whole
(a temporary file, then a rename), so a bad line is an error naming its file and line, and
leaves the dataset as it was. ``truth.json`` keeps the SHA-256 of the rows it judged: rows
added since (``cascade record``) carry ``correct: null`` again, and :func:`read_truth` says so.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cascade.backends.replay import alt_rows, read_responses, recorded
from cascade.errors import ConfigError
from cascade.files import write_atomic
from cascade.gold import matches_answer

__all__ = [
    "TRUTH",
    "Judge",
    "Judged",
    "Row",
    "Truth",
    "read_rows",
    "read_truth",
    "served_truth",
    "write_truth",
]

TRUTH = "truth.json"

Row = dict[str, Any]
Judge = Callable[[str, Row, int], bool]
"""Whether answer ``index`` (0: the output, ``j``: alternative ``j``) of a row at a place is
correct."""


@dataclass(frozen=True, slots=True)
class Truth:
    """The definition of "correct" a dataset's rows were judged by (``truth.json``)."""

    by: str
    served: tuple[str, ...] = ()
    """``served``: the models whose answers were today's."""
    policy: str | None = None
    """``policy``: the policy file (or folder), as given."""
    validators: tuple[str, ...] = ()
    """``policy``: the validators run, as their reprs."""
    left_out: tuple[str, ...] = ()
    """``policy``: the policy's validators not run, each with why."""
    labels: str | None = None
    """``human`` and ``judge``: the labels file, as given."""
    judge: str | None = None
    """``judge``: the judge model."""
    rubric: str | None = None
    """``judge``: what it graded against."""
    tasks: tuple[str, ...] = ()
    """``human`` and ``judge``: the tasks labeled, the only ones the dataset's loader reads."""
    sha256: str = ""
    """Of the ``responses.jsonl`` the definition was written into."""
    stale: bool = False
    """Whether ``responses.jsonl`` changed since (read by :func:`read_truth`)."""

    def means(self) -> str:
        """What "correct" means, in words: the line ``bench`` and ``optimize`` print."""
        if self.by == "served":
            whose = "model's" if len(self.served) == 1 else "models'"
            text = f"reproduces the served {whose} answers ({', '.join(self.served)})"
        elif self.by == "human":
            text = (f"labeled right by people in {self.labels} (the {len(self.tasks)} tasks "
                    "labeled; the others are left out)")  # fmt: skip
        elif self.by == "judge":
            text = (f"judged right by {self.judge} against the rubric {self.rubric!r} (the "
                    f"{len(self.tasks)} tasks judged; the others are left out)")  # fmt: skip
        else:
            text = f"passes the validators of {self.policy}"
        if self.stale:
            text += (
                f" (set by cascade truth; responses.jsonl changed since, and answers added since"
                f" count as wrong until cascade truth --by {self.by} runs again)"
            )
        return text

    def to_json(self) -> dict[str, Any]:
        """The definition as ``truth.json`` holds it (``means`` and ``stale`` added)."""
        found: dict[str, Any] = {"by": self.by, "means": self.means()}
        if self.by == "served":
            found["served"] = list(self.served)
        elif self.by in ("human", "judge"):
            found |= {"labels": self.labels, "tasks": list(self.tasks)}
            if self.by == "judge":
                found |= {"judge": self.judge, "rubric": self.rubric}
        else:
            found |= {"policy": self.policy, "validators": list(self.validators),
                      "left_out": list(self.left_out)}  # fmt: skip
        return found | {"sha256": self.sha256, "stale": self.stale}


@dataclass(frozen=True, slots=True)
class Judged:
    """What :func:`write_truth` wrote."""

    truth: Truth
    replaced: Truth | None
    """The definition the dataset had before, when it was another."""
    correct: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Per model: how many of its answers are correct, of how many."""
    regraded: int = 0
    """Answers whose ``correct`` another grading had set (no ``truth.json``), now replaced."""


def read_truth(folder: Path) -> Truth | None:
    """The definition a dataset's ``correct`` follows, or ``None`` when none was stated."""
    path = folder / TRUTH
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        truth = Truth(
            by=str(data["by"]),
            served=tuple(data.get("served") or ()),
            policy=data.get("policy"),
            validators=tuple(data.get("validators") or ()),
            left_out=tuple(data.get("left_out") or ()),
            labels=data.get("labels"),
            judge=data.get("judge"),
            rubric=data.get("rubric"),
            tasks=tuple(map(str, data.get("tasks") or ())),
            sha256=str(data.get("sha256", "")),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: not a truth file cascade truth wrote: {exc}") from exc
    plain = folder / "responses.jsonl"
    now = hashlib.sha256(plain.read_bytes()).hexdigest() if plain.is_file() else ""
    return replace(truth, stale=now != truth.sha256)


def read_rows(folder: Path) -> list[tuple[str, Row]]:
    """Every response row with its ``file:line``, each checked as a replay reads it."""
    rows = list(read_responses(folder))
    for where, row in rows:
        recorded(row, where)  # its output and alternatives, named by line when malformed
    if not rows:
        raise ConfigError(f"{folder}/responses.jsonl has no answers to judge")
    return rows


def served_truth(
    folder: Path,
    rows: Sequence[tuple[str, Row]],
    models: Sequence[str] = (),
    calls: Collection[str] = (),
) -> tuple[Judge, tuple[str, ...]]:
    """The ``served`` judge of ``rows``, and the served models (``models``, else the marked).

    ``calls``: the tasks that offer functions, whose answers compare as function calls.
    """
    served: dict[str, list[str]] = {}
    serving: dict[str, None] = {}
    for _, row in rows:
        if _served(row, models):
            served.setdefault(str(row["task_id"]), []).append(str(row["output"]))
            serving.setdefault(str(row["model"]))
    if not serving:
        raise ConfigError(
            f"{folder}/responses.jsonl: no answer is marked served (cascade import marks the "
            "answers of the model that served each request)"
            + (f", and no row is of {', '.join(models)}" if models else "")
            + "; name the served model with --served MODEL"
        )
    for where, row in rows:
        if str(row["task_id"]) not in served:
            raise ConfigError(
                f"{where}: task {row['task_id']} has no served answer to compare with "
                f"(served: {', '.join(serving)})"
            )

    def judge(where: str, row: Row, index: int) -> bool:
        if index == 0 and _served(row, models):
            return True
        text = row["output"] if index == 0 else alt_rows(row, where)[index - 1]["output"]
        task = str(row["task_id"])
        return any(matches_answer(str(text), gold, calls=task in calls) for gold in served[task])

    return judge, tuple(serving)


def _served(row: Row, models: Sequence[str]) -> bool:
    """Whether a row is a served answer: of a model named, else marked by the import."""
    return row["model"] in models if models else row.get("served") is True


def write_truth(
    folder: Path, rows: Sequence[tuple[str, Row]], judge: Judge, truth: Truth
) -> Judged:
    """Judge every row, then write ``responses.jsonl`` and ``truth.json``, each whole."""
    try:
        before = read_truth(folder)
    except ConfigError:
        before = None  # an unreadable truth file is replaced like any other
    lines: list[str] = []
    counts: dict[str, list[int]] = {}
    for where, row in rows:
        judged = {**row, "correct": judge(where, row, 0)}
        alts = alt_rows(row, where)
        if alts:
            judged["alt_outputs"] = [
                {**alt, "correct": judge(where, row, i)} for i, alt in enumerate(alts, 1)
            ]
        tally = counts.setdefault(str(row["model"]), [0, 0])
        tally[0] += judged["correct"]
        tally[1] += 1
        lines.append(json.dumps(judged) + "\n")
    text = "".join(lines)
    truth = replace(truth, sha256=hashlib.sha256(text.encode("utf-8")).hexdigest())
    write_atomic(folder / "responses.jsonl", text)
    (folder / "responses.jsonl.gz").unlink(missing_ok=True)  # the plain file holds every row
    stated = {k: v for k, v in truth.to_json().items() if k not in ("means", "stale")}
    write_atomic(folder / TRUTH, json.dumps(stated, indent=2) + "\n")
    replaced = before if before is not None and _differs(before, truth) else None
    regraded = 0 if before is not None else sum(r.get("correct") is not None for _, r in rows)
    return Judged(truth, replaced, {m: (c, n) for m, (c, n) in counts.items()}, regraded)


def _differs(before: Truth, now: Truth) -> bool:
    then = (before.by, before.served, before.policy, before.labels, before.judge, before.rubric)
    return then != (now.by, now.served, now.policy, now.labels, now.judge, now.rubric)
