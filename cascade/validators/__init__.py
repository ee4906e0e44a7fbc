"""Validators: plain callables that take the :class:`cascade.Attempt` and return a Verdict.

Built-ins are factories that return objects with a readable repr, because the repr shows up in
every step log. Combine them with :func:`all_of`, :func:`any_of` and :func:`not_`.
:func:`agreement`, :func:`vote` and :func:`self_consistency` compare other answers to the task.
"""

from cascade.store.verdicts import VerdictCache
from cascade.validators.agreement import agreement
from cascade.validators.base import (
    CostClass,
    Validator,
    cost_class_of,
    reads_confidence,
    run_validator,
)
from cascade.validators.calls import function_call
from cascade.validators.code import compiles, extract_code
from cascade.validators.code_tests import passes_tests
from cascade.validators.combine import all_of, any_of, not_, weighted
from cascade.validators.grounding import grounded
from cascade.validators.jsonvalue import extract_json
from cascade.validators.judge import judge
from cascade.validators.labels import confidence, one_of
from cascade.validators.missing import not_missing
from cascade.validators.pattern import matches
from cascade.validators.sandbox import Limits, Sandbox
from cascade.validators.schema import json_schema, pydantic_model
from cascade.validators.typecheck import mypy_clean
from cascade.validators.vote import self_consistency, vote

__all__ = [
    "CostClass",
    "Limits",
    "Sandbox",
    "Validator",
    "VerdictCache",
    "agreement",
    "all_of",
    "any_of",
    "compiles",
    "confidence",
    "cost_class_of",
    "extract_code",
    "extract_json",
    "function_call",
    "grounded",
    "json_schema",
    "judge",
    "matches",
    "mypy_clean",
    "not_",
    "not_missing",
    "one_of",
    "passes_tests",
    "pydantic_model",
    "reads_confidence",
    "run_validator",
    "self_consistency",
    "vote",
    "weighted",
]
