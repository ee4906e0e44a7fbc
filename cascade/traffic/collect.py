"""Gather imported calls into a dataset: merge identical requests, keep first answers, write.

Two calls are the same task when their messages, tools and ``response_format`` are identical
(after secrets are removed); the task's ``weight`` counts them, and its id is a hash of them,
so importing the same log again gives the same ids. For each task, each model that served it
keeps its first answer, in the order the files and lines were given, marked ``"served": true``
(``cascade truth --by served`` judges other models' answers against these). Every string
written goes through the secret redaction of :mod:`cascade.secrets`, with the credentials the
logged requests carried added to it; the quarantine file too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cascade.dataset_files import write_dataset
from cascade.files import write_atomic
from cascade.secrets import SecretRedactor
from cascade.traffic.exchange import Exchange
from cascade.traffic.pricing import Pricer

__all__ = ["Collector", "Imported", "read_lines"]

QUARANTINE = "quarantine.jsonl"


@dataclass(frozen=True, slots=True)
class Imported:
    """What an import wrote."""

    folder: Path
    calls: int
    tasks: int
    responses: int
    models: tuple[str, ...]
    quarantined: int
    """Lines (or spans) that held no readable call: in ``quarantine.jsonl``, with the reason."""
    notes: tuple[str, ...] = ()


@dataclass(slots=True)
class _Task:
    row: dict[str, Any]
    weight: int = 1
    answers: dict[str, Exchange] = field(default_factory=dict)


class Collector:
    """Calls and quarantined lines, in the order read; :meth:`write` makes the dataset."""

    def __init__(self, pricer: Pricer | None = None) -> None:
        self._calls: list[Exchange] = []
        self._bad: list[tuple[str, int, str, str]] = []
        self._pricer = pricer or Pricer()

    def __repr__(self) -> str:
        return f"Collector(calls={len(self._calls)}, quarantined={len(self._bad)})"

    def add(self, call: Exchange) -> None:
        """Keep one call read from a log."""
        self._calls.append(call)

    def quarantine(self, source: str, line: int, reason: str, text: str) -> None:
        """Keep a line that held no readable call, with where it was and why."""
        self._bad.append((source, line, reason, text))

    def write(self, out: str | Path) -> Imported:
        """Write the dataset (and the quarantine file, when some line was bad) to ``out``."""
        folder = Path(out)
        redactor = SecretRedactor(extra={s for c in self._calls for s in c.secrets})
        tasks: dict[str, _Task] = {}
        rows: dict[str, dict[str, Any]] = {}  # by the request as logged: redacted once each
        for call in self._calls:
            raw = json.dumps([call.messages, call.tools, call.response_format], sort_keys=True)
            row = rows.get(raw)
            if row is None:
                row = rows[raw] = _task_row(call, redactor)
            known = tasks.get(row["id"])
            if known is None:
                known = tasks[row["id"]] = _Task(row)
            else:
                known.weight += 1
            known.answers.setdefault(call.model, call)
        models: dict[str, None] = {}
        task_rows, response_rows = [], []
        for task_id, task in tasks.items():
            task_rows.append({**task.row, "weight": task.weight})
            for model, call in task.answers.items():
                models.setdefault(model)
                response_rows.append(self._response(task_id, call, redactor))
        written, answered = write_dataset(
            folder, task_rows, response_rows, [self._model_row(m) for m in models]
        )
        bad = [
            json.dumps({"file": s, "line": n, "reason": redactor.text(r), "text": redactor.text(t)})
            + "\n"
            for s, n, r, t in self._bad
        ]
        quarantine = folder / QUARANTINE
        if bad:
            write_atomic(quarantine, "".join(bad))
        elif quarantine.exists():
            quarantine.unlink()  # from an earlier import into the same folder
        notes = tuple(
            f"litellm's cost map has no price for {m}: its cost is null where the log had none"
            for m in sorted(self._pricer.unknown)
        )
        return Imported(folder, len(self._calls), written, answered, tuple(models), len(bad),
                        notes)  # fmt: skip

    def _response(self, task_id: str, call: Exchange, redactor: SecretRedactor) -> dict[str, Any]:
        cost = call.cost_usd
        if cost is None and call.prompt_tokens is not None and call.completion_tokens is not None:
            cost = self._pricer.cost(
                call.model, call.prompt_tokens, call.completion_tokens, batch=call.batch
            )
        elif cost is None:
            self._pricer.unknown.add(call.model)
        return {
            "task_id": task_id, "model": call.model, "output": redactor.text(call.output),
            "prompt_tokens": call.prompt_tokens, "completion_tokens": call.completion_tokens,
            "cost_usd": cost, "latency_s": call.latency_s, "correct": None, "served": True,
        }  # fmt: skip

    def _model_row(self, model: str) -> dict[str, Any]:
        price = None if model in self._pricer.unknown else self._pricer.list_price(model)
        return {
            "name": model,
            "input_usd_per_mtok": None if price is None else price.input_usd_per_mtok,
            "output_usd_per_mtok": None if price is None else price.output_usd_per_mtok,
            "price_source": "litellm's cost map; each response's cost as logged where the log "
            "had one"
            if price is not None
            else "unknown: the cost as logged, else null",
        }


def _task_row(call: Exchange, redactor: SecretRedactor) -> dict[str, Any]:
    """The task a call asked: kind, messages, and the tools and schema its validators read."""
    request: dict[str, Any] = {"messages": _scrub(list(call.messages), redactor)}
    if call.tools:
        request["tools"] = _scrub(list(call.tools), redactor)
    if call.response_format:
        request["response_format"] = _scrub(dict(call.response_format), redactor)
    digest = hashlib.sha256(
        json.dumps(request, sort_keys=True, separators=(",", ":")).encode("utf-8")
    ).hexdigest()
    row: dict[str, Any] = {"id": f"req-{digest[:16]}", "kind": "chat", **request}
    functions = [t["function"] for t in request.get("tools", ()) if _function(t)]
    if functions:
        row["kind"], row["functions"] = "function_call", functions
    schema = _schema(request.get("response_format"))
    if schema is not None:
        row["schema"] = schema
        if not functions:
            row["kind"] = "json"
    return row


def _function(tool: Any) -> bool:
    return isinstance(tool, dict) and isinstance(tool.get("function"), dict)


def _schema(response_format: Any) -> Any:
    """The JSON Schema a ``response_format`` asks for: ``{"type": "object"}`` for JSON mode."""
    if not isinstance(response_format, dict):
        return None
    if response_format.get("type") == "json_schema":
        spec = response_format.get("json_schema")
        return spec.get("schema") if isinstance(spec, dict) else None
    return {"type": "object"} if response_format.get("type") == "json_object" else None


def _scrub(value: Any, redactor: SecretRedactor) -> Any:
    """``value`` with every string in it redacted (keys stay: a schema's names are no secret)."""
    if isinstance(value, str):
        return redactor.text(value)
    if isinstance(value, dict):
        return {k: _scrub(v, redactor) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v, redactor) for v in value]
    return value


def read_lines(path: Path) -> Iterable[tuple[int, str]]:
    """Each non-blank line of a log with its number (from 1); undecodable bytes kept as such."""
    with path.open(encoding="utf-8", errors="surrogateescape") as lines:
        for number, line in enumerate(lines, start=1):
            if line.strip():
                yield number, line.rstrip("\n")
