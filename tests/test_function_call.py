"""function_call(): the output calls an offered function with arguments valid for its schema."""

from __future__ import annotations

import pytest

from cascade.testing import verdict_of
from cascade.validators import function_call

AREA = {
    "name": "area",
    "parameters": {
        "type": "dict",
        "properties": {
            "base": {"type": "integer"},
            "height": {"type": "float"},
            "unit": {"type": "string", "enum": ["cm", "m"]},
        },
        "required": ["base", "height"],
    },
}


@pytest.mark.parametrize(
    "output",
    [
        "[area(base=10, height=5)]",
        "area(base=10, height=2.5, unit='cm')",
        '{"name": "area", "arguments": {"base": 1, "height": 2}}',
        '[{"name": "area", "arguments": "{\\"base\\": 1, \\"height\\": 2}"}]',
    ],
)
def test_function_call_passes_valid_calls(output: str) -> None:
    """Python call syntax and JSON calls with valid arguments pass."""
    verdict = verdict_of(function_call(), output, functions=[AREA])
    assert verdict.passed, verdict.reason
    assert verdict.value[0]["name"] == "area"


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        ("[volume(base=1, height=2)]", "volume is not an offered function"),
        ("[area(base=1)]", "missing required argument(s) height"),
        ("[area(base=1, height=2, colour='red')]", "unknown argument(s) colour"),
        ("[area(base='ten', height=2)]", 'argument area.base: "ten" is not of type "integer"'),
        ("[area(base=True, height=2)]", 'argument area.base: true is not of type "integer"'),
        ("[area(base=1, height=2, unit='km')]", 'argument area.unit: "km" is not one of'),
        ("[area(base=1, height={1, 2})]", "not JSON"),
        ("[area(10, 5)]", "positional arguments"),
        ("[area(base=__import__('os').getcwd(), height=1)]", "not a literal value"),
        ("The area is 25.", "neither Python call syntax nor JSON"),
    ],
)
def test_function_call_names_what_is_wrong(output: str, reason: str) -> None:
    """Each kind of bad call fails with a reason that names the problem."""
    verdict = verdict_of(function_call(), output, functions=[AREA])
    assert not verdict.passed
    assert reason in verdict.reason
    assert verdict.feedback


def test_nested_arguments_are_checked_against_the_schema() -> None:
    """An argument's items are validated too, with the path to the bad one."""
    spec = {
        "name": "mean",
        "parameters": {
            "type": "dict",
            "properties": {"values": {"type": "tuple", "items": {"type": "float"}}},
            "required": ["values"],
        },
    }
    assert verdict_of(function_call(), "[mean(values=(1, 2.5))]", functions=[spec]).passed
    verdict = verdict_of(function_call(), "[mean(values=[1, 'x'])]", functions=[spec])
    assert 'argument mean.values.1: "x" is not of type "number"' in verdict.reason


def test_a_function_whose_schema_is_broken_is_a_fault() -> None:
    """A task offering a function with an invalid schema is a fault, not a model error."""
    spec = {"name": "f", "parameters": {"type": "dict", "properties": {"x": {"type": 5}}}}
    verdict = verdict_of(function_call(), "[f(x=1)]", functions=[spec])
    assert verdict.fault
    assert "not a valid JSON Schema" in verdict.reason
