"""``function_call()``: the output is a call of one of the task's functions, with valid arguments.

Two output forms are understood: Python call syntax, as prompt-mode function calling produces
(``[get_weather(city='Paris', days=3)]``), and JSON (``{"name": ..., "arguments": {...}}``, or a
list of those). Argument values must be literals; nothing is ever evaluated.

The function specs come from the task's ``functions`` field (JSON-Schema-style ``parameters``,
including the BFCL dialect's ``dict``, ``float`` and ``tuple`` types) unless given to the factory.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping, Sequence
from typing import Any

import jsonschema_rs

from cascade.types import Attempt, Verdict
from cascade.validators.base import CostClass
from cascade.validators.jsonvalue import MAX_OUTPUT_CHARS
from cascade.validators.schema import refuse_remote_ref

__all__ = ["function_call", "parse_calls", "to_json_schema"]

Call = dict[str, Any]
"""A parsed call: ``{"name": str, "arguments": dict}``."""

_BFCL_TYPES = {"dict": "object", "float": "number", "tuple": "array", "any": None}
_MAX_COMPILED = 1024


def parse_calls(text: str) -> tuple[list[Call] | None, str | None]:
    """Parse ``text`` as function calls: ``(calls, None)`` or ``(None, reason)``.

    >>> parse_calls("[area(base=10, height=5)]")
    ([{'name': 'area', 'arguments': {'base': 10, 'height': 5}}], None)
    """
    if len(text) > MAX_OUTPUT_CHARS:
        return None, f"output is {len(text)} characters, over the limit of {MAX_OUTPUT_CHARS}"
    body = _strip_fence(text.strip())
    if not body:
        return None, "output is empty; expected a function call"
    if body[0] in "{[" and (calls := _json_calls(body)) is not None:
        return calls, None
    return _python_calls(body)


def _strip_fence(text: str) -> str:
    if text.startswith("```") and text.endswith("```") and len(text) >= 6:
        inner = text[3:-3]
        return inner.split("\n", 1)[1].strip() if "\n" in inner else inner.strip()
    return text


def _json_calls(body: str) -> list[Call] | None:
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return None
    items = value if isinstance(value, list) else [value]
    calls: list[Call] = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            return None
        arguments = item.get("arguments", item.get("parameters", {}))
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except ValueError:
                return None
        if not isinstance(arguments, dict):
            return None
        calls.append({"name": item["name"], "arguments": arguments})
    return calls


def _python_calls(body: str) -> tuple[list[Call] | None, str | None]:
    try:
        tree = ast.parse(body, mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None, "output is neither Python call syntax nor JSON function calls"
    nodes = tree.elts if isinstance(tree, ast.List | ast.Tuple) else [tree]
    calls: list[Call] = []
    for node in nodes:
        if not isinstance(node, ast.Call):
            return None, "output must be a list of function calls, like [f(a=1)]"
        name = _dotted(node.func)
        if name is None:
            return None, "a called function must be a plain (dotted) name"
        if node.args:
            return None, f"call of {name} passes positional arguments; use name=value"
        arguments: dict[str, Any] = {}
        for keyword in node.keywords:
            if keyword.arg is None:
                return None, f"call of {name} uses **kwargs; name every argument"
            try:
                value = ast.literal_eval(keyword.value)
            except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
                return None, f"argument {keyword.arg} of {name} is not a literal value"
            if not _json_like(value):
                return None, (f"argument {keyword.arg} of {name} is not JSON "
                              "(a set, bytes or a complex number, say)")  # fmt: skip
            arguments[keyword.arg] = value
        calls.append({"name": name, "arguments": arguments})
    return calls, None


def _json_like(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` is what JSON can hold (tuples as arrays): what a call can be sent as.

    >>> _json_like({"a": [1, 2.5, (None, True)]}), _json_like({1, 2}), _json_like(b"x")
    (True, False, False)
    """
    if depth > 100:
        return False
    if value is None or isinstance(value, str | bool | int | float):
        return True
    if isinstance(value, list | tuple):
        return all(_json_like(item, depth + 1) for item in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_like(v, depth + 1) for k, v in value.items())
    return False


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def to_json_schema(parameters: Any) -> Any:
    """A function's parameters in the BFCL dialect, as standard JSON Schema.

    >>> to_json_schema({"type": "dict", "properties": {"x": {"type": "float"}}})
    {'type': 'object', 'properties': {'x': {'type': 'number'}}}
    """
    if isinstance(parameters, list):
        return [to_json_schema(item) for item in parameters]
    if not isinstance(parameters, Mapping):
        return parameters
    converted: dict[str, Any] = {}
    for key, value in parameters.items():
        if key == "type" and isinstance(value, str) and value in _BFCL_TYPES:
            if (standard := _BFCL_TYPES[value]) is not None:
                converted[key] = standard
        elif key == "properties" and isinstance(value, Mapping):
            converted[key] = {name: to_json_schema(sub) for name, sub in value.items()}
        elif key in ("items", "anyOf", "oneOf", "allOf", "additionalProperties", "prefixItems"):
            converted[key] = to_json_schema(value)
        else:
            converted[key] = value
    return converted


