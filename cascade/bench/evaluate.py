"""Score single models, the oracle and ladders on a recorded dataset.

``pass_rate`` is judged against the dataset's own gold grading, which the validators never see.
A ladder passes a task only when it accepted an answer and that answer is right: a task that
ended ``exhausted``, ``budget_exhausted``, ``failed`` or ``needs_review`` is a failure, whatever
its best rejected answer. ``delivered_rate`` counts apart the tasks whose delivered answer
(accepted, or else the best rejected one kept) is right.

Models whose cost the dataset does not know are scored apart (:func:`score_unpriced`) and left
out of the model rows and the oracle, since a cost of $0 would make them look free.

``false_accept_rate`` is the share of wrong answers the validators accepted, and
``false_reject_rate`` the share of right answers they rejected, over every answer the ladder
judged (a hedge's losing answer was never judged, and is left out).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cascade.audit.plan import AuditPlan
from cascade.bench.audit import replay_audit
from cascade.bench.dataset import Dataset
from cascade.bench.metrics import bootstrap
from cascade.engine import Cascade
from cascade.enums import SIDE_CALLS, Decision, Status
from cascade.outcome import Outcome
from cascade.types import Task

__all__ = [
    "LadderScore",
    "ReplayScore",
    "answered",
    "score_ladder",
    "score_models",
    "score_oracle",
    "score_policy",
    "score_unpriced",
]


@dataclass(frozen=True, slots=True)
class ReplayScore:
    """Pass rate and cost over a dataset's tasks, with the per-task figures behind them."""

    tasks: int
    passed: int
    cost_usd: float
    latency_s: float
    """Mean seconds per task."""
    rights: tuple[bool, ...] = ()
    costs: tuple[float, ...] = ()
    """Per task, in the dataset's order: was the delivered answer right, and what it cost."""
    latencies: tuple[float, ...] = ()
    """Per task, in the dataset's order: the recorded seconds of the calls it made, in turn."""

    @classmethod
    def of(cls, rights: list[bool], costs: list[float], latencies: list[float]) -> ReplayScore:
        """A score from per-task figures."""
        mean = sum(latencies) / max(1, len(latencies))
        return cls(len(rights), sum(rights), sum(costs), mean, tuple(rights), tuple(costs),
                   tuple(latencies))  # fmt: skip

    def latency_quantile(self, share: float) -> float:
        """The task latency below which ``share`` of the tasks finished (0 with no tasks)."""
        if not self.latencies:
            return 0.0
        import numpy as np  # noqa: PLC0415  # bench only

        return float(np.quantile(np.asarray(self.latencies), share))

    @property
    def pass_rate(self) -> float:
        """Share of tasks answered correctly."""
        return self.passed / self.tasks if self.tasks else 0.0

    @property
    def cost_per_task(self) -> float:
        """Mean cost of one task in US dollars."""
        return self.cost_usd / self.tasks if self.tasks else 0.0

    def to_json(self) -> dict[str, Any]:
        """The keys ``cascade bench --json`` prints for a model or the oracle."""
        rate, cost = bootstrap(self.rights, self.costs)
        return {
            "pass_rate": round(self.pass_rate, 6),
            "pass_rate_ci95": rate.to_json(),
            "cost_usd": round(self.cost_usd, 8),
            "cost_per_task_usd": round(self.cost_per_task, 10),
            "cost_per_task_ci95": cost.to_json(),
            "latency_s": round(self.latency_s, 4),
            "latency_p50_s": round(self.latency_quantile(0.5), 4),
            "latency_p95_s": round(self.latency_quantile(0.95), 4),
        }


@dataclass(frozen=True, slots=True)
class LadderScore(ReplayScore):
    """A ladder's score, with where it accepted and how well its validators judged."""

    accepted_by_tier: tuple[int, ...] = ()
    reached_by_tier: tuple[int, ...] = ()
    """Tasks that tier was asked (a router or start rule may start a task past a tier)."""
    escalation_rate: float = 0.0
    false_accept_rate: float = 0.0
    false_reject_rate: float = 0.0
    statuses: Mapping[str, int] = field(default_factory=dict)
    delivered: int = 0
    """Tasks whose delivered answer is right, accepted or not (the best rejected one kept)."""
    audit: Mapping[str, Any] | None = None
    """What a shadow audit of the accepted answers would have found (``--audit-share``)."""

    @property
    def delivered_rate(self) -> float:
        """Share of tasks whose delivered answer is right, accepted or not."""
        return self.delivered / self.tasks if self.tasks else 0.0

    def to_json(self) -> dict[str, Any]:
        """The keys ``cascade bench --json`` prints for a ladder."""
        return (
            ReplayScore.to_json(self)
            | {
                "delivered_rate": round(self.delivered_rate, 6),
                "accepted_by_tier": list(self.accepted_by_tier),
                "reached_by_tier": list(self.reached_by_tier),
                "escalation_rate": round(self.escalation_rate, 6),
                "false_accept_rate": round(self.false_accept_rate, 6),
                "false_reject_rate": round(self.false_reject_rate, 6),
                "statuses": dict(self.statuses),
            }
            | ({"audit": dict(self.audit)} if self.audit is not None else {})
        )


def answered(data: Dataset) -> dict[str, int]:
    """How many of the dataset's tasks each model answered."""
    return {m: sum((task.id, m) in data.cost for task in data.tasks) for m in data.models}


