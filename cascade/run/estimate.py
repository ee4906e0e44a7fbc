"""What a tasks file would cost under its policies, estimated before any call (``--dry-run``).

Per task type, from each task's prompt tokens (counted as the engine counts them) and each
tier's price (its own, else the backend's quote):

- the **floor**: every task accepted by its first tier, with answers of
  :data:`TYPICAL_ANSWER_TOKENS` tokens (fewer when the tier allows fewer): what the job costs if
  the cheap tier does all the work, and never more than the worst case;
- the **worst case**: every task climbs every tier, with every re-ask, each answer as long as
  the tier allows; capped per task by the policy's ``max_cost_per_task_usd``. A re-ask sends the
  conversation so far, so its prompt is counted with the earlier answers in it.

Validators that call models (a judge, a vote) are not included, and neither are retries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from cascade.engine import first_messages
from cascade.engine.costcap import answer_tokens
from cascade.errors import TaskError
from cascade.policy import Policy, PolicySet
from cascade.run.tasks_file import Line
from cascade.tokens import count_tokens
from cascade.types import Price, Quote, Tier

__all__ = ["TYPICAL_ANSWER_TOKENS", "CostEstimate", "estimate_cost"]

Quoter = Callable[[str], Quote | None]

TYPICAL_ANSWER_TOKENS = 256
"""The answer length the floor assumes."""


@dataclass
class _Kind:
    tasks: int = 0
    prompt_tokens: int = 0
    floor_usd: float = 0.0
    worst_usd: float = 0.0


@dataclass
class CostEstimate:
    """The estimate, per task type, and what could not be estimated."""

    kinds: dict[str, _Kind] = field(default_factory=dict)
    unpriced: set[str] = field(default_factory=set)
    skipped: int = 0
    """Lines that are not tasks, or that no policy serves."""

    def lines(self) -> list[str]:
        """The estimate as text for people."""
        out = []
        for kind, k in sorted(self.kinds.items()):
            out.append(
                f"{kind}: {k.tasks} tasks, {k.prompt_tokens} prompt tokens;"
                f" floor ${k.floor_usd:.6f}, worst case ${k.worst_usd:.6f}"
            )
        floor = sum(k.floor_usd for k in self.kinds.values())
        worst = sum(k.worst_usd for k in self.kinds.values())
        out.append(f"total: floor ${floor:.6f} (every task accepted at its first tier, answers"
                   f" of ~{TYPICAL_ANSWER_TOKENS} tokens), worst case ${worst:.6f} (every tier,"
                   " every re-ask, the longest answers, within each task's budget)")  # fmt: skip
        if self.skipped:
            out.append(f"{self.skipped} lines are not tasks any policy serves (not counted)")
        if self.unpriced:
            out.append(f"no price known for {', '.join(sorted(self.unpriced))} (counted as free)")
        out.append("no model was called")
        return out


def estimate_cost(
    lines: Iterable[Line], policies: PolicySet, quoter: Callable[[str], Quote | None] | None
) -> CostEstimate:
    """Estimate the cost of every task in ``lines`` under ``policies``."""
    estimate = CostEstimate()
    for line in lines:
        policy = None if line.task is None else policies.for_task(line.task)
        if line.task is None or policy is None:
            estimate.skipped += 1
            continue
        try:
            messages = first_messages(line.task, policy.plan.prompt)
        except TaskError:
            estimate.skipped += 1
            continue
        tokens = count_tokens(messages)
        kind = estimate.kinds.setdefault(policy.task_type, _Kind())
        kind.tasks += 1
        kind.prompt_tokens += tokens
        floor, worst = _task_costs(policy, tokens, quoter, estimate)
        kind.floor_usd += floor
        kind.worst_usd += worst
    return estimate


def _task_costs(
    policy: Policy, tokens: int, quoter: Quoter | None, estimate: CostEstimate
) -> tuple[float, float]:
    """One task's floor and worst case; the floor is never above the worst case.

    The floor's answer is no longer than the first tier lets it be, and both are capped by the
    task's budget (the engine lowers ``max_tokens`` or refuses a call rather than exceed it).
    """
    tiers = [t for t in policy.ladder if not t.is_human]
    if not tiers:
        return 0.0, 0.0
    worst = 0.0
    for tier in tiers:
        price, longest = _price(tier, quoter, estimate), _longest(tier, quoter)
        prompt = tokens
        for _ask in range(tier.reasks + 1):
            worst += _cost(price, prompt, longest)
            prompt += longest  # a re-ask carries the answer it asks about
    budget = policy.plan.budget_usd
    if budget is not None:
        worst = min(worst, budget)
    first = tiers[0]
    typical = min(TYPICAL_ANSWER_TOKENS, _longest(first, quoter))
    return min(_cost(_price(first, quoter, estimate), tokens, typical), worst), worst


def _cost(price: Price | None, prompt: int, answer: int) -> float:
    if price is None:
        return 0.0
    return (prompt * price.input_usd_per_mtok + answer * price.output_usd_per_mtok) / 1e6


def _price(
    tier: Tier, quoter: Callable[[str], Quote | None] | None, estimate: CostEstimate
) -> Price | None:
    """The dearest price among the tier's models (its own price, else the backend's)."""
    if tier.price is not None:
        return tier.price
    prices = []
    for model in tier.models:
        quote = quoter(model) if quoter is not None else None
        if quote is None:
            estimate.unpriced.add(model)
        else:
            prices.append(quote.price)
    if not prices:
        return None
    return max(prices, key=lambda p: (p.output_usd_per_mtok, p.input_usd_per_mtok))


def _longest(tier: Tier, quoter: Callable[[str], Quote | None] | None) -> int:
    """The longest answer any model of the tier may bring (as the pre-call cap reckons it)."""
    return max(answer_tokens(tier, quoter(m) if quoter else None) for m in tier.models)
