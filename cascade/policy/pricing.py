"""Tiers that cannot be priced: found before a run, so that no run ends in unexplained refusals.

A tier is priced by its own ``price``, else by the backend's quote for each of its models (for
litellm, its bundled price map). Human tiers cost nothing in money. ``cascade policy check`` and
``cascade run`` (with the default backend) refuse a policy with an unpriced tier, naming the
file and line: a run could not keep its budgets, and every call to it would be refused.
"""

from __future__ import annotations

from collections.abc import Callable

from cascade.policy.load import PolicySet, Problem
from cascade.policy.locate import TomlLines
from cascade.types import Quote

__all__ = ["unpriced_tiers"]


def unpriced_tiers(policies: PolicySet, quoter: Callable[[str], Quote | None]) -> list[Problem]:
    """One problem for each model of a tier that sets no price and that ``quoter`` cannot price."""
    problems: list[Problem] = []
    for policy in policies:
        lines: TomlLines | None = None
        for index, tier in enumerate(policy.ladder):
            if tier.is_human or tier.price is not None:
                continue
            for model in tier.models:
                if quoter(model) is not None:
                    continue
                lines = lines or TomlLines(policy.path.read_text(encoding="utf-8"))
                problems.append(
                    Problem(
                        str(policy.path),
                        lines.line_of(("tiers", index, "model")),
                        f"tiers[{index}].model",
                        f"no price is known for {model!r}; set a price on the tier:"
                        " price = { input_usd_per_mtok = ..., output_usd_per_mtok = ... }",
                    )
                )
    return problems
