"""Prices for imported calls whose log has no cost: litellm's cost map, as a tier is priced.

The cost of a call comes from :meth:`cascade.backends.litellm.LiteLLMBackend.cost`, the path a
live call is priced on (tiered prices included); a batch call takes litellm's batch rate where
the map has one. litellm is imported only when some call needs a price.
"""

from __future__ import annotations

from typing import Any

from cascade.types import Price, Request, Usage

__all__ = ["Pricer"]


class Pricer:
    """Price calls of the models litellm's map knows; remember which it does not."""

    def __init__(self) -> None:
        self._backend: Any = None
        self._litellm: Any = None
        self._batch: dict[str, Price | None] = {}
        self.unknown: set[str] = set()
        """Models some call of which needed a price that litellm's map does not have."""

    def __repr__(self) -> str:
        return f"Pricer(unknown={sorted(self.unknown)})"

    def _load(self) -> None:
        if self._backend is None:
            from cascade.backends.litellm import LiteLLMBackend, load_litellm  # noqa: PLC0415

            self._litellm = load_litellm()
            self._backend = LiteLLMBackend()

    def cost(self, model: str, prompt: int, completion: int, *, batch: bool) -> float | None:
        """What a call of ``model`` with these token counts costs; ``None`` when unknown."""
        from cascade.errors import UnpricedModel  # noqa: PLC0415

        self._load()
        usage = Usage(prompt, completion)
        if batch:
            rate = self._batch_rate(model)
            if rate is not None:
                return rate.cost(usage)
        try:
            return float(self._backend.cost(self._litellm, Request(model, ()), usage))
        except UnpricedModel:
            self.unknown.add(model)
            return None

    def list_price(self, model: str) -> Price | None:
        """``model``'s listed price per million tokens, as a million of each would be priced."""
        inp = self.cost(model, 1_000_000, 0, batch=False)
        out = self.cost(model, 0, 1_000_000, batch=False)
        return None if inp is None or out is None else Price(inp, out)

    def _batch_rate(self, model: str) -> Price | None:
        if model not in self._batch:
            from cascade.backends.litellm import batch_prices  # noqa: PLC0415

            both = batch_prices(model)
            self._batch[model] = None if both is None else both[1]
        return self._batch[model]
