"""Score a results file against gold answers: how often an accepted answer is right.

The gold file is JSONL, one ``{"id": ..., "answer": ...}`` per task. A result's answer is its
``parsed`` value, or else its ``output`` (decoded when it is JSON). Answers are compared after
normalisation: text is stripped, its whitespace collapsed and its case folded, and a field named
like a phone number is compared by its digits. Objects must agree on every key; the score also
counts each field on its own.

Precision is the share of accepted results that are right: what a user of the ladder relies on.
Coverage is the share of all tasks accepted and right.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cascade.errors import ConfigError
from cascade.validators.agreement import final_number, same_answers
from cascade.validators.jsonvalue import extract_json

__all__ = [
    "GoldScore",
    "TierScore",
    "answer_value",
    "decoded",
    "load_gold",
    "matches_gold",
    "render_score",
    "same_answer",
    "score_results",
]

_SPACE = re.compile(r"\s+")


def _normal(value: Any, key: str = "") -> Any:
    if isinstance(value, str):
        if "phone" in key.lower():
            return re.sub(r"\D", "", value) or None
        return _SPACE.sub(" ", value).strip().casefold() or None
    if isinstance(value, Mapping):
        return {k: _normal(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_normal(v, key) for v in value]
    return value


def same_answer(found: Any, gold: Any) -> bool:
    """Whether two answers agree after normalisation.

    >>> same_answer({"name": " Ada  Lovelace", "phone": "+1 (415) 555-0100"},
    ...             {"name": "ada lovelace", "phone": "+1 415 555 0100"})
    True
    >>> same_answer({"name": "Ada"}, {"name": "Ada", "email": None})
    True
    >>> same_answer({"name": "Ada", "email": "x@y.z"}, {"name": "Ada", "email": None})
    False
    """
    found, gold = _normal(found), _normal(gold)
    if isinstance(found, dict) and isinstance(gold, dict):
        return all(found.get(k) == gold.get(k) for k in set(found) | set(gold))
    return bool(found == gold)


@dataclass(slots=True)
class TierScore:
    """The accepted results of one tier (or model) and how many of them were right."""

    accepted: int = 0
    correct: int = 0

    @property
    def precision(self) -> float | None:
        """The share of this tier's accepted answers that match the gold."""
        return self.correct / self.accepted if self.accepted else None


@dataclass(slots=True)
class GoldScore:
    """A results file scored against gold answers."""

    tasks: int = 0
    no_gold: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    accepted: TierScore = field(default_factory=TierScore)
    by_tier: dict[str, TierScore] = field(default_factory=dict)
    fields: dict[str, TierScore] = field(default_factory=dict)
    wrong: list[str] = field(default_factory=list)

    @property
    def coverage(self) -> float | None:
        """The share of all tasks accepted with the right answer."""
        return self.accepted.correct / self.tasks if self.tasks else None

    def to_json(self) -> dict[str, Any]:
        """The score as one JSON object."""
        return {
            "tasks": self.tasks,
            "no_gold": self.no_gold,
            "statuses": dict(self.statuses),
            "accepted": self.accepted.accepted,
            "correct": self.accepted.correct,
            "precision": self.accepted.precision,
            "coverage": self.coverage,
            "by_tier": {
                name: {"accepted": s.accepted, "correct": s.correct, "precision": s.precision}
                for name, s in self.by_tier.items()
            },
            "field_accuracy": {name: s.precision for name, s in self.fields.items()},
            "wrong": self.wrong,
        }


