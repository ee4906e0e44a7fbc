"""One home per validator option: each ``[[validators]]`` kind matches its factory's parameters.

A factory that gains a parameter must be given a field (or a reason here why a policy cannot
say it), and a field's default must be the factory's own.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cascade import validators
from cascade.policy.fields import Context
from cascade.policy.spec_validators import ValidatorSpec

SPECS: dict[str, Any] = {typing.get_args(cls.model_fields["kind"].annotation)[0]: cls
                         for cls in typing.get_args(typing.get_args(ValidatorSpec)[0])}  # fmt: skip

FACTORY: dict[str, Callable[..., Any]] = {
    "json_schema": validators.json_schema,
    "pydantic": validators.pydantic_model,
    "grounded": validators.grounded,
    "compiles": validators.compiles,
    "mypy": validators.mypy_clean,
    "tests": validators.passes_tests,
    "judge": validators.judge,
    "one_of": validators.one_of,
    "function_call": validators.function_call,
    "confidence": validators.confidence,
    "not_missing": validators.not_missing,
    "matches": validators.matches,
    "agreement": validators.agreement,
    "vote": validators.vote,
    "self_consistency": validators.self_consistency,
}
"""Each kind's factory (``python`` calls a factory the policy names)."""

RENAMED = {
    ("json_schema", "schema_"): "schema",  # ``schema`` is a pydantic attribute; the key is schema
    ("not_missing", "fields"): "patterns",  # a policy says which fields; their patterns are values
    ("tests", "file"): "tests",  # a file of tests, or
    ("tests", "snippets"): "tests",  # the tests themselves
    ("tests", "wall_s"): "limits",  # the three limits make one Limits
    ("tests", "cpu_s"): "limits",
    ("tests", "memory_mb"): "limits",
    ("tests", "isolated_tests_only"): "isolated_only",
}
"""Fields named apart from the factory's parameter they give (and why)."""

NOT_IN_A_POLICY = {
    ("tests", "sandbox"): "a live Sandbox object; a policy gives its limits",
    ("tests", "cache"): "the run's verdict cache, passed by cascade bench and optimize",
    ("function_call", "functions"): "each task carries its own functions",
    ("pydantic", "model"): "named as module:Model, imported by build",
}
"""Factory parameters a policy cannot set, and why."""


def _parameters(kind: str) -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(FACTORY[kind]).parameters)


def test_every_kind_has_its_factory() -> None:
    """The union's kinds are the factories' kinds, and ``python``."""
    assert set(SPECS) == {*FACTORY, "python"}


@pytest.mark.parametrize("kind", sorted(FACTORY))
def test_a_kinds_fields_are_its_factorys_parameters(kind: str) -> None:
    """Every field gives a parameter, every parameter has a field or a reason it has none."""
    fields = {name for name in SPECS[kind].model_fields if name != "kind"}
    given = {RENAMED.get((kind, name), name) for name in fields}
    if kind == "pydantic":
        given.discard("model")
    wanted = {name for name in _parameters(kind) if (kind, name) not in NOT_IN_A_POLICY}
    assert given == wanted


@pytest.mark.parametrize("kind", sorted(FACTORY))
def test_a_fields_default_is_its_factorys(kind: str) -> None:
    """A field left out of a policy means what the factory's default means."""
    parameters = _parameters(kind)
    for name, field in SPECS[kind].model_fields.items():
        target = RENAMED.get((kind, name), name)
        parameter = parameters.get(target)
        if parameter is None or parameter.default is inspect.Parameter.empty:
            continue
        if field.is_required() or target in ("tests", "limits"):  # several fields make these
            continue
        default = field.get_default(call_default_factory=True)
        empty = default in ({}, []) and parameter.default is None  # passed as None when empty
        assert default == parameter.default or empty, (kind, name)


def test_each_kind_builds_its_validator(tmp_path: Path) -> None:
    """``build`` makes a validator for every kind, given its required fields."""
    (tmp_path / "tests.py").write_text("def test_x():\n    pass\n")
    required: dict[str, dict[str, Any]] = {
        "json_schema": {}, "pydantic": {"model": "cascade.policy.spec_base:PriceSpec"},
        "grounded": {}, "compiles": {}, "mypy": {}, "tests": {"file": "tests.py"},
        "judge": {"rubric": "r", "model": "m", "params": {"api_base": "http://127.0.0.1:9"}},
        "one_of": {"labels": ["a"]}, "function_call": {}, "confidence": {"threshold": 0.5},
        "not_missing": {"fields": {"email": "@"}}, "matches": {"pattern": "x"},
        "agreement": {"model": "m"}, "vote": {"models": ["m"]}, "self_consistency": {},
        "python": {"factory": "cascade.validators:compiles"},
    }  # fmt: skip
    for kind, cls in SPECS.items():
        spec = cls.model_validate({"kind": kind, **required[kind]})
        assert callable(spec.build(Context(tmp_path))), kind
