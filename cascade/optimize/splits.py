"""Check the optimizer's guarantee by simulation: many random splits of one recorded suite.

Each split holds out a share of every kind, orders and certifies candidates on the rest exactly
as ``cascade optimize`` does (:func:`cascade.optimize.search.ladders`, then
:func:`cascade.optimize.certify.certify`), and scores the chosen mix on the held-out tasks by
the same simulation the engine replay was checked against.

The guarantee is judged against the truth: the chosen mix's pass rate on the *whole* suite
stands in for its rate on the population the tasks are drawn from. Over all splits, certified
or not, the share in which a mix was certified and its true rate is below the target
(:func:`failure_share`) must not exceed ``1 - confidence``. A held-out sample alone is too
small and noisy to judge that (its interval is wide), so it is not the test.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import beta

from cascade.bench.evaluate import ReplayScore
from cascade.optimize.baselines import best_and_cheapest_equal
from cascade.optimize.certify import CERTIFY, SELECT, certify
from cascade.optimize.pipeline import selection_parts
from cascade.optimize.routing import THRESHOLDS, Rows, kind_router
from cascade.optimize.search import Ladders, Routing, ladders
from cascade.optimize.table import Ints, KindTable

__all__ = ["SplitResult", "failure_share", "run_split", "upper_bound"]

HELD = CERTIFY + 1
"""The part of a split's tasks that is held out (after the selection folds and certification)."""


def upper_bound(right: int, total: int, level: float = 0.95) -> float:
    """The two-sided ``level`` Clopper-Pearson upper bound of a pass rate.

    >>> round(upper_bound(90, 100), 4), upper_bound(10, 10)
    (0.951, 1.0)
    """
    if right >= total:
        return 1.0
    return float(beta.ppf(1 - (1 - level) / 2, right + 1, total - right))


@dataclass(frozen=True, slots=True)
class SplitResult:
    """What one split chose, and how it did on its held-out tasks."""

    certified: bool
    target: float
    """The target of this split: the one asked for, or the one its selection part set."""
    held_rate: float
    held_upper: float
    held_cost: float
    best_rate: float
    """The held-out pass rate of the model best on the training part, alone."""
    best_cost: float
    oracle_cost: float
    true_rate: float = 0.0
    """The chosen mix's pass rate on every task of the suite: the population's, as near as the
    suite can tell."""
    equal_model: str = ""
    """The cheapest model whose held-out pass rate is within the held-out best model's 95 %
    interval, as ``cascade optimize`` reports it (see :mod:`cascade.optimize.baselines`)."""
    equal_rate: float = 0.0
    equal_cost: float = 0.0
    """That model's held-out pass rate and cost per task, alone."""

    @property
    def failed(self) -> bool:
        """A mix was certified, and its true pass rate is below the target."""
        return self.certified and self.true_rate < self.target - 1e-12


def failure_share(results: Sequence[SplitResult]) -> float:
    """The share of all splits (certified or not) whose certified mix misses the target.

    The guarantee says it is at most ``1 - confidence``, up to the noise of the splits drawn.
    """
    return sum(r.failed for r in results) / len(results) if results else 0.0


def _parts(count: int, rng: np.random.Generator, holdout: float, select: float) -> Ints:
    order = rng.permutation(count)
    held = order[: round(holdout * count)]
    rest = order[held.size :]
    parts = np.full(count, HELD, dtype=np.intp)
    parts[rest] = selection_parts(rest.size, rng, select)
    return parts


