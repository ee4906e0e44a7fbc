"""What a policy's ``[audit]`` asks for, which accepted answers it samples, and the interval.

The sample is stratified by task type and tier and seeded: an accepted answer is audited when
a hash of the seed, its task type, its tier and its task id falls below ``share``. So every
stratum is sampled at the same rate, a resumed run samples the same tasks, and the decision
can be made again from the store alone.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cascade.types import HUMAN, Price

__all__ = ["AuditPlan", "audited_tiers", "proportion", "sampled", "wilson"]


@dataclass(frozen=True, slots=True)
class AuditPlan:
    """One task type's audit: the share sampled, and who answers or judges again."""

    share: float
    model: str
    """The audit model, or the judge's."""
    judge: bool = False
    rubric: str = ""
    compare: str = "auto"
    max_cost_usd: float | None = None
    seed: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    price: Price | None = None


def audited_tiers(plan: AuditPlan, models: Sequence[str]) -> int:
    """How many of a ladder's tiers, from the first, are audited; ``models``: the tiers' models.

    Every tier below the top model tier is. The top tier is too when the audit model is another
    model (a judge, or the model that served the traffic a cheaper ladder now serves): asking
    the top tier's own model again would only ask it twice. Names compare without their
    provider prefix (``openai/gpt-4o`` is ``gpt-4o``). A person's tier is never audited.
    """
    top = max((i for i, model in enumerate(models) if model != HUMAN), default=-1)
    if top < 0:
        return 0
    same = models[top].rsplit("/", 1)[-1] == plan.model.rsplit("/", 1)[-1]  # openai/x is x
    return top if same else top + 1


def sampled(plan: AuditPlan, task_type: str, tier: int, task_id: str) -> bool:
    """Whether the answer ``tier`` gave ``task_id`` is in the audit sample."""
    if plan.share <= 0.0:
        return False
    key = f"{plan.seed}\x00{task_type}\x00{tier}\x00{task_id}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") < plan.share * 2**64


def wilson(hits: int, trials: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95 % by default); (0, 1) with no trials."""
    if trials <= 0:
        return 0.0, 1.0
    p = hits / trials
    centre = p + z * z / (2 * trials)
    spread = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    denominator = 1 + z * z / trials
    return max(0.0, (centre - spread) / denominator), min(1.0, (centre + spread) / denominator)


def proportion(name: str, hits: int, trials: int) -> dict[str, Any]:
    """``{name}_rate`` and ``{name}_ci95`` (its Wilson 95 % interval), rounded for a report."""
    low, high = wilson(hits, trials)
    rate = round(hits / trials, 6) if trials else 0.0
    return {f"{name}_rate": rate, f"{name}_ci95": [round(low, 6), round(high, 6)]}
