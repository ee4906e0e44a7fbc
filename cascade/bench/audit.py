"""What a shadow audit would have measured on a replay, and what it would have cost.

``cascade bench --audit-share S --audit-model M`` samples each ladder's accepted answers of the
tiers below its top (and of the top, when M is another model) as a run's ``[audit]`` would
(the same seeded, stratified draw), serves M's recorded answer to each, and compares the two as
the agreement validator does. Beside the disagreement rate, a replay knows the truth: how many
of the audited answers were wrongly accepted, and how many of those the audit disagreed with
(caught).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from cascade.audit.plan import AuditPlan, audited_tiers, proportion, sampled
from cascade.bench.dataset import Dataset
from cascade.enums import Status
from cascade.errors import ConfigError
from cascade.outcome import Outcome
from cascade.types import Task, Tier
from cascade.validators.agreement import Compare, compare_mode, same_answers

__all__ = ["AuditFigures", "replay_audit"]


@dataclass
class AuditFigures:
    """One stratum's audit: answers audited, disagreed with, wrongly accepted, caught, cost."""

    audited: int = 0
    disagreed: int = 0
    wrong: int = 0
    caught: int = 0
    cost_usd: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """The figures with the disagreement and false-accept rates and their intervals."""
        return {
            "audited": self.audited,
            "disagreed": self.disagreed,
            **proportion("disagreement", self.disagreed, self.audited),
            "wrongly_accepted": self.wrong,
            **proportion("false_accept", self.wrong, self.audited),
            "caught": self.caught,
            "cost_usd": round(self.cost_usd, 8),
        }


def replay_audit(
    data: Dataset,
    outcomes: Sequence[Outcome],
    ladders: Mapping[str, Sequence[Tier]],
    plan: AuditPlan,
) -> dict[str, Any]:
    """The audit ``plan`` of the replayed ``outcomes``, per task type and tier.

    ``ladders`` gives each task type's ladder (``"*"``: any type); its top model tier is audited
    only when the audit model is another model (:func:`cascade.audit.plan.audited_tiers`).
    """
    model = data.backend.resolve(plan.model)
    if model is None:
        raise ConfigError(f"--audit-model {plan.model}: {data.name} has no such model")
    tasks: dict[str, Task] = {task.id: task for task in data.tasks}
    found: dict[str, AuditFigures] = {}
    for outcome in outcomes:
        task, tier = tasks.get(outcome.task_id), outcome.tier
        if outcome.status is not Status.ACCEPTED or tier is None or task is None:
            continue
        ladder = ladders.get(task.type) or ladders.get("*") or ()
        end = audited_tiers(plan, [t.model for t in ladder])
        if tier >= end or not sampled(plan, task.type, tier, task.id):
            continue
        if (task.id, model) not in data.cost:
            continue  # the audit model was not recorded on this task
        figures = found.setdefault(f"{task.type} tier {tier}", AuditFigures())
        output = outcome.output or ""
        heard = data.backend.record(task.id, model).answer(0, 0)[0]
        mode = compare_mode(cast("Compare", plan.compare), task, output, heard)
        agreed = same_answers(output, heard, mode)
        wrong = not data.is_right(task.id, outcome.model, outcome.output)
        figures.audited += 1
        figures.disagreed += not agreed
        figures.wrong += wrong
        figures.caught += wrong and not agreed
        figures.cost_usd += data.backend.cost_of(task.id, model)
    total = AuditFigures()
    for figures in found.values():
        for name in ("audited", "disagreed", "wrong", "caught", "cost_usd"):
            setattr(total, name, getattr(total, name) + getattr(figures, name))
    return {
        "model": model,
        "share": plan.share,
        "seed": plan.seed,
        "by_tier": {name: figures.to_json() for name, figures in sorted(found.items())},
        "total": total.to_json(),
    }
