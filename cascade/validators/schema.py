"""Structured output: ``json_schema(schema)`` and ``pydantic_model(Model)``.

Both find the JSON value in the output (see :func:`cascade.validators.extract_json`), check it,
and pass the parsed value on to the result. Both also offer ``check(value)`` for a value that is
already parsed. JSON Schemas are Draft 2020-12, compiled once by ``jsonschema-rs``; a schema can
never make the validator reach the network for a remote ``$ref``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import jsonschema_rs

from cascade.errors import ConfigError
from cascade.types import Attempt, Verdict
from cascade.validators.base import CostClass
from cascade.validators.jsonvalue import extract_json

if TYPE_CHECKING:
    import pydantic

__all__ = ["json_path", "json_schema", "pydantic_model"]

_MAX_MESSAGE = 300
_NO_JSON_FEEDBACK = "Answer with exactly one JSON value that matches the requested schema."


def json_path(parts: Sequence[str | int]) -> str:
    """A location in a JSON value, written the way people read it.

    >>> json_path(["contacts", 0, "email"])
    '$.contacts[0].email'
    """
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


def _short(message: str) -> str:
    return message if len(message) <= _MAX_MESSAGE else message[: _MAX_MESSAGE - 3] + "..."


def refuse_remote_ref(uri: str) -> NoReturn:
    raise ConfigError(f"remote $ref {uri} is not fetched: bundle the schema into one file")


class _JsonChecker:
    """Find the JSON value in the output, then judge it with ``check``."""

    cost_class = CostClass.FREE

    def __call__(self, attempt: Attempt) -> Verdict:
        value, problem = extract_json(attempt.output)
        if problem is not None:
            return Verdict(False, reason=problem, feedback=_NO_JSON_FEEDBACK)
        return self.check(value)

    def check(self, value: Any) -> Verdict:
        """Judge an already parsed value."""
        raise NotImplementedError


class _JsonSchema(_JsonChecker):
    def __init__(self, schema: Mapping[str, Any], label: str) -> None:
        try:
            self._validator = jsonschema_rs.Draft202012Validator(
                dict(schema), retriever=refuse_remote_ref
            )
        except (jsonschema_rs.ValidationError, jsonschema_rs.ReferencingError, ValueError) as exc:
            first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ConfigError(f"invalid JSON Schema {label}: {first_line}") from exc
        self._label = label

    def __repr__(self) -> str:
        return f"json_schema({self._label})"

    def check(self, value: Any) -> Verdict:
        """Judge an already parsed value."""
        if self._validator.is_valid(value):
            return Verdict(True, value=value)
        error = next(iter(self._validator.iter_errors(value)))
        where = json_path(error.instance_path)
        message = _short(error.message)
        return Verdict(
            False,
            reason=f"schema violation at {where}: {message}",
            feedback=f"Your JSON is invalid at {where}: {message}. Return the corrected JSON only.",
            value=value,
        )


class _TaskSchema(_JsonChecker):
    """Each task's own ``schema`` field, compiled once per distinct schema."""

    def __init__(self) -> None:
        self._compiled: dict[str, _JsonSchema] = {}

    def __repr__(self) -> str:
        return "json_schema(task)"

    def __call__(self, attempt: Attempt) -> Verdict:
        schema = attempt.task.extra.get("schema")
        if not isinstance(schema, Mapping):
            return Verdict(False, reason="the task carries no JSON Schema", fault=True)
        key = json.dumps(schema, sort_keys=True)
        checker = self._compiled.get(key)
        if checker is None:
            if len(self._compiled) >= _MAX_SCHEMAS:
                self._compiled.clear()
            checker = self._compiled[key] = _JsonSchema(schema, "task")
        return checker(attempt)


_MAX_SCHEMAS = 256
"""Distinct task schemas kept compiled at once."""


def json_schema(schema: Mapping[str, Any] | str | Path | None) -> _JsonChecker:
    """Pass when the output holds JSON valid against ``schema`` (a mapping or a file path).

    The schema is checked and compiled once, when the validator is made. With ``None``, each
    task's own ``schema`` field is used (compiled once per distinct schema).

    >>> json_schema({"title": "contact", "type": "object", "required": ["name"]})
    json_schema('contact')
    >>> json_schema(None)
    json_schema(task)
    """
    if schema is None:
        return _TaskSchema()
    if isinstance(schema, str | Path):
        path = Path(schema)
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read JSON Schema {path}: {exc}") from exc
        if not isinstance(loaded, Mapping):
            raise ConfigError(f"JSON Schema {path} must hold an object")
        return _JsonSchema(loaded, repr(str(loaded.get("title") or path.name)))
    if not isinstance(schema, Mapping):
        raise ConfigError(f"a JSON Schema must be an object, got {type(schema).__name__}")
    label = schema.get("title") or schema.get("$id") or "<schema>"
    return _JsonSchema(schema, repr(str(label)))


class _PydanticModel(_JsonChecker):
    def __init__(self, model: type[pydantic.BaseModel]) -> None:
        import pydantic  # noqa: PLC0415  # the caller's model class has imported it already

        self._invalid = pydantic.ValidationError
        self._model = model
        # The model's own core validator: a third faster than model_validate per call.
        self._validate = model.__pydantic_validator__.validate_python

    def __repr__(self) -> str:
        return f"pydantic_model({self._model.__name__})"

    def check(self, value: Any) -> Verdict:
        """Judge an already parsed value; the verdict's value is the model instance."""
        try:
            instance = self._validate(value)
        except self._invalid as exc:
            errors = exc.errors(include_url=False, include_input=False)
            first = errors[0]
            where = json_path(first["loc"])
            message = _short(first["msg"])
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            return Verdict(
                False,
                reason=f"{self._model.__name__} invalid at {where}: {message}{more}",
                feedback=f"Your JSON is invalid at {where}: {message}. "
                "Return the corrected JSON only.",
                value=value,
            )
        return Verdict(True, value=instance)


def pydantic_model(model: type[pydantic.BaseModel]) -> _PydanticModel:
    """Pass when the output holds JSON that validates as ``model``; the result is the instance.

    >>> import pydantic
    >>> class Contact(pydantic.BaseModel):
    ...     name: str
    >>> pydantic_model(Contact)
    pydantic_model(Contact)
    """
    import pydantic  # noqa: PLC0415  # not imported with cascade: only this validator needs it

    if not (isinstance(model, type) and issubclass(model, pydantic.BaseModel)):
        raise ConfigError(f"pydantic_model needs a pydantic BaseModel class, got {model!r}")
    return _PydanticModel(model)
