"""Answers from a closed set, and thresholds on the model's own confidence.

>>> one_of(["spam", "ham"])
one_of(['spam', 'ham'])
>>> confidence(0.8)
confidence(0.8)
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from cascade.errors import ConfigError
from cascade.types import Attempt, Verdict
from cascade.validators.base import CostClass

__all__ = ["confidence", "one_of"]

_WRAPPING = re.compile(r"""^[\s"'`*]+|[\s"'`*.!]+$""")
_MAX_LABEL_OUTPUT = 200


class _OneOf:
    cost_class = CostClass.FREE

    def __init__(self, labels: tuple[str, ...], ignore_case: bool) -> None:
        self._labels = labels
        self._ignore_case = ignore_case
        self._lookup = {self._key(label): label for label in labels}

    def __repr__(self) -> str:
        extra = ", ignore_case=False" if not self._ignore_case else ""
        return f"one_of({list(self._labels)!r}{extra})"

    def _key(self, text: str) -> str:
        text = _WRAPPING.sub("", text)
        return text.casefold() if self._ignore_case else text

    def __call__(self, attempt: Attempt) -> Verdict:
        allowed = ", ".join(self._labels)
        output = attempt.output
        label = self._lookup.get(self._key(output)) if len(output) <= _MAX_LABEL_OUTPUT else None
        if label is None:
            shown = output if len(output) <= 60 else output[:57] + "..."
            return Verdict(
                False,
                reason=f"{shown!r} is not one of the allowed labels: {allowed}",
                feedback=f"Answer with exactly one of these labels and nothing else: {allowed}.",
            )
        return Verdict(True, value=label)


def one_of(labels: Iterable[str], *, ignore_case: bool = True) -> _OneOf:
    """Pass when the whole output is one of ``labels``; the result is the label as written.

    Surrounding whitespace, quotes, emphasis and a final full stop are ignored.
    """
    labels = tuple(labels)
    if not labels or not all(isinstance(label, str) and label.strip() for label in labels):
        raise ConfigError(f"one_of needs a non-empty list of non-empty labels, got {labels!r}")
    return _OneOf(labels, ignore_case)


class _Confidence:
    cost_class = CostClass.FREE
    reads_confidence = True

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold

    def __repr__(self) -> str:
        return f"confidence({self.threshold!r})"

    def __call__(self, attempt: Attempt) -> Verdict:
        score = attempt.confidence
        if score is None:
            return Verdict(False, reason="the answer carries no confidence score")
        if score >= self.threshold:
            return Verdict(True, score=score)
        return Verdict(
            False,
            reason=f"confidence {score:g} is below the threshold {self.threshold:g}",
            score=score,
        )


def confidence(threshold: float) -> _Confidence:
    """Pass when the model's self-reported confidence is at least ``threshold``."""
    if not isinstance(threshold, int | float) or not math.isfinite(threshold):
        raise ConfigError(f"confidence threshold must be a finite number, got {threshold!r}")
    return _Confidence(float(threshold))