def run_split(
    tables: Mapping[str, KindTable],
    target: float | None,
    confidence: float,
    rng: np.random.Generator,
    *,
    holdout: float = 0.3,
    select: float = 0.5,
    rows: Mapping[str, Rows] | None = None,
    any_last: bool = True,
) -> SplitResult:
    """One random split: choose on its training part, score the choice held out.

    With no ``target``, each split's selection part sets its own, as ``--target-pass-rate auto``.
    With ``rows`` (per kind, each task of its table and what it sends), ladders may also have a
    start-tier router, fit on the split's selection part, as ``cascade optimize`` fits it.
    ``any_last`` false ends ladders only at strong models (``--strong-last-tier``).
    """
    found: dict[str, Ladders] = {}
    parts: dict[str, Ints] = {}
    for kind, table in tables.items():
        parts[kind] = _parts(len(table.task_ids), rng, holdout, select)
        routing = None
        if rows is not None:
            routing = Routing(kind_router(table, rows[kind], parts[kind]).chances, THRESHOLDS)
        last = list(range(len(table.models))) if any_last else None  # as optimize's default
        found[kind] = ladders(table, parts[kind], choose_on=SELECT, last=last, routing=routing)
    result = certify(found, target, confidence)
    chosen = result.chosen or result.best_bound
    held = sum(int(f.sizes[HELD]) for f in found.values())
    right = cost = everywhere = 0.0
    if chosen is not None:
        right = sum(float(found[k].rights[i, HELD]) for k, i in chosen.picks.items())
        cost = sum(float(found[k].costs[i, HELD]) for k, i in chosen.picks.items())
        everywhere = sum(float(found[k].rights[i].sum()) for k, i in chosen.picks.items())
    total = sum(int(f.sizes.sum()) for f in found.values())
    best_right, best_cost, oracle = _models_held(tables, parts)
    equal = _cheapest_equal_held(tables, parts)
    return SplitResult(
        certified=result.chosen is not None,
        target=result.target,
        held_rate=right / max(1, held),
        held_upper=upper_bound(round(right), held),
        held_cost=cost / max(1, held),
        best_rate=best_right / max(1, held),
        best_cost=best_cost / max(1, held),
        oracle_cost=oracle / max(1, held),
        true_rate=everywhere / max(1, total),
        equal_model=equal[0],
        equal_rate=equal[1].pass_rate,
        equal_cost=equal[1].cost_per_task,
    )


def _models_held(
    tables: Mapping[str, KindTable], parts: Mapping[str, Ints]
) -> tuple[float, float, float]:
    """Held out: the right answers and cost of the model best on training, and the oracle's cost.

    Over every kind, the single model is the same one (the best overall on the training parts);
    the oracle is the cheapest right model per task (the cheapest where none is right).
    """
    models = next(iter(tables.values())).models
    train = np.zeros(len(models))
    held_right = np.zeros(len(models))
    held_cost = np.zeros(len(models))
    oracle = 0.0
    for kind, table in tables.items():
        index = [models.index(m) for m in table.models]
        training, held = parts[kind] != HELD, parts[kind] == HELD
        train[index] += table.correct[:, training].sum(axis=1)
        held_right[index] += table.correct[:, held].sum(axis=1)
        held_cost[index] += table.cost[:, held].sum(axis=1)
        costs = np.where(table.correct[:, held], table.cost[:, held], np.inf)
        cheapest = costs.min(axis=0)
        fallback = table.cost[:, held].min(axis=0)
        oracle += float(np.where(np.isfinite(cheapest), cheapest, fallback).sum())
    best = int(np.argmax(train))
    return float(held_right[best]), float(held_cost[best]), oracle


def _cheapest_equal_held(
    tables: Mapping[str, KindTable], parts: Mapping[str, Ints]
) -> tuple[str, ReplayScore]:
    """Held out: the cheapest model as good as the best (in its interval), and its score.

    Only the models of every kind's table are scored, as ``cascade bench`` scores only the
    models that answered every task.
    """
    shared = set.intersection(*(set(t.models) for t in tables.values()))
    scores = {}
    for model in sorted(shared):
        rights: list[bool] = []
        costs: list[float] = []
        for kind, table in tables.items():
            row, held = table.models.index(model), parts[kind] == HELD
            rights += table.correct[row, held].tolist()
            costs += table.cost[row, held].tolist()
        scores[model] = ReplayScore.of(rights, costs, [0.0] * len(rights))
    cheapest = best_and_cheapest_equal(scores)[1]
    return cheapest, scores[cheapest]
