"""Structured output: JSON extraction, json_schema and pydantic_model."""

from __future__ import annotations

import time
from typing import Any

import pydantic
import pytest

from cascade import Cascade, ConfigError, Settings, Store, Tier, json_schema, pydantic_model
from cascade.backends import ScriptedBackend
from cascade.testing import verdict_of
from cascade.validators import extract_json
from tests.helpers import NO_WAIT

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


class Address(pydantic.BaseModel):
    """A postal address."""

    city: str


class Contact(pydantic.BaseModel):
    """A contact with a nested address."""

    name: str
    address: Address


BOTH = [json_schema(CONTACT), pydantic_model(Contact)]
VALID = '{"name": "Ada", "address": {"city": "London"}}'


@pytest.mark.parametrize("validator", BOTH, ids=repr)
@pytest.mark.parametrize(
    "output",
    [
        VALID,
        f"Here you go:\n```json\n{VALID}\n```",
        f"Sure. {VALID} Anything else?",
        f"{VALID}\n\nAs JSON again: {VALID}",
    ],
    ids=["bare", "fenced", "prose", "repeated"],
)
def test_a_valid_object_passes_wherever_it_sits(validator: Any, output: str) -> None:
    """A valid object passes bare, fenced, in prose, or repeated identically."""
    verdict = verdict_of(validator, output)
    assert verdict.passed, verdict.reason
    parsed = verdict.value
    data = parsed.model_dump() if isinstance(parsed, pydantic.BaseModel) else parsed
    assert data == {"name": "Ada", "address": {"city": "London"}}


def test_pydantic_model_hands_on_the_instance() -> None:
    """The parsed value of pydantic_model is an instance of the model."""
    assert isinstance(verdict_of(pydantic_model(Contact), VALID).value, Contact)


@pytest.mark.parametrize("validator", BOTH, ids=repr)
def test_the_nested_path_that_is_wrong_is_named(validator: Any) -> None:
    """The reason and the feedback carry the JSON path and what is wrong there."""
    verdict = verdict_of(validator, '{"name": "Ada", "address": {"city": 7}}')
    assert not verdict.passed
    assert "$.address.city" in verdict.reason
    assert "string" in verdict.reason
    assert "$.address.city" in verdict.feedback


@pytest.mark.parametrize("validator", BOTH, ids=repr)
@pytest.mark.parametrize(
    ("output", "reason"),
    [
        ("I could not find a contact.", "no JSON object or array found"),
        ("", "output is empty"),
        ('{"name": "Ada", "address": {"city": "L"}} or {"name": "Bo"}', "several different JSON"),
        ('```json\n{"a": 1}\n```\n```json\n{"a": 2}\n```', "several different JSON"),
        ("[" * 3_000_000, "over the limit"),
    ],
    ids=["no-json", "empty", "two-blobs", "two-fences", "huge"],
)
def test_unusable_output_fails_with_a_clear_reason(
    validator: Any, output: str, reason: str
) -> None:
    """No JSON, several different JSON values or a huge output each fail, saying why."""
    verdict = verdict_of(validator, output)
    assert not verdict.passed
    assert reason in verdict.reason
    assert verdict.feedback


def test_a_huge_output_is_refused_quickly() -> None:
    """A multi-megabyte output is refused unread, in well under a second."""
    start = time.perf_counter()
    verdict_of(json_schema(CONTACT), '{"a": ' * 400_000)
    assert time.perf_counter() - start < 0.5


@pytest.mark.parametrize(
    "text",
    ["[1] " * 250_000, "{" * 900_000, '{"a": [' + "1," * 400_000 + "1]} tail {"],
    ids=["many-arrays", "open-braces", "big-valid"],
)
def test_extraction_stays_fast_on_hostile_prose(text: str) -> None:
    """Adversarial prose within the size cap is scanned in bounded time."""
    start = time.perf_counter()
    extract_json(text)
    assert time.perf_counter() - start < 1.0


def test_objects_win_over_arrays_in_prose() -> None:
    """A citation like [1] in prose is not taken for the answer."""
    assert extract_json('As noted in [1], the answer is {"a": 2}.') == ({"a": 2}, None)


def test_a_bad_schema_is_refused_when_made() -> None:
    """An invalid schema is a configuration error at construction, not at run time."""
    with pytest.raises(ConfigError, match="invalid JSON Schema"):
        json_schema({"type": "no-such-type"})


def test_a_remote_ref_is_never_fetched() -> None:
    """A schema naming a remote $ref is refused instead of reaching the network."""
    with pytest.raises(ConfigError, match="remote"):
        json_schema({"$ref": "https://example.com/contact.json"})


def test_a_schema_file_that_is_missing_is_named(tmp_path: Any) -> None:
    """A schema path that does not exist fails naming the path."""
    missing = tmp_path / "nope.json"
    with pytest.raises(ConfigError, match=r"nope\.json"):
        json_schema(missing)


def test_pydantic_model_refuses_what_is_not_a_model() -> None:
    """pydantic_model wants a BaseModel class."""
    with pytest.raises(ConfigError, match="BaseModel"):
        pydantic_model(dict)  # type: ignore[arg-type]


def test_reprs_are_readable() -> None:
    """The repr names the validator, since it shows up in every step log."""
    assert repr(json_schema(CONTACT)) == "json_schema('contact')"
    assert repr(pydantic_model(Contact)) == "pydantic_model(Contact)"


def test_the_parsed_instance_reaches_the_outcome_and_the_store(tmp_path: Any) -> None:
    """A cascade's outcome carries the model instance; the store keeps its JSON data."""
    store = Store(tmp_path / "run.db")
    backend = ScriptedBackend({"m": ["not json", VALID]})
    cascade = Cascade(
        [Tier("m", reasks=1)],
        pydantic_model(Contact),
        backend=backend,
        store=store,
        log=False,
        settings=Settings(retry=NO_WAIT),
    )
    outcome = cascade.run({"id": "c1", "input": "Ada lives in London"})
    assert outcome.accepted
    assert outcome.parsed == Contact(name="Ada", address=Address(city="London"))
    assert "Answer with exactly one JSON value" in backend.calls[1].messages[-1]["content"]
    stored = store.outcome(outcome.run_id, "c1")
    assert stored is not None
    assert stored.parsed == {"name": "Ada", "address": {"city": "London"}}
