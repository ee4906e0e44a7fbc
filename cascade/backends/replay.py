"""A replay backend: serve recorded model outputs, with their usage, cost and latency.

It reads a dataset in the shared format (``tasks.jsonl``, ``responses.jsonl`` or
``responses.jsonl.gz``, ``models.json``) and never calls a model, which makes whole runs
reproducible and free.

A re-ask is served the next of the recorded ``alt_outputs`` when the dataset has them (the last
one again once they run out), with that sample's own confidence, and the same recorded output
otherwise. Which one is decided by the request alone (its re-ask number, which the engine sets;
worked examples before the task are not re-asks), so replays are deterministic under any
concurrency.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from cascade.backends.base import Request, Response
from cascade.errors import ConfigError, ReplayMissing
from cascade.types import Price, Usage

__all__ = ["Recorded", "ReplayBackend", "alt_rows", "read_prices", "read_responses", "recorded"]


@dataclass(frozen=True, slots=True)
class Recorded:
    """One recorded response of one model to one task."""

    output: str
    usage: Usage
    cost_usd: float | None
    latency_s: float | None
    confidence: float | None = None
    alt_outputs: tuple[str, ...] = ()
    alt_confidence: tuple[float | None, ...] = ()
    """Each alternative output's own confidence, ``None`` where it has none."""

    def turn_index(self, turn: int) -> int:
        """Which answer the ``turn``-th ask gets: 0 the output, ``j`` the ``j``-th alternative.

        >>> Recorded("a", Usage(0, 0), None, None, alt_outputs=("b", "c")).turn_index(5)
        2
        """
        return min(turn, len(self.alt_outputs))

    def answer(self, turn: int) -> tuple[str, float | None]:
        """The output and confidence served to the ``turn``-th ask (0 is the first)."""
        index = self.turn_index(turn)
        if index == 0:
            return self.output, self.confidence
        confidence = self.alt_confidence[index - 1] if index <= len(self.alt_confidence) else None
        return self.alt_outputs[index - 1], confidence


class ReplayBackend:
    """Serve recorded responses keyed by (task id, model name).

    A tier's model may carry a provider prefix (``openai/gpt-4o-mini-2024-07-18``); when the
    full name is not recorded, the part after the last ``/`` is tried.
    """

    def __init__(
        self,
        records: Mapping[tuple[str, str], Recorded],
        *,
        prices: Mapping[str, Price] | None = None,
        name: str = "replay",
    ) -> None:
        self._records = dict(records)
        self._prices = dict(prices or {})
        self._models = frozenset(model for _, model in self._records)
        self.name = name

    def __repr__(self) -> str:
        return f"ReplayBackend({self.name!r}, responses={len(self._records)})"

    @property
    def models(self) -> frozenset[str]:
        """The model names the dataset has responses for."""
        return self._models

    @classmethod
    def from_dataset(cls, path: str | Path) -> ReplayBackend:
        """Load a dataset folder (see ``datasets/README.md`` of the shared data)."""
        folder = Path(path)
        if not folder.is_dir():
            raise ConfigError(f"replay dataset {folder} is not a directory")
        records: dict[tuple[str, str], Recorded] = {}
        for where, row in read_responses(folder):
            records[(str(row["task_id"]), str(row["model"]))] = recorded(row, where)
        return cls(records, prices=read_prices(folder), name=folder.name)

    def resolve(self, model: str) -> str | None:
        """The recorded model name a tier's model refers to, if any."""
        if model in self._models:
            return model
        short = model.rsplit("/", 1)[-1]
        return short if short in self._models else None

    def record(self, task_id: str, model: str) -> Recorded:
        """The recorded response of ``model`` to ``task_id``; raises when there is none."""
        found = self._records.get((task_id, model))
        if found is None:
            raise ReplayMissing(
                f"dataset {self.name!r} has no response of {model!r} to task {task_id!r}"
            )
        return found

    def cost_of(self, task_id: str, model: str) -> float:
        """What replaying that response costs at the dataset's prices, as :meth:`complete` says."""
        return self._cost(self.record(task_id, model), None, self._prices.get(model))

    async def complete(self, request: Request) -> Response:
        """Serve the recorded response of ``request.model`` to ``request.task_id``."""
        model = self.resolve(request.model)
        if model is None:
            raise ReplayMissing(
                f"dataset {self.name!r} has no model {request.model!r}; "
                f"it has {', '.join(sorted(self._models))}"
            )
        record = self._records.get((request.task_id, model))
        if record is None:
            raise ReplayMissing(
                f"dataset {self.name!r} has no response of {model!r} to task {request.task_id!r}"
            )
        text, confidence = record.answer(request.reask)
        return Response(
            text=text,
            model=model,
            usage=record.usage,
            cost_usd=self._cost(record, request.price, self._prices.get(model)),
            latency_s=record.latency_s,
            confidence=confidence,
        )

    @staticmethod
    def _cost(record: Recorded, override: Price | None, listed: Price | None) -> float:
        """The tier's price override first, then the recorded cost, then the listed price."""
        if override is not None:
            return override.cost(record.usage)
        if record.cost_usd is not None:
            return float(record.cost_usd)
        return listed.cost(record.usage) if listed is not None else 0.0


