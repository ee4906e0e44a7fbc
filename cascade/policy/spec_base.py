"""What the models of a policy file share: strictness, and a price (tiers and audits give one)."""

from __future__ import annotations

from typing import Final

from pydantic import BaseModel, ConfigDict, NonNegativeFloat

__all__ = ["STRICT", "PriceSpec"]

STRICT: Final = ConfigDict(extra="forbid", frozen=True)
"""Every policy-file model's config: unknown keys are errors, never ignored; parsed, frozen."""


class PriceSpec(BaseModel):
    """A price override, in US dollars per million tokens."""

    model_config = STRICT

    input_usd_per_mtok: NonNegativeFloat
    output_usd_per_mtok: NonNegativeFloat
