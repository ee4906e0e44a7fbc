"""litellm's bundled price map, read as data: a model's price and its longest answer.

The litellm backend reads each model's entry through ``litellm.get_model_info``; the lean HTTP
backend reads the same JSON file straight from litellm's installed package, once per process,
so that its hot path never imports litellm (seconds and hundreds of megabytes). Both turn an
entry into prices here, so the two backends bill a call alike.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cascade.types import Price, Quote

__all__ = ["TIERED", "PriceMap", "quote_of", "rate_of"]

TIERED = Price(0.0, 0.0)
"""Marks a model whose price depends on more than its token counts (its context length, say)."""

_FILE = "model_prices_and_context_window_backup.json"


class PriceMap:
    """litellm's bundled map, read on first use (about 50 ms), without importing litellm.

    A model is looked up as litellm's ``get_model_info`` finds it for the OpenAI-compatible
    providers: ``azure/NAME`` by its whole name, ``openai/NAME`` (or a bare ``NAME``) under
    ``NAME`` when that entry is OpenAI's. Another provider's entry of the same name (a
    self-hosted ``openai/deepseek-chat``, say) is not this model's price.

    >>> prices = PriceMap()
    >>> prices.entry("openai/gpt-4o-mini")["litellm_provider"]
    'openai'
    >>> prices.entry("openai/deepseek-chat") is None  # DeepSeek's own price, not a vLLM's
    True
    """

    def __init__(self) -> None:
        self._entries: Mapping[str, Any] | None = None

    def load(self) -> Mapping[str, Any]:
        """Every entry of the map (read once)."""
        if self._entries is None:
            self._entries = _read_map()
        return self._entries

    def entry(self, model: str) -> Mapping[str, Any] | None:
        """``model``'s entry, or None when the map has none for it (see the class docstring)."""
        entries = self.load()
        provider = "azure" if model.startswith("azure/") else "openai"
        found = entries.get(model if provider == "azure" else model.removeprefix("openai/"))
        if isinstance(found, Mapping) and found.get("litellm_provider") == provider:
            return found
        return None


def _read_map() -> Mapping[str, Any]:
    spec = importlib.util.find_spec("litellm")  # finds the package; does not run it
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / _FILE
        if path.is_file():
            loaded = json.loads(path.read_text(encoding="utf-8"))
            return loaded if isinstance(loaded, dict) else {}
    return {}


def rate_of(info: Mapping[str, Any]) -> Price | None:
    """The price per million tokens an entry lists; :data:`TIERED` when it has tiers; else None."""
    inp, out = info.get("input_cost_per_token"), info.get("output_cost_per_token")
    if not isinstance(inp, int | float) or not isinstance(out, int | float):
        return None
    if any("above" in key and value for key, value in info.items() if "cost" in key):
        return TIERED
    return Price(float(inp) * 1e6, float(out) * 1e6)


def quote_of(info: Mapping[str, Any]) -> Quote | None:
    """An entry's highest listed price per token and its longest answer; None when unpriced.

    What a worst-case estimate before a call needs (a tiered price counts at its top rate).
    """

    def top(prefix: str) -> float | None:
        rates = [v for k, v in info.items() if k.startswith(prefix) and isinstance(v, int | float)]
        return max(rates) if rates else None

    inp, out = top("input_cost_per_token"), top("output_cost_per_token")
    if inp is None or out is None:
        return None
    longest = info.get("max_output_tokens") or info.get("max_tokens")
    return Quote(Price(inp * 1e6, out * 1e6), longest if isinstance(longest, int) else None)
