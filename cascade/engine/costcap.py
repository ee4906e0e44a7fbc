"""The worst a call can cost, known before it is made, so that a task's budget holds per call.

A call's worst cost is its prompt's tokens at the input price plus its longest answer at the
output price: the tier's ``max_tokens`` when it sets one, else the model's longest answer as
the backend lists it, else 4,096 tokens. The price is the tier's own, else the backend's quote.

When that is more than the task has left, a tier that sets no ``max_tokens`` is asked with
``max_tokens`` lowered to what the task can still pay for; when not even a short answer fits
(or the tier fixes its ``max_tokens``), the call is refused, and the task ends
``budget_exhausted`` saying why.

>>> from cascade.types import Price, Quote, Tier
>>> quote = lambda model: Quote(Price(1.0, 2.0), max_output_tokens=1000)
>>> messages = ({"role": "user", "content": "hello"},)
>>> tier, estimate = fit(Tier("m"), messages, 1.0, quote)
>>> tier == Tier("m"), estimate.answer_tokens
(True, 1000)
>>> fit(Tier("m"), messages, 0.001, quote)[0].params["max_tokens"]
496
>>> fit(Tier("m"), messages, 0.00002, quote)[0] is None
True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from cascade.tokens import count_tokens
from cascade.types import Message, Price, Quote, Tier

__all__ = ["Estimate", "answer_tokens", "fit"]

DEFAULT_ANSWER_TOKENS = 4096
"""The longest answer assumed when neither the tier nor the backend says."""
MIN_ANSWER_TOKENS = 16
"""Fewer answer tokens than this are not worth a call: it is refused instead."""

Quoter = Callable[[str], Quote | None]


@dataclass(frozen=True, slots=True)
class Estimate:
    """The dearest model of a tier for one prompt, at its longest answer."""

    model: str
    prompt_tokens: int
    answer_tokens: int
    cost_usd: float

    def explain(self, left_usd: float, budget_usd: float) -> str:
        """Why the call was refused, for the task's reasons."""
        return (
            f"{self.model} not asked: the call could cost up to ${self.cost_usd:.6f}"
            f" ({self.prompt_tokens} prompt tokens, up to {self.answer_tokens} answer tokens),"
            f" more than the ${max(left_usd, 0.0):.6f} left of the task's ${budget_usd:.6f} budget"
        )


def answer_tokens(tier: Tier, quote: Quote | None) -> int:
    """The longest answer a call to the tier may bring: its own cap, the model's, or 4,096."""
    for key in ("max_tokens", "max_completion_tokens"):
        value = tier.params.get(key)
        if isinstance(value, int) and value > 0:
            return value
    if quote is not None and quote.max_output_tokens:
        return quote.max_output_tokens
    return DEFAULT_ANSWER_TOKENS


def _prices(tier: Tier, quoter: Quoter) -> list[tuple[str, Price, Quote | None]]:
    priced = []
    for model in tier.models:
        quote = quoter(model)
        price = tier.price or (quote.price if quote is not None else None)
        if price is not None:
            priced.append((model, price, quote))
    return priced


def fit(
    tier: Tier, messages: tuple[Message, ...], left_usd: float, quoter: Quoter
) -> tuple[Tier | None, Estimate | None]:
    """The tier to call within ``left_usd``, and the worst estimate; ``None`` when none fits.

    No estimate when no model of the tier can be priced before the call (a scripted or replayed
    backend): the call goes as it is, and its cost is counted after.
    """
    priced = _prices(tier, quoter)
    if not priced:
        return tier, None
    tokens = count_tokens(messages)
    estimates = [
        Estimate(model, tokens, answer := answer_tokens(tier, quote),
                 (tokens * price.input_usd_per_mtok + answer * price.output_usd_per_mtok) / 1e6)
        for model, price, quote in priced
    ]  # fmt: skip
    worst = max(estimates, key=lambda e: e.cost_usd)
    if worst.cost_usd <= left_usd:
        return tier, worst
    if any(key in tier.params for key in ("max_tokens", "max_completion_tokens")):
        return None, worst
    affordable = min(
        _affordable(tokens, price, left_usd, answer_tokens(tier, quote))
        for _model, price, quote in priced
    )
    if affordable < MIN_ANSWER_TOKENS:
        return None, worst
    params = {**tier.params, "max_tokens": affordable}
    return dataclasses.replace(tier, params=params), worst


def _affordable(tokens: int, price: Price, left_usd: float, longest: int) -> int:
    """How many answer tokens ``left_usd`` pays for after the prompt, at most ``longest``."""
    left_for_answer = left_usd - tokens * price.input_usd_per_mtok / 1e6
    if left_for_answer <= 0:
        return 0
    if price.output_usd_per_mtok == 0:
        return longest
    return min(longest, int(left_for_answer * 1e6 / price.output_usd_per_mtok))
