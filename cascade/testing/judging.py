"""Judge one answer with a validator, without a cascade: for testing your own validators.

>>> from cascade import json_schema
>>> verdict_of(json_schema({"type": "object", "required": ["name"]}), '{"name": "Ada"}').passed
True
"""

from __future__ import annotations

import asyncio
from typing import Any

from cascade.types import Attempt, Task, Tier, Usage, Verdict
from cascade.validators.base import Validator, run_validator

__all__ = ["attempt_with", "verdict_of"]


def attempt_with(output: str, task_input: str = "x", **extra: Any) -> Attempt:
    """An attempt answering ``output`` to a task with ``task_input`` and ``extra`` fields."""
    return Attempt(
        task=Task("t", input=task_input, extra=extra),
        tier_index=0,
        tier=Tier("m"),
        model="m",
        model_served="m",
        output=output,
        usage=Usage(),
        cost_usd=0.0,
        latency_s=0.0,
    )


def verdict_of(validator: Validator, output: str, task_input: str = "x", **extra: Any) -> Verdict:
    """Run ``validator`` on an attempt answering ``output`` (see :func:`attempt_with`)."""
    return asyncio.run(run_validator(validator, attempt_with(output, task_input, **extra)))
