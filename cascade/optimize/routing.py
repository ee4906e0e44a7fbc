"""The start-tier router ``cascade optimize`` may give a ladder, fit so the choice stays certified.

For each model of a kind, a logistic regression on the task's cheap features (see
:mod:`cascade.route.features`) predicts whether the model's first answer is right (the label
gold gives on the training tasks: what skipping a tier trades, cost on one side and a wrong
answer it might have accepted on the other). Its chances enter the search as a threshold per
ladder (see :func:`cascade.optimize.search.ladders`), so a routed ladder is one more candidate
of the sequence that :mod:`cascade.optimize.certify` orders and tests.

What keeps the guarantee: the router is fit on the *selection* part only. The certification
part's chances come from that router, which never saw those tasks, and it is that same router
that is written beside the policy. On the selection part, each fold's chances come from a
router fit on the other folds, so the candidates are ordered by what a router does on tasks it
did not learn from, not by how well it remembers them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from cascade.optimize.certify import SELECT
from cascade.optimize.search import Ladders, Routing, ladders
from cascade.optimize.table import Floats, Ints, KindTable
from cascade.route.features import features
from cascade.route.router import Router, fit_matrix
from cascade.types import Message, Task

__all__ = [
    "THRESHOLDS",
    "KindRouter",
    "Rows",
    "kind_router",
    "ladder_router",
    "per_task",
    "rescored",
    "rows_of",
]

THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.6)
"""The thresholds tried: a task skips a tier whose chance of a right answer is below one."""

Rows = Sequence[tuple[Task, tuple[Message, ...]]]


@dataclass(frozen=True)
class KindRouter:
    """One kind's router (every model of its table) and the chances the search uses."""

    router: Router
    """Fit on the selection part: the router the certification part tests, and the one written."""
    chances: Floats
    """Per (model, task): out of fold on the selection part, :attr:`router`'s elsewhere."""
    written: Floats
    """Per (model, task): :attr:`router`'s own, as a replay of the written policy sees them."""


def kind_router(table: KindTable, rows: Rows, parts: Ints) -> KindRouter:
    """Fit ``table``'s router on its selection folds; ``rows[t]``: task ``t``, what it sends."""
    labels = table.correct
    matrix = features(rows)
    chances = np.zeros(labels.shape, dtype=np.float64)
    selecting = np.isin(parts, SELECT)
    for fold in SELECT:
        inside = np.flatnonzero(selecting & (parts != fold))
        outside = np.flatnonzero(parts == fold)
        if inside.size and outside.size:
            fitted = fit_matrix(table.models, matrix[inside], labels[:, inside].tolist())
            chances[:, outside] = np.asarray(fitted.chances_of(matrix[outside])).T
    inside = np.flatnonzero(selecting)
    router = fit_matrix(table.models, matrix[inside], labels[:, inside].tolist())
    written = np.asarray(router.chances_of(matrix), dtype=np.float64).T
    chances[:, ~selecting] = written[:, ~selecting]
    return KindRouter(router, chances, written)


def ladder_router(found: Ladders, index: int, router: Router) -> Router:
    """The router of ladder ``index``: its tiers' models' regressions, in the ladder's order.

    The last tier's is a constant: a task never starts past the last tier, so it is never read.
    """
    tiers = [found.gates[g].model for g in found.tiers[index, :2] if g >= 0]
    width = len(router.weights[0])
    return Router(
        tuple(found.table.models[m] for m in [*tiers, int(found.tiers[index, 2])]),
        (*(router.weights[m] for m in tiers), (0.0,) * width),
        (*(router.intercepts[m] for m in tiers), 0.0),
    )


def rescored(found: Ladders, index: int, chances: Floats) -> tuple[float, float]:
    """Ladder ``index``'s right answers and cost over every part, under other ``chances``.

    ``cascade optimize`` checks its simulation against a replay of the written policy, whose
    router reads the selection part in sample: this is the simulation of that replay.
    """
    rights, costs = per_task(found, index, chances)
    return float(rights.sum(dtype=np.float64)), float(costs.sum(dtype=np.float64))


def per_task(found: Ladders, index: int, chances: Floats | None) -> tuple[Floats, Floats]:
    """Ladder ``index``'s simulated right answer (1 or 0) and cost on each task of its table.

    ``chances`` are its router's, as the replayed policy sees them (``None``: no router).
    Each task is scored as a part of its own, so the figures can be set beside a replay's
    task by task.
    """
    threshold = found.threshold(index)
    gates = [found.gates[g] for g in found.tiers[index, :2] if g >= 0]
    top = int(found.tiers[index, 2])
    parts = np.arange(len(found.table.task_ids), dtype=np.intp)
    routing = None
    if threshold > 0 and chances is not None:
        routing = Routing(chances, [threshold])
    again = ladders(
        found.table, parts, choose_on=tuple(range(parts.size)), last=[top], gates=gates,
        any_order=True, routing=routing,
    )  # fmt: skip
    want = [*range(len(gates)), *[-1] * (2 - len(gates)), top]
    rows = [r for r in range(len(again.tiers)) if again.tiers[r].tolist() == want]
    # Where these chances skip no task, the routed ladder is the unrouted one, left out as such.
    row = max(rows, key=again.threshold)
    return np.asarray(again.rights[row], np.float64), np.asarray(again.costs[row], np.float64)


def rows_of(
    tasks: Mapping[str, Task], ids: Sequence[str], messages: Callable[[Task], tuple[Message, ...]]
) -> Rows:
    """Each task of ``ids`` with what its first ask sends (``messages``), in that order."""
    return [(tasks[i], messages(tasks[i])) for i in ids]
