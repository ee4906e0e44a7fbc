"""The validator interface, and how the engine runs one.

A validator is any callable that takes the :class:`cascade.Attempt` and returns a
:class:`cascade.Verdict`, or an awaitable of one. It may declare ``cost_class`` (a
:class:`CostClass`) so that composites run the cheaper checks first; plain functions count
as :attr:`CostClass.CHEAP`.

>>> from cascade import Verdict
>>> def short(attempt):
...     ok = len(attempt.output) < 200
...     return Verdict(ok, reason="" if ok else "answer is too long", feedback="Be brief.")
"""

from __future__ import annotations

import enum
import inspect
import time
from collections.abc import Awaitable, Callable

from cascade.types import Attempt, Verdict

__all__ = [
    "CostClass",
    "Validator",
    "cost_class_of",
    "name_of",
    "reads_confidence",
    "run_validator",
]

Validator = Callable[[Attempt], Verdict | Awaitable[Verdict]]
"""A validator: takes the attempt, returns a verdict (sync or async)."""

_TIMED_FROM_S = 0.001
"""A validator that takes this long or longer has its time kept on its verdict."""


class CostClass(enum.IntEnum):
    """How expensive a validator is to run; composites run the cheapest first."""

    FREE = 0
    """Pure Python on the output alone: parsing, a schema, a regex."""
    CHEAP = 1
    """Pure Python that may look at the task, or an unknown user function."""
    PROCESS = 2
    """Starts a process or a type checker: compile, mypy, sandboxed tests."""
    MODEL = 3
    """Calls a model: a judge or a second opinion. Costs money."""


def cost_class_of(validator: Validator) -> CostClass:
    """The declared cost class of ``validator``, or :attr:`CostClass.CHEAP`."""
    declared = getattr(validator, "cost_class", CostClass.CHEAP)
    return declared if isinstance(declared, CostClass) else CostClass.CHEAP


def reads_confidence(validator: Validator) -> bool:
    """Whether ``validator`` reads the model's confidence, so that its tier must pay for one.

    A validator says so with a true ``reads_confidence`` attribute; combinators pass it on.
    """
    return getattr(validator, "reads_confidence", False) is True


def name_of(validator: Validator) -> str:
    """How a validator is named in verdicts and logs: its repr, or a function's name."""
    if inspect.isfunction(validator) or inspect.ismethod(validator):
        return validator.__qualname__
    return repr(validator)


async def run_validator(validator: Validator, attempt: Attempt) -> Verdict:
    """Run ``validator`` on ``attempt``. A crash becomes a failing verdict marked ``fault``."""
    name = name_of(validator)
    start = time.perf_counter()
    try:
        # Typed as object: a user's validator may return anything, and that is checked below.
        verdict: object = validator(attempt)
        if inspect.isawaitable(verdict):
            verdict = await verdict
    except Exception as exc:  # noqa: BLE001  # a crashed validator is reported, not propagated
        return Verdict(
            passed=False,
            reason=f"validator {name} raised {type(exc).__name__}: {exc}",
            validator=name,
            fault=True,
        )
    if not isinstance(verdict, Verdict):
        return Verdict(
            passed=False,
            reason=f"validator {name} returned {type(verdict).__name__}, not a Verdict",
            validator=name,
            fault=True,
        )
    seconds = time.perf_counter() - start
    if seconds >= _TIMED_FROM_S and verdict.seconds is None:
        return _named(verdict, verdict.validator or name, seconds)
    return verdict if verdict.validator else _named(verdict, name, verdict.seconds)


def _named(verdict: Verdict, validator: str, seconds: float | None) -> Verdict:
    """``verdict`` with its validator's name and time.

    ``dataclasses.replace`` at a third of its cost: this runs on every attempt whose validator
    leaves its verdicts unnamed (a plain function's do).
    """
    v = verdict
    return Verdict(v.passed, v.reason, v.feedback, v.score, validator, v.value, v.fault,
                   v.children, v.answer, v.answer_model, v.self_reported, seconds)  # fmt: skip
