"""Validators: plain callables that take the :class:`cascade.Attempt` and return a Verdict.

Built-ins are factories that return objects with a readable repr, because the repr shows up in
every step log. Combine them with :func:`all_of`, :func:`any_of` and :func:`not_`.
"""

from cascade.validators.base import CostClass, Validator, cost_class_of, run_validator
from cascade.validators.calls import function_call
from cascade.validators.combine import all_of, any_of, not_
from cascade.validators.jsonvalue import extract_json
from cascade.validators.schema import json_schema, pydantic_model

__all__ = [
    "CostClass",
    "Validator",
    "all_of",
    "any_of",
    "cost_class_of",
    "extract_json",
    "function_call",
    "json_schema",
    "not_",
    "pydantic_model",
    "run_validator",
]
