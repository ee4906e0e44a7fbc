"""A replay backend: serve recorded model outputs, with their usage, cost and latency.

It reads a dataset in the shared format (``tasks.jsonl``, ``responses.jsonl`` or
``responses.jsonl.gz``, ``models.json``) and never calls a model, which makes whole runs
reproducible and free.

A re-ask is served the next of the recorded ``alt_outputs`` when the dataset has them (the last
one again once they run out), with that sample's own confidence, and the same recorded output
otherwise. An extra sample that a self-consistency check asks for is served the recorded
alternatives from the last one backwards, so that re-asks and samples draw on different
recordings as far as there are enough. Which answer is served is decided by the request alone
(its re-ask and sample numbers, which the engine sets; worked examples before the task are not
re-asks), so replays are deterministic under any concurrency.

Where a dataset records ``answer_only_cost_usd`` beside ``cost_usd`` (a suite whose confidence
came from a second, self-assessment call), a request that reads the confidence pays
``cost_usd`` and gets the confidence; any other pays the answer alone and gets no confidence.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from cascade.backends.base import Request, Response
from cascade.errors import ConfigError, ReplayMissing
from cascade.latency import p90
from cascade.types import Price, Usage

__all__ = [
    "Recorded",
    "ReplayBackend",
    "Reprice",
    "alt_rows",
    "read_prices",
    "read_responses",
    "recorded",
]

Reprice = Callable[[Usage, float], float]
"""What a call of these tokens that cost this much costs instead (at a batch price, say)."""


@dataclass(frozen=True, slots=True)
class Recorded:
    """One recorded response of one model to one task.

    ``cost_usd`` is what the recorded call cost, with the self-assessment that produced its
    ``confidence`` where there was one; ``answer_cost_usd`` the answer alone, where the dataset
    says (``answer_only_cost_usd``). Each alternative sample has its own cost where recorded.
    """

    output: str
    usage: Usage
    cost_usd: float | None
    latency_s: float | None
    confidence: float | None = None
    alt_outputs: tuple[str, ...] = ()
    alt_confidence: tuple[float | None, ...] = ()
    """Each alternative output's own confidence, ``None`` where it has none."""
    answer_cost_usd: float | None = None
    alt_costs: tuple[float | None, ...] = ()

    def turn_index(self, turn: int, sample: int = 0) -> int:
        """Which answer an ask gets: 0 the output, ``j`` the ``j``-th alternative.

        The ``turn``-th re-ask gets the ``turn``-th alternative (the last once they run out);
        the ``sample``-th extra sample gets the alternatives from the last one backwards.

        >>> record = Recorded("a", Usage(0, 0), None, None, alt_outputs=("b", "c", "d"))
        >>> record.turn_index(5), record.turn_index(0, sample=1), record.turn_index(0, sample=9)
        (3, 3, 1)
        """
        count = len(self.alt_outputs)
        if sample > 0 and count:
            return max(1, count + 1 - sample)
        return min(turn, count)

    def answer(self, turn: int, sample: int = 0) -> tuple[str, float | None]:
        """The output and confidence served to an ask (see :meth:`turn_index`)."""
        index = self.turn_index(turn, sample)
        if index == 0:
            return self.output, self.confidence
        confidence = self.alt_confidence[index - 1] if index <= len(self.alt_confidence) else None
        return self.alt_outputs[index - 1], confidence

    def recorded_cost(self, index: int, *, confidence: bool) -> float | None:
        """What serving answer ``index`` cost when recorded: with the confidence call or not."""
        if index > 0 and index <= len(self.alt_costs) and self.alt_costs[index - 1] is not None:
            return self.alt_costs[index - 1]
        if not confidence and self.answer_cost_usd is not None:
            return self.answer_cost_usd
        return self.cost_usd

    @property
    def confidence_is_extra(self) -> bool:
        """Whether the confidence cost a call of its own (its cost exceeds the answer's)."""
        return (
            self.answer_cost_usd is not None
            and self.cost_usd is not None
            and self.cost_usd > self.answer_cost_usd
        )


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
        timed_on: Collection[str] | None = None,
        repriced: Mapping[str, Reprice] | None = None,
    ) -> None:
        self._records = dict(records)
        self._repriced = dict(repriced or {})
        """Models whose calls cost something else than recorded (a batch price, say)."""
        self._prices = dict(prices or {})
        self._models = frozenset(model for _, model in self._records)
        self.name = name
        self._p90: dict[str, float | None] = {}
        self._timed_on = None if timed_on is None else frozenset(timed_on)
        """The tasks whose latencies give the expected ones (all, when ``None``)."""

    def timed_on(self, task_ids: Collection[str]) -> ReplayBackend:
        """The same replay, whose expected latencies come from the tasks ``task_ids`` alone."""
        return ReplayBackend(self._records, prices=self._prices, name=self.name,
                             timed_on=task_ids, repriced=self._repriced)  # fmt: skip

    def repriced(self, prices: Mapping[str, Reprice]) -> ReplayBackend:
        """The same replay, with the calls of the models named costing what ``prices`` say."""
        repriced = {**self._repriced, **prices}
        return ReplayBackend(self._records, prices=self._prices, name=self.name,
                             timed_on=self._timed_on, repriced=repriced)  # fmt: skip

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

    def cost_of(
        self, task_id: str, model: str, *, index: int = 0, confidence: bool = False
    ) -> float:
        """What serving answer ``index`` of that response costs, as :meth:`complete` says."""
        record = self.record(task_id, model)
        cost = self._cost(record, index, confidence, None, self._prices.get(model))
        return self._reprice(model, record, cost)

    def expected_latency_s(self, model: str) -> float | None:
        """The p90 of ``model``'s recorded latencies: what a task with a deadline plans by."""
        resolved = self.resolve(model)
        if resolved is None:
            return None
        if resolved not in self._p90:
            ids = self._timed_on
            values = [r.latency_s for (task, m), r in self._records.items()
                      if m == resolved and r.latency_s is not None
                      and (ids is None or task in ids)]  # fmt: skip
            self._p90[resolved] = p90(values)
        return self._p90[resolved]

    def priced(self, model: str) -> bool:
        """Whether the dataset knows what ``model``'s answers cost (recorded, or a list price)."""
        return model in self._prices or model not in self._unpriced

    @property
    def _unpriced(self) -> frozenset[str]:
        return frozenset(m for (_, m), r in self._records.items() if r.cost_usd is None)

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
        index = record.turn_index(request.reask, request.sample)
        text, confidence = record.answer(request.reask, request.sample)
        if not request.confidence and record.confidence_is_extra:
            confidence = None  # not paid for
        cost = self._cost(record, index, request.confidence, request.price, self._prices.get(model))
        cost = self._reprice(model, record, cost)
        return Response(
            text=text,
            model=model,
            usage=record.usage,
            cost_usd=cost,
            latency_s=record.latency_s,
            confidence=confidence,
        )

    def _reprice(self, model: str, record: Recorded, cost: float) -> float:
        reprice = self._repriced.get(model)
        return cost if reprice is None else reprice(record.usage, cost)

    @staticmethod
    def _cost(
        record: Recorded,
        index: int,
        confidence: bool,
        override: Price | None,
        listed: Price | None,
    ) -> float:
        """The tier's price override first, then the recorded cost, then the listed price."""
        if override is not None:
            return override.cost(record.usage)
        found = record.recorded_cost(index, confidence=confidence)
        if found is not None:
            return float(found)
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
        answer_cost_usd=row.get("answer_only_cost_usd"),
        alt_costs=tuple(a.get("answer_only_cost_usd", a.get("cost_usd")) for a in alts),
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