def _open_responses(folder: Path) -> IO[str]:
    plain = folder / "responses.jsonl"
    if plain.exists():
        return plain.open(encoding="utf-8")
    packed = folder / "responses.jsonl.gz"
    if packed.exists():
        return gzip.open(packed, "rt", encoding="utf-8")
    raise ConfigError(f"replay dataset {folder} has no responses.jsonl or responses.jsonl.gz")


def read_responses(folder: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each response row of a dataset with its ``file:line``, checked for its keys."""
    with _open_responses(folder) as lines:
        for line_no, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{folder}/responses.jsonl:{line_no}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{where}: not JSON: {exc}") from exc
            if not isinstance(row, dict) or "task_id" not in row or "model" not in row:
                raise ConfigError(f"{where}: needs task_id and model")
            yield where, row


def recorded(row: dict[str, Any], where: str) -> Recorded:
    """A response row as a :class:`Recorded`; ``where`` names it in errors."""
    output = row.get("output")
    if not isinstance(output, str):
        raise ConfigError(f"{where}: field 'output' must be a string")
    alts = alt_rows(row, where)
    return Recorded(
        output=output,
        usage=Usage(int(row.get("prompt_tokens") or 0), int(row.get("completion_tokens") or 0)),
        cost_usd=row.get("cost_usd"),
        latency_s=row.get("latency_s"),
        confidence=row.get("confidence"),
        alt_outputs=tuple(str(a["output"]) for a in alts),
        alt_confidence=tuple(a.get("confidence") for a in alts),
    )


def alt_rows(row: dict[str, Any], where: str) -> list[dict[str, Any]]:
    """A response's ``alt_outputs``, each as a dict with at least ``output``.

    A bare string is an output with nothing else known about it.
    """
    alts = row.get("alt_outputs") or []
    if not isinstance(alts, list):
        raise ConfigError(f"{where}: field 'alt_outputs' must be a list")
    found = []
    for number, alt in enumerate(alts):
        entry = {"output": alt} if isinstance(alt, str) else alt
        if not isinstance(entry, dict) or not isinstance(entry.get("output"), str):
            raise ConfigError(f"{where}: alt_outputs[{number}] needs a string 'output'")
        found.append(entry)
    return found


def read_prices(folder: Path) -> dict[str, Price]:
    """The list prices in a dataset's ``models.json``, for the models that have them."""
    path = folder / "models.json"
    if not path.exists():
        return {}
    prices: dict[str, Price] = {}
    for entry in json.loads(path.read_text(encoding="utf-8")):
        inp, out = entry.get("input_usd_per_mtok"), entry.get("output_usd_per_mtok")
        if inp is not None and out is not None:
            prices[entry["name"]] = Price(float(inp), float(out))
    return prices
