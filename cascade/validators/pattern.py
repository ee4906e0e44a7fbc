r"""``matches(pattern)``: an answer-format check by regular expression.

Prompts often fix the shape of the answer ("end on '#### x'", "answer with a date"), and a
model that broke the shape is far more often wrong than one that kept it. The pattern is
searched anywhere in the output unless it is anchored; ``hint`` is what the model is told on a
re-ask.

>>> import re
>>> matches(r"####\s*-?\d+\s*$")
matches('####\\s*-?\\d+\\s*$')
>>> matches("(")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
cascade.errors.ConfigError: matches: '(' is not a regular expression: missing ), ...
"""

from __future__ import annotations

import re

from cascade.errors import ConfigError
from cascade.types import Attempt, Verdict
from cascade.validators.base import CostClass

__all__ = ["matches"]

_MAX_OUTPUT = 100_000
"""Longer outputs are judged on their last 100,000 characters, where a final answer sits."""


class _Matches:
    cost_class = CostClass.FREE

    def __init__(self, pattern: re.Pattern[str], hint: str) -> None:
        self._pattern = pattern
        self._hint = hint

    def __repr__(self) -> str:
        return f"matches({self._pattern.pattern!r})"

    def __call__(self, attempt: Attempt) -> Verdict:
        found = self._pattern.search(attempt.output[-_MAX_OUTPUT:])
        if found is None:
            tail = attempt.output[-60:]
            return Verdict(
                False,
                reason=f"the answer does not match {self._pattern.pattern!r} (it ends {tail!r})",
                feedback=self._hint,
            )
        return Verdict(True, value=found.group(1) if self._pattern.groups else None)


def matches(pattern: str, *, hint: str | None = None, ignore_case: bool = False) -> _Matches:
    """Pass when ``pattern`` is found in the output; its first group, if any, is the value."""
    if not isinstance(pattern, str) or not pattern:
        raise ConfigError("matches needs a non-empty regular expression")
    try:
        compiled = re.compile(pattern, re.IGNORECASE if ignore_case else 0)
    except re.error as exc:
        raise ConfigError(f"matches: {pattern!r} is not a regular expression: {exc}") from exc
    return _Matches(compiled, hint or f"Give your answer in the required format ({pattern}).")
