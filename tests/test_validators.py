"""The built-in validators of this issue: json_schema and function_call."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cascade import Attempt, ConfigError, Task, Tier, Usage, Verdict, json_schema
from cascade.validators import run_validator
from cascade.validators.calls import function_call

CONTACT = {
    "title": "contact",
    "type": "object",
    "required": ["name", "address"],
    "properties": {
        "name": {"type": "string"},
        "address": {
            "type": "object",
            "required": ["city"],
            "properties": {"city": {"type": "string"}},
        },
    },
}

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


def judge(validator: Any, output: str, **task: Any) -> Verdict:
    """Run ``validator`` on an attempt with ``output``."""
    attempt = Attempt(
        task=Task("t", input="x", extra=task),
        tier_index=0,
        tier=Tier("m"),
        model="m",
        model_served="m",
        output=output,
        usage=Usage(),
        cost_usd=0.0,
        latency_s=0.0,
    )
    return asyncio.run(run_validator(validator, attempt))


@pytest.mark.parametrize(
    "output",
    [
        '{"name": "Ada", "address": {"city": "London"}}',
        'Here you go:\n```json\n{"name": "Ada", "address": {"city": "London"}}\n```',
        'Sure. {"name": "Ada", "address": {"city": "London"}} Anything else?',
    ],
)
def test_json_schema_passes_valid_json_bare_fenced_or_in_prose(output: str) -> None:
    """A valid object passes wherever it sits, and its parsed value travels on."""
    verdict = judge(json_schema(CONTACT), output)
    assert verdict.passed
    assert verdict.value == {"name": "Ada", "address": {"city": "London"}}


def test_json_schema_names_the_nested_path_that_is_wrong() -> None:
    """The reason and the feedback carry the JSON path and the error."""
    verdict = judge(json_schema(CONTACT), '{"name": "Ada", "address": {"city": 7}}')
    assert not verdict.passed
    assert "$.address.city" in verdict.reason
    assert "7 is not of type 'string'" in verdict.reason
    assert "$.address.city" in verdict.feedback


def test_json_schema_says_when_there_is_no_json() -> None:
    """Output without JSON fails with a reason that says so."""
    verdict = judge(json_schema(CONTACT), "I could not find a contact.")
    assert not verdict.passed
    assert "no JSON object or array found" in verdict.reason


def test_json_schema_takes_the_first_of_several_blobs() -> None:
    """With several JSON values in prose, the first is judged."""
    output = 'First {"name": "Ada", "address": {"city": "L"}} then {"name": 1}'
    assert judge(json_schema(CONTACT), output).value["name"] == "Ada"


def test_json_schema_refuses_a_huge_output_quickly() -> None:
    """A multi-megabyte output is rejected unread, not parsed."""
    verdict = judge(json_schema(CONTACT), "[" * 3_000_000)
    assert not verdict.passed
    assert "over the limit" in verdict.reason


def test_json_schema_rejects_a_bad_schema_when_made() -> None:
    """An invalid schema is a configuration error at construction, not at run time."""
    with pytest.raises(ConfigError, match="invalid JSON Schema"):
        json_schema({"type": "no-such-type"})


def test_validators_have_readable_reprs() -> None:
    """The repr names the validator, since it shows up in every step log."""
    assert repr(json_schema(CONTACT)) == "json_schema('contact')"
    assert repr(function_call()) == "function_call()"


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
    verdict = judge(function_call(), output, functions=[AREA])
    assert verdict.passed, verdict.reason
    assert verdict.value[0]["name"] == "area"


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        ("[volume(base=1, height=2)]", "volume is not an offered function"),
        ("[area(base=1)]", "missing required argument(s) height"),
        ("[area(base=1, height=2, colour='red')]", "unknown argument(s) colour"),
        ("[area(base='ten', height=2)]", "area.base should be integer"),
        ("[area(base=True, height=2)]", "area.base should be integer"),
        ("[area(base=1, height=2, unit='km')]", "must be one of ['cm', 'm']"),
        ("[area(10, 5)]", "positional arguments"),
        ("[area(base=__import__('os').getcwd(), height=1)]", "not a literal value"),
        ("The area is 25.", "neither Python call syntax nor JSON"),
    ],
)
def test_function_call_names_what_is_wrong(output: str, reason: str) -> None:
    """Each kind of bad call fails with a reason that names the problem."""
    verdict = judge(function_call(), output, functions=[AREA])
    assert not verdict.passed
    assert reason in verdict.reason
    assert verdict.feedback
