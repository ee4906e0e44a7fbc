"""What-if batch pricing: a replay whose calls to some models cost the provider's batch price.

Providers run batch-API calls at about half price. ``cascade bench --batch-tier MODEL`` replays
each ladder a second time with MODEL's calls priced so: at litellm's batch price where its cost
map knows one (the recorded cost scaled by the batch price over the call price, for the call's
own tokens), otherwise at ``--batch-discount`` of the recorded cost. Nothing else changes: the
same answers, checks and decisions, so the pass rate is the synchronous ladder's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cascade.backends.replay import ReplayBackend
from cascade.bench.dataset import Dataset
from cascade.errors import ConfigError
from cascade.types import Price, Usage

__all__ = ["BatchRate", "batch_rates", "priced_as_batch"]


@dataclass(frozen=True, slots=True)
class BatchRate:
    """How one model's calls are priced as batch calls."""

    model: str
    prices: tuple[Price, Price] | None
    """(per call, per batch call) from litellm's cost map; ``None`` where it has none."""
    discount: float

    def cost(self, usage: Usage, recorded: float) -> float:
        """What a call that cost ``recorded`` costs as a batch call."""
        if self.prices is not None:
            full = self.prices[0].cost(usage)
            if full > 0:
                return recorded * self.prices[1].cost(usage) / full
        return recorded * self.discount

    def source(self) -> str:
        """Where the batch price comes from, for the report."""
        if self.prices is None:
            return f"{self.discount:.0%} of the recorded cost (the batch discount)"
        return (f"litellm's batch price: ${self.prices[1].input_usd_per_mtok:g}/"
                f"${self.prices[1].output_usd_per_mtok:g} per Mtok")  # fmt: skip


def batch_rates(
    models: Sequence[str], replay: ReplayBackend, discount: float
) -> dict[str, BatchRate]:
    """The batch rate of each model named, by the dataset's name for it."""
    if not 0.0 < discount <= 1.0:
        raise ConfigError(f"--batch-discount must be above 0 and at most 1, not {discount:g}")
    from cascade.backends.litellm import batch_prices  # noqa: PLC0415  # litellm stays lazy

    rates = {}
    for model in models:
        resolved = replay.resolve(model)
        if resolved is None:
            raise ConfigError(f"--batch-tier {model}: {replay.name} has no such model; it has "
                              f"{', '.join(sorted(replay.models))}")  # fmt: skip
        rates[resolved] = BatchRate(resolved, batch_prices(resolved), discount)
    return rates


def priced_as_batch(data: Dataset, rates: Mapping[str, BatchRate]) -> Dataset:
    """The dataset with the calls of the models in ``rates`` costing their batch price."""

    def priced(costs: Mapping[tuple[str, str], float]) -> dict[tuple[str, str], float]:
        return {
            (task_id, model): cost if model not in rates
            else rates[model].cost(data.backend.record(task_id, model).usage, cost)
            for (task_id, model), cost in costs.items()
        }  # fmt: skip

    backend = data.backend.repriced({model: rate.cost for model, rate in rates.items()})
    return dataclasses.replace(
        data, backend=backend, cost=priced(data.cost), confidence_cost=priced(data.confidence_cost)
    )
