"""``json_schema(schema)``: the output holds JSON valid against a Draft 2020-12 schema."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cascade.errors import ConfigError
from cascade.types import Attempt, Verdict
from cascade.validators.base import CostClass
from cascade.validators.jsonvalue import extract_json

__all__ = ["json_schema"]


class _JsonSchema:
    cost_class = CostClass.FREE

    def __init__(self, schema: Mapping[str, Any], label: str) -> None:
        # Imported here so that `import cascade` does not pay for jsonschema's import.
        import jsonschema  # noqa: PLC0415

        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise ConfigError(f"invalid JSON Schema {label}: {exc.message}") from exc
        self._validator = jsonschema.Draft202012Validator(schema)
        self._best_match = jsonschema.exceptions.best_match
        self._label = label

    def __repr__(self) -> str:
        return f"json_schema({self._label})"

    def __call__(self, attempt: Attempt) -> Verdict:
        value, problem = extract_json(attempt.output)
        if problem is not None:
            return Verdict(
                passed=False,
                reason=problem,
                feedback="Answer with one JSON value that matches the requested schema.",
            )
        if self._validator.is_valid(value):
            return Verdict(passed=True, value=value)
        error = self._best_match(self._validator.iter_errors(value))
        where = error.json_path if error is not None else "$"
        message = error.message if error is not None else "invalid"
        return Verdict(
            passed=False,
            reason=f"schema violation at {where}: {message}",
            feedback=f"Your JSON is invalid at {where}: {message}. Return the corrected JSON only.",
            value=value,
        )


def json_schema(schema: Mapping[str, Any] | str | Path) -> _JsonSchema:
    """Pass when the output holds JSON valid against ``schema`` (a mapping or a file path).

    The schema is checked and compiled once, when the validator is made.

    >>> json_schema({"title": "contact", "type": "object", "required": ["name"]})
    json_schema('contact')
    """
    if isinstance(schema, str | Path):
        path = Path(schema)
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read JSON Schema {path}: {exc}") from exc
        return _JsonSchema(loaded, repr(str(path)))
    if not isinstance(schema, Mapping):
        raise ConfigError(f"a JSON Schema must be an object, got {type(schema).__name__}")
    label = schema.get("title") or schema.get("$id") or "<schema>"
    return _JsonSchema(schema, repr(str(label)))
