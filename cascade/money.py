"""What a call costs: its token counts, a model's price, and what is known before the call.

Re-exported by :mod:`cascade.types`, where the rest of the values a task is asked with live.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cascade.errors import ConfigError

__all__ = ["Price", "Quote", "Usage"]


@dataclass(frozen=True, slots=True)
class Quote:
    """What a backend knows of a model before calling it: its price, and its longest answer."""

    price: Price
    max_output_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one call."""

    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Price:
    """A model's price in US dollars per million input and output tokens."""

    input_usd_per_mtok: float
    output_usd_per_mtok: float

    def __post_init__(self) -> None:
        for name in ("input_usd_per_mtok", "output_usd_per_mtok"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"price {name} must be a finite number >= 0, got {value!r}")

    def cost(self, usage: Usage) -> float:
        """The cost of ``usage`` at this price."""
        return (
            usage.prompt_tokens * self.input_usd_per_mtok
            + usage.completion_tokens * self.output_usd_per_mtok
        ) / 1e6