def _rows(path: str | Path, what: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """The JSON objects with a string ``id`` in a JSONL file, streamed, with line numbers."""
    try:
        file = Path(path).open(encoding="utf-8")  # noqa: SIM115  # closed below
    except OSError as exc:
        raise ConfigError(f"{what} {path}: {exc.strerror or exc}") from exc
    with file:
        for number, line in enumerate(file, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise ConfigError(f"{path}:{number}: not JSON: {exc}") from exc
            if not isinstance(row, dict) or not isinstance(row.get("id"), str):
                raise ConfigError(f"{path}:{number}: a line of the {what} needs a string id")
            yield number, row


def load_gold(path: str | Path) -> dict[str, Any]:
    """The gold answers by task id; a bad line is an error naming the file and line."""
    gold: dict[str, Any] = {}
    for number, row in _rows(path, "gold file"):
        if "answer" not in row:
            raise ConfigError(f'{path}:{number}: expected {{"id": "...", "answer": ...}}')
        gold[row["id"]] = row["answer"]
    return gold


def score_results(results: str | Path, gold: Mapping[str, Any]) -> GoldScore:
    """Score every line of a results file against ``gold``."""
    score = GoldScore()
    for _, row in _rows(results, "results file"):
        if row["id"] not in gold:
            score.no_gold += 1
            continue
        score.tasks += 1
        status = str(row.get("status"))
        score.statuses[status] += 1
        if status != "accepted":
            continue
        expected = gold[row["id"]]
        found = row.get("parsed")
        if found is None:
            found = decoded(row.get("output"))
        right = same_answer(found, expected)
        tier = f"tier {row.get('tier')}: {row.get('model')}"
        for bucket in (score.accepted, score.by_tier.setdefault(tier, TierScore())):
            bucket.accepted += 1
            bucket.correct += right
        if not right:
            score.wrong.append(row["id"])
        if isinstance(expected, Mapping):
            got = found if isinstance(found, Mapping) else {}
            for key, value in expected.items():
                bucket = score.fields.setdefault(str(key), TierScore())
                bucket.accepted += 1
                bucket.correct += same_answer({key: got.get(key)}, {key: value})
    return score


def decoded(output: Any) -> Any:
    """An output that is JSON text, decoded; any other output as it is."""
    if isinstance(output, str):
        try:
            return json.loads(output)
        except ValueError:
            return output
    return output


def matches_gold(output: str, gold: Any) -> bool:
    """Whether a model's raw answer matches the gold one.

    As :func:`same_answer` judges the answer's JSON value (its stripped text when it holds
    none), and a numeric gold answer by value against the answer's final number (``#### 42``,
    or the last one written).

    >>> matches_gold('Here: {"b": 2, "a": 1}', {"a": 1, "b": 2})
    True
    >>> matches_gold("so the total is 1,200.0", "1200")
    True
    >>> matches_gold("None", None)
    False
    """
    if gold is None:
        return False
    value, problem = extract_json(output)
    if same_answer(output.strip() if problem is not None else value, gold):
        return True
    number = _number(gold)
    return number is not None and final_number(output) == number


def matches_answer(output: str, reference: str, *, calls: bool = False) -> bool:
    """Whether ``output`` gives the answer another model's raw ``reference`` gives.

    With ``calls`` (a task that offers functions), the same function calls with the same
    arguments, in any order and however quoted, are the same answer; otherwise, and for answers
    that hold no calls, as :func:`matches_gold` judges an answer against a gold one.

    >>> matches_answer('[f(a="x")]', "[f(a='x')]", calls=True)
    True
    >>> matches_answer('[f(a="x")]', "[f(a='x')]")
    False
    """
    if calls and same_answers(output, reference, "call"):
        return True
    return matches_gold(output, answer_value(reference))


def answer_value(output: str) -> Any:
    """A raw answer as a gold answer: its JSON value, else its stripped text.

    >>> answer_value('Sure: {"a": 1}'), answer_value(" 42 "), answer_value(" Paris ")
    ({'a': 1}, 42, 'Paris')
    """
    value, problem = extract_json(output)
    return output.strip() if problem is not None else value


def _number(gold: Any) -> float | None:
    if isinstance(gold, bool):
        return None
    if isinstance(gold, int | float):
        return float(gold)
    try:
        return float(str(gold).replace(",", ""))
    except ValueError:
        return None


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def render_score(score: GoldScore) -> str:
    """The score as text for a terminal."""
    lines = [
        f"scored {score.tasks} tasks against the gold"
        + (f" ({score.no_gold} results had no gold answer)" if score.no_gold else ""),
        "  status      " + ", ".join(f"{k} {v}" for k, v in sorted(score.statuses.items())),
        f"  accepted    {score.accepted.accepted}, of which right {score.accepted.correct}:"
        f" precision {_pct(score.accepted.precision)}, coverage {_pct(score.coverage)}",
    ]
    for tier, bucket in sorted(score.by_tier.items()):
        lines.append(
            f"    {tier}: accepted {bucket.accepted}, right {bucket.correct},"
            f" precision {_pct(bucket.precision)}"
        )
    if score.fields:
        fields = ", ".join(f"{k} {_pct(v.precision)}" for k, v in score.fields.items())
        lines.append(f"  fields      {fields} (accepted results)")
    if score.wrong:
        shown = ", ".join(score.wrong[:5]) + (" ..." if len(score.wrong) > 5 else "")
        lines.append(f"  wrong       {shown}")
    return "\n".join(lines)
