"""Combinators: ``all_of``, ``any_of`` and ``not_``.

Composites are gates, pass or fail; there is no weighted average that could let an invalid
answer through. ``all_of`` runs the cheapest validators first and stops at the first failure.
A validator that crashed stays a crash under every combinator, ``not_`` included.

>>> from cascade import Verdict
>>> def yes(attempt): return Verdict(True)
>>> def no(attempt): return Verdict(False, reason="no")
>>> all_of(yes, not_(no))
all_of(yes, not_(no))
"""

from __future__ import annotations

from collections.abc import Sequence

from cascade.types import Attempt, Verdict
from cascade.validators.base import CostClass, Validator, cost_class_of, name_of, run_validator

__all__ = ["all_of", "any_of", "not_"]


class _Composite:
    _label = ""

    def __init__(self, validators: Sequence[Validator]) -> None:
        # A stable sort: validators of the same cost class keep the order they were given in.
        self._validators = tuple(sorted(validators, key=cost_class_of))
        self.cost_class = max(map(cost_class_of, validators), default=CostClass.FREE)
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
        return Verdict(
            passed=True,
            validator=self._name,
            value=values[0] if values else None,
            score=min(scores) if scores else None,
            children=tuple(verdicts),
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


def all_of(*validators: Validator) -> Validator:
    """Pass when every validator passes; run the cheapest first and stop at the first failure."""
    return _AllOf(validators)


def any_of(*validators: Validator) -> Validator:
    """Pass when one validator passes; run the cheapest first and stop at the first pass."""
    return _AnyOf(validators)


def not_(validator: Validator) -> Validator:
    """Pass when ``validator`` fails. A crash is still a failure, never a pass."""
    return _Not(validator)
