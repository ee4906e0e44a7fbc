"""Combinators: ``all_of``, ``any_of``, ``not_`` and ``weighted``.

Composites are gates, pass or fail. ``weighted`` adds a threshold on a weighted mean of scores,
but only on top of the gates: a failing member fails it, whatever the others scored, so no
score can carry an invalid answer through. ``all_of`` runs the cheapest validators first and
stops at the first failure. A validator that crashed stays a crash under every combinator,
``not_`` included.

>>> from cascade import Verdict
>>> def yes(attempt): return Verdict(True)
>>> def no(attempt): return Verdict(False, reason="no")
>>> all_of(yes, not_(no))
all_of(yes, not_(no))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from cascade.errors import ConfigError
from cascade.types import Attempt, Verdict
from cascade.validators.base import (
    CostClass,
    Validator,
    cost_class_of,
    name_of,
    reads_confidence,
    run_validator,
)

__all__ = ["all_of", "any_of", "not_", "weighted"]


class _Composite:
    _label = ""

    def __init__(self, validators: Sequence[Validator]) -> None:
        # A stable sort: validators of the same cost class keep the order they were given in.
        self._validators = tuple(sorted(validators, key=cost_class_of))
        self.cost_class = max(map(cost_class_of, validators), default=CostClass.FREE)
        self.reads_confidence = any(map(reads_confidence, validators))
        self._name = f"{self._label}({', '.join(map(name_of, self._validators))})"

    def __repr__(self) -> str:
        return self._name


class _AllOf(_Composite):
    _label = "all_of"

    async def __call__(self, attempt: Attempt) -> Verdict:
        verdicts: list[Verdict] = []
        for validator in self._validators:
            verdict = await run_validator(validator, attempt)
            verdicts.append(verdict)
            if not verdict.passed:
                return Verdict(
                    passed=False,
                    reason=verdict.reason,
                    feedback=verdict.feedback,
                    score=verdict.score,
                    validator=self._name,
                    value=verdict.value,
                    fault=verdict.fault,
                    children=tuple(verdicts),
                )
        values = [v.value for v in verdicts if v.value is not None]
        scores = [v.score for v in verdicts if v.score is not None]
        answers = [v for v in verdicts if v.answer is not None]
        return Verdict(
            passed=True,
            validator=self._name,
            value=values[0] if values else None,
            score=min(scores) if scores else None,
            children=tuple(verdicts),
            answer=answers[0].answer if answers else None,
            answer_model=answers[0].answer_model if answers else None,
        )


class _AnyOf(_Composite):
    _label = "any_of"

    async def __call__(self, attempt: Attempt) -> Verdict:
        verdicts: list[Verdict] = []
        for validator in self._validators:
            verdict = await run_validator(validator, attempt)
            verdicts.append(verdict)
            if verdict.passed:
                return Verdict(
                    passed=True,
                    validator=self._name,
                    value=verdict.value,
                    score=verdict.score,
                    children=tuple(verdicts),
                    answer=verdict.answer,
                    answer_model=verdict.answer_model,
                )
        return Verdict(
            passed=False,
            reason="none passed: " + "; ".join(v.reason for v in verdicts if v.reason),
            feedback=" Or: ".join(v.feedback for v in verdicts if v.feedback),
            validator=self._name,
            fault=any(v.fault for v in verdicts),
            children=tuple(verdicts),
        )


class _Not:
    def __init__(self, validator: Validator) -> None:
        self._validator = validator
        self.cost_class = cost_class_of(validator)
        self.reads_confidence = reads_confidence(validator)
        self._name = f"not_({name_of(validator)})"

    def __repr__(self) -> str:
        return self._name

    async def __call__(self, attempt: Attempt) -> Verdict:
        inner = await run_validator(self._validator, attempt)
        if inner.fault:
            return Verdict(False, reason=inner.reason, validator=self._name, fault=True)
        if inner.passed:
            return Verdict(
                passed=False,
                reason=f"{inner.validator} passed, and it must not",
                feedback=f"The answer must not satisfy {inner.validator}.",
                validator=self._name,
                children=(inner,),
            )
        return Verdict(passed=True, validator=self._name, children=(inner,))


class _Weighted(_AllOf):
    _label = "weighted"

    def __init__(self, weights: Sequence[tuple[Validator, float]], threshold: float) -> None:
        super().__init__([validator for validator, _ in weights])
        # The same stable sort as the members', so that the weights line up with them.
        self._weights = [w for _, w in sorted(weights, key=lambda pair: cost_class_of(pair[0]))]
        self._threshold = threshold
        self._name = self._name[:-1] + f", threshold={threshold:g})"

    async def __call__(self, attempt: Attempt) -> Verdict:
        gated = await super().__call__(attempt)
        if not gated.passed:
            return dataclasses.replace(gated, validator=self._name)
        # A member that passed without a score counts as fully satisfied.
        mean = sum(
            weight * (1.0 if verdict.score is None else verdict.score)
            for weight, verdict in zip(self._weights, gated.children, strict=True)
        ) / (sum(self._weights) or 1.0)
        if mean >= self._threshold:
            return dataclasses.replace(gated, validator=self._name, score=mean)
        return Verdict(
            passed=False,
            reason=f"weighted score {mean:.3g} is below the threshold {self._threshold:g}",
            feedback="; ".join(v.reason for v in gated.children if v.reason and v.score),
            score=mean,
            validator=self._name,
            children=gated.children,
        )


def weighted(*weights: tuple[Validator, float], threshold: float) -> Validator:
    """Pass when every member passes and the weighted mean of their scores >= ``threshold``.

    >>> from cascade import Verdict
    >>> def polite(attempt): return Verdict(True, score=0.9)
    >>> weighted((polite, 2.0), threshold=0.8)
    weighted(polite, threshold=0.8)
    """
    if not weights or any(not weight >= 0 for _, weight in weights):
        raise ConfigError("weighted needs (validator, weight >= 0) pairs")
    return _Weighted(weights, threshold)


def all_of(*validators: Validator) -> Validator:
    """Pass when every validator passes; run the cheapest first and stop at the first failure."""
    return _AllOf(validators)


def any_of(*validators: Validator) -> Validator:
    """Pass when one validator passes; run the cheapest first and stop at the first pass."""
    return _AnyOf(validators)


def not_(validator: Validator) -> Validator:
    """Pass when ``validator`` fails. A crash is still a failure, never a pass."""
    return _Not(validator)
