"""What a record job would cost, before any call: ``cascade record --dry-run``.

Each pair is one task of a one-tier policy, so ``cascade run``'s estimate
(:mod:`cascade.run.estimate`) gives, per model, the **floor** (every answer of a typical
length) and the **worst case** (every answer as long as the tier allows). A batch tier's
calls are priced at the batch price, as they are charged: litellm's batch price for the
model, or the tier's ``batch_discount`` share of its price.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from cascade.policy import Policy, PolicySet, load_policies
from cascade.run.estimate import CostEstimate, estimate_cost
from cascade.run.tasks_file import read_lines
from cascade.traffic.record_job import RecordJob
from cascade.types import Price, Quote, Tier

__all__ = ["estimate_record"]

Quoter = Callable[[str], Quote | None]
BatchPrice = Callable[[str], Price | None]
"""litellm's batch price of a model, when its cost map has one."""


def estimate_record(job: RecordJob, quote: Quoter | None, batch_price: BatchPrice) -> CostEstimate:
    """The floor and worst case of asking every pair of ``job``; no model is called."""
    policies = load_policies(job.policies)
    priced = {p.task_type: _batch_priced(p, quote, batch_price) for p in policies}
    return estimate_cost(read_lines(job.tasks), PolicySet(priced, None, job.policies), quote)


def _batch_priced(policy: Policy, quote: Quoter | None, batch_price: BatchPrice) -> Policy:
    """``policy`` with each batch tier's price set to what its calls are charged."""
    tiers = tuple(_tier_price(t, quote, batch_price) for t in policy.ladder)
    return dataclasses.replace(policy, plan=dataclasses.replace(policy.plan, ladder=tiers))


def _tier_price(tier: Tier, quote: Quoter | None, batch_price: BatchPrice) -> Tier:
    if tier.batch is None:
        return tier
    if tier.price is None and (listed := batch_price(tier.model)) is not None:
        return dataclasses.replace(tier, price=listed)
    full = tier.price
    if full is None and quote is not None and (found := quote(tier.model)) is not None:
        full = found.price
    if full is None:
        return tier  # unpriced: the estimate says so
    share = tier.batch.discount
    return dataclasses.replace(
        tier, price=Price(full.input_usd_per_mtok * share, full.output_usd_per_mtok * share)
    )
