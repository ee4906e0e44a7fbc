"""Tiers that cannot be served: found before a run, so that no run ends in unexplained refusals.

A tier is priced by its own ``price``, else by the backend's quote for each of its models (for
litellm, its bundled price map). Human tiers cost nothing in money. ``cascade policy check`` and
``cascade run`` (with the default backend) refuse a policy with an unpriced tier, naming the
file and line: a run could not keep its budgets, and every call to it would be refused. A run
replayed from a dataset likewise refuses a tier whose model the dataset never recorded
(:func:`unrecorded_tiers`): every one of its tasks would fail, one by one.
"""

from __future__ import annotations

from collections.abc import Callable

from cascade.policy.load import PolicySet, Problem
from cascade.policy.locate import TomlLines
from cascade.types import Quote, Tier

__all__ = ["unpriced_tiers", "unrecorded_tiers"]


def unpriced_tiers(policies: PolicySet, quoter: Callable[[str], Quote | None]) -> list[Problem]:
    """One problem for each model of a tier that sets no price and that ``quoter`` cannot price."""
    return _tier_problems(
        policies,
        lambda tier, model: tier.price is None and quoter(model) is None,
        lambda model: (
            f"no price is known for {model!r}; set a price on the tier:"
            " price = { input_usd_per_mtok = ..., output_usd_per_mtok = ... }"
        ),
    )


def unrecorded_tiers(
    policies: PolicySet, resolve: Callable[[str], str | None], dataset: str, models: list[str]
) -> list[Problem]:
    """One problem for each model of a tier that the replayed ``dataset`` has no answers of."""
    known = ", ".join(sorted(models))
    return _tier_problems(
        policies,
        lambda _tier, model: resolve(model) is None,
        lambda model: (
            f"the replayed dataset {dataset} has no answers of {model!r} (it has {known})"
        ),
    )


def _tier_problems(
    policies: PolicySet, wrong: Callable[[Tier, str], bool], say: Callable[[str], str]
) -> list[Problem]:
    """A problem, at its file and line, for each model of a model tier that is ``wrong``."""
    problems: list[Problem] = []
    for policy in policies:
        lines: TomlLines | None = None
        for index, tier in enumerate(policy.ladder):
            if tier.is_human:
                continue
            for model in tier.models:
                if not wrong(tier, model):
                    continue
                lines = lines or TomlLines(policy.path.read_text(encoding="utf-8"))
                where = lines.line_of(("tiers", index, "model"))
                problems.append(Problem(str(policy.path), where, f"tiers[{index}].model",
                                        say(model)))  # fmt: skip
    return problems
