"""Fit a policy's start-tier router on a recorded dataset's training tasks, and its threshold.

The label of tier k on a task is whether the tier, alone, accepts the task's recorded answer
under the policy's gates (its checks and re-asks, replayed). The threshold is chosen on the
training tasks alone, from out-of-fold chances (each task's chance comes from a router fit on
the other folds, so it is not its own label that sets it): the cheapest threshold whose replay
passes as many training tasks as the policy without a router. The router kept is then fit on
every training task. This is a choice made on training data, not a certified bound: check it
on held-out tasks (``cascade bench --split held-out``).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from cascade.bench.dataset import Dataset
from cascade.bench.evaluate import score_policy
from cascade.engine import Cascade, Plan, Route, first_messages
from cascade.enums import Status
from cascade.route.router import Router, fit_router, start_at
from cascade.types import Task

__all__ = ["Fitted", "fit"]

THRESHOLDS = tuple(round(0.05 * n, 2) for n in range(1, 20))
FOLDS = 5


@dataclass(frozen=True)
class Fitted:
    """A router, its threshold, and what the threshold was chosen on."""

    router: Router
    threshold: float
    figures: dict[str, Any]


def fit(data: Dataset, cascade: Cascade, train: Collection[str]) -> Fitted:
    """Fit ``cascade``'s router on the ``train`` tasks of ``data`` and choose its threshold."""
    plan = cascade.plan
    tasks = [t for t in data.tasks if t.id in set(train)]
    rows = [(t, (*plan.examples, *first_messages(t, plan.prompt))) for t in tasks]
    models = tuple(tier.model for tier in plan.tiers)
    passed = [asyncio.run(_passes(data, cascade, index, tasks)) for index in range(len(models))]
    chances: dict[str, list[float]] = {}
    for fold in range(FOLDS):
        inside = [i for i in range(len(rows)) if i % FOLDS != fold]
        outside = [i for i in range(len(rows)) if i % FOLDS == fold]
        if not inside or not outside:
            continue
        router = fit_router(models, [rows[i] for i in inside],
                            [[labels[i] for i in inside] for labels in passed])  # fmt: skip
        for i, found in zip(outside, router.chances([rows[i] for i in outside]), strict=True):
            chances[tasks[i].id] = found
    subset = data.subset({t.id for t in tasks})
    plain = _replay(subset, cascade, None)
    tried = {th: _replay(subset, cascade, start_at(plan.route, len(models),
                                                   lambda t, _m: chances[t.id], th))
             for th in THRESHOLDS}  # fmt: skip
    keep = [th for th, s in tried.items() if s[0] >= plain[0] and s[1] < plain[1]]
    threshold = min(keep, key=lambda th: (tried[th][1], th)) if keep else 0.0
    figures = {
        "train_tasks": len(tasks),
        "pass_share_by_tier": {m: round(sum(p) / max(1, len(p)), 4)
                               for m, p in zip(models, passed, strict=True)},
        "without_router": {"passed": plain[0], "cost_usd": round(plain[1], 8)},
        "with_router": None if not keep else
        {"passed": tried[threshold][0], "cost_usd": round(tried[threshold][1], 8)},
    }  # fmt: skip
    return Fitted(fit_router(models, rows, passed), threshold, figures)


async def _passes(data: Dataset, cascade: Cascade, index: int, tasks: list[Task]) -> list[bool]:
    """Whether tier ``index`` alone accepts each task (its checks and re-asks, replayed)."""
    tier = cascade.plan.tiers[index]
    alone = dataclasses.replace(cascade.plan, ladder=(tier,), route=None)
    runner = Cascade(alone, settings=cascade.settings)
    outcomes = await asyncio.gather(*(runner.arun(task) for task in tasks))
    return [o.status is Status.ACCEPTED for o in outcomes]


def _replay(data: Dataset, cascade: Cascade, route: Route | None) -> tuple[int, float]:
    """Tasks passed and cost of the cascade on ``data``, with ``route`` instead of its own."""
    plan: Plan = cascade.plan if route is None else dataclasses.replace(cascade.plan, route=route)
    score = asyncio.run(score_policy(data, {"*": Cascade(plan, settings=cascade.settings)}))
    return score.passed, score.cost_usd