def _as_json(value: Any) -> Any:
    """A literal argument as JSON data: tuples become lists; sets and bytes stay foreign."""
    if isinstance(value, list | tuple):
        return [_as_json(item) for item in value]
    if isinstance(value, dict):
        return {key: _as_json(item) for key, item in value.items()}
    return value


class _FunctionCall:
    cost_class = CostClass.CHEAP

    def __init__(self, functions: Sequence[Mapping[str, Any]] | None) -> None:
        self._functions = None if functions is None else _index(functions)
        self._compiled: dict[str, jsonschema_rs.Validator] = {}

    def __repr__(self) -> str:
        return "function_call()" if self._functions is None else "function_call(functions=...)"

    def __call__(self, attempt: Attempt) -> Verdict:
        functions = self._functions
        if functions is None:
            functions = _index(attempt.task.extra.get("functions") or ())
        calls, problem = parse_calls(attempt.output)
        if calls is None:
            return Verdict(False, reason=problem or "no call", feedback=_FORMAT_HINT)
        if not calls:
            return Verdict(False, reason="output holds no call", feedback=_FORMAT_HINT)
        for call in calls:
            spec = functions.get(call["name"])
            if spec is None:
                offered = ", ".join(sorted(functions)) or "none"
                reason = f"{call['name']} is not an offered function (offered: {offered})"
                return Verdict(False, reason=reason, feedback=f"Call only: {offered}.")
            verdict = self._check_call(call, spec)
            if verdict is not None:
                return verdict
        return Verdict(True, value=calls)

    def _check_call(self, call: Call, spec: Mapping[str, Any]) -> Verdict | None:
        """A failing verdict for a call whose arguments do not fit the spec, or ``None``."""
        name = call["name"]
        parameters = spec.get("parameters") or {}
        arguments = _as_json(call["arguments"])
        missing = [p for p in parameters.get("required") or () if p not in arguments]
        unknown = [a for a in arguments if a not in (parameters.get("properties") or {})]
        if missing:
            problem = f"call of {name} is missing required argument(s) {', '.join(missing)}"
        elif unknown:
            problem = f"call of {name} has unknown argument(s) {', '.join(unknown)}"
        else:
            validator = self._validator(name, parameters)
            if isinstance(validator, str):
                return Verdict(False, reason=validator, fault=True)
            try:
                error = next(iter(validator.iter_errors(arguments)), None)
            except ValueError as exc:  # a set, bytes or complex literal: not JSON data
                error, problem = None, f"call of {name} has an argument that is not JSON: {exc}"
            else:
                if error is None:
                    return None
                where = ".".join(str(part) for part in (name, *error.instance_path))
                problem = f"argument {where}: {error.message}"
        return Verdict(False, reason=problem, feedback=f"Fix the call: {problem}.")

    def _validator(self, name: str, parameters: Mapping[str, Any]) -> jsonschema_rs.Validator | str:
        """The compiled schema of a function's parameters, or why it cannot be compiled."""
        key = name + json.dumps(parameters, sort_keys=True, default=str)
        if (compiled := self._compiled.get(key)) is not None:
            return compiled
        try:
            compiled = jsonschema_rs.Draft202012Validator(
                to_json_schema(dict(parameters)), retriever=refuse_remote_ref
            )
        except (jsonschema_rs.ValidationError, jsonschema_rs.ReferencingError, ValueError) as exc:
            return f"function {name} has parameters that are not a valid JSON Schema: {exc}"
        if len(self._compiled) >= _MAX_COMPILED:
            self._compiled.clear()
        self._compiled[key] = compiled
        return compiled


_FORMAT_HINT = "Answer only with the call, as [function_name(param=value, ...)]."


def _index(functions: Any) -> dict[str, Mapping[str, Any]]:
    return {
        f["name"]: f for f in functions if isinstance(f, Mapping) and isinstance(f.get("name"), str)
    }


def function_call(functions: Sequence[Mapping[str, Any]] | None = None) -> _FunctionCall:
    """Pass when the output calls offered functions with valid arguments.

    With no ``functions``, each task's own ``functions`` field is used.

    >>> function_call()
    function_call()
    """
    return _FunctionCall(functions)