def score_models(data: Dataset) -> dict[str, ReplayScore]:
    """Each priced model alone, on every task; a model that did not answer them all is left out.

    A run store often has some models for some task kinds only; scored on every task, such a
    model would look wrong and free where it was never asked. :func:`answered` says who.
    """
    return {m: s for m, s in _every_model(data).items() if m not in data.unpriced}


def score_unpriced(data: Dataset) -> dict[str, ReplayScore]:
    """The models whose cost is unknown, scored alone on every task (their cost means nothing)."""
    return {m: s for m, s in _every_model(data).items() if m in data.unpriced}


def _every_model(data: Dataset) -> dict[str, ReplayScore]:
    scores = {}
    count = len(data.tasks)
    for model in [m for m, n in answered(data).items() if n == count]:
        keys = [(task.id, model) for task in data.tasks]
        scores[model] = ReplayScore.of(
            [data.correct.get(key, False) for key in keys],
            [data.cost.get(key, 0.0) for key in keys],
            [data.latency.get(key, 0.0) for key in keys],
        )
    return scores


def score_oracle(data: Dataset) -> ReplayScore:
    """The cheapest priced model that was correct, per task; the cheapest where none was."""
    rights: list[bool] = []
    costs: list[float] = []
    latencies: list[float] = []
    priced = [m for m in data.models if m not in data.unpriced]
    for task in data.tasks:
        answered = [m for m in priced if (task.id, m) in data.cost]
        if not answered:
            rights.append(False)
            costs.append(0.0)
            latencies.append(0.0)
            continue
        right = [m for m in answered if data.correct.get((task.id, m), False)]
        pick = min(right or answered, key=lambda m: data.cost[(task.id, m)])
        rights.append(bool(right))
        costs.append(data.cost[(task.id, pick)])
        latencies.append(data.latency[(task.id, pick)])
    return ReplayScore.of(rights, costs, latencies)


async def score_ladder(data: Dataset, cascade: Cascade, *, concurrency: int = 64) -> LadderScore:
    """Replay every task through ``cascade`` and judge what it delivers against gold."""
    return await score_policy(data, {"*": cascade}, concurrency=concurrency)


async def score_policy(
    data: Dataset,
    cascades: Mapping[str, Cascade],
    *,
    concurrency: int = 64,
    audit: AuditPlan | None = None,
) -> LadderScore:
    """Replay every task through the cascade for its type (``"*"``: any type); judge against gold.

    A task whose type no cascade serves fails, and counts as wrong. With ``audit``, the score
    says what that shadow audit of the accepted answers would have found (see
    :mod:`cascade.bench.audit`).
    """
    limit = asyncio.Semaphore(concurrency)

    async def one(task: Task) -> Outcome:
        cascade = cascades.get(task.type) or cascades.get("*")
        if cascade is None:
            return Outcome.failed("bench", task, f"no policy serves task type {task.type!r}")
        async with limit:
            return await cascade.arun(task)

    outcomes = await asyncio.gather(*(one(task) for task in data.tasks))
    tiers = max(len(c.ladder) for c in cascades.values())
    score = _ladder_score(data, list(outcomes), tiers)
    if audit is None:
        return score
    ladders = {kind: cascade.ladder for kind, cascade in cascades.items()}
    return dataclasses.replace(score, audit=replay_audit(data, outcomes, ladders, audit))


def _ladder_score(data: Dataset, outcomes: list[Outcome], tiers: int) -> LadderScore:
    accepted_by_tier = [0] * tiers
    reached_by_tier = [0] * tiers
    verdicts: Counter[tuple[bool, bool]] = Counter()  # (answer correct, validators accepted)
    rights: list[bool] = []
    delivered = 0
    escalated = 0
    for outcome in outcomes:
        if outcome.status is Status.ACCEPTED and outcome.tier is not None:
            accepted_by_tier[outcome.tier] += 1
        good = data.is_right(outcome.task_id, outcome.model, outcome.output)
        delivered += good
        rights.append(good and outcome.status is Status.ACCEPTED)
        asked = {s.tier for s in outcome.steps if s.kind not in SIDE_CALLS}
        escalated += len(asked) > 1
        for tier in asked:
            reached_by_tier[tier] += 1
        for step in outcome.steps:
            if step.kind in SIDE_CALLS or step.decision is Decision.CANCEL:
                continue  # not an answer to the task, or a hedge's loser nobody judged
            if step.output is not None and step.model_served is not None:
                is_right = data.is_right(outcome.task_id, step.model_served, step.output)
                verdicts[(is_right, step.decision is Decision.ACCEPT)] += 1
    wrong = verdicts[(False, True)] + verdicts[(False, False)]
    right = verdicts[(True, True)] + verdicts[(True, False)]
    count = len(outcomes)
    costs = tuple(o.cost_usd for o in outcomes)
    return LadderScore(
        tasks=count,
        passed=sum(rights),
        cost_usd=sum(costs),
        latency_s=sum(o.latency_s for o in outcomes) / max(1, count),
        rights=tuple(rights),
        costs=costs,
        latencies=tuple(o.latency_s for o in outcomes),
        accepted_by_tier=tuple(accepted_by_tier),
        reached_by_tier=tuple(reached_by_tier),
        escalation_rate=escalated / max(1, count),
        false_accept_rate=verdicts[(False, True)] / wrong if wrong else 0.0,
        false_reject_rate=verdicts[(True, False)] / right if right else 0.0,
        statuses=dict(Counter(str(o.status) for o in outcomes)),
        delivered=delivered,
    )
