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

from cascade.types import Attempt, Verdict
from cascade.validators.base import CostClass
from cascade.validators.jsonvalue import MAX_OUTPUT_CHARS

__all__ = ["function_call", "parse_calls"]

Call = dict[str, Any]
"""A parsed call: ``{"name": str, "arguments": dict}``."""

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "float": (int, float),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list, tuple),
    "tuple": (list, tuple),
    "dict": (dict,),
    "object": (dict,),
}


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
                arguments[keyword.arg] = ast.literal_eval(keyword.value)
            except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
                return None, f"argument {keyword.arg} of {name} is not a literal value"
        calls.append({"name": name, "arguments": arguments})
    return calls, None


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def _check_value(path: str, value: Any, schema: Mapping[str, Any]) -> str | None:
    """Why ``value`` does not fit ``schema`` (type, enum, items), or ``None``."""
    kind = schema.get("type")
    allowed = _TYPES.get(kind) if isinstance(kind, str) else None
    if allowed is not None:
        is_bool = isinstance(value, bool)
        if not isinstance(value, allowed) or (is_bool and kind != "boolean"):
            return f"{path} should be {kind}, got {type(value).__name__} {value!r}"
    enum = schema.get("enum")
    if isinstance(enum, list) and value not in enum:
        return f"{path} must be one of {enum!r}, got {value!r}"
    items = schema.get("items")
    if isinstance(value, list | tuple) and isinstance(items, Mapping):
        for index, item in enumerate(value):
            problem = _check_value(f"{path}[{index}]", item, items)
            if problem:
                return problem
    return None


def _check_call(call: Call, spec: Mapping[str, Any]) -> str | None:
    parameters = spec.get("parameters") or {}
    properties: Mapping[str, Any] = parameters.get("properties") or {}
    arguments: dict[str, Any] = call["arguments"]
    missing = [p for p in parameters.get("required") or () if p not in arguments]
    if missing:
        return f"call of {call['name']} is missing required argument(s) {', '.join(missing)}"
    unknown = [a for a in arguments if a not in properties]
    if unknown:
        return f"call of {call['name']} has unknown argument(s) {', '.join(unknown)}"
    for name, value in arguments.items():
        problem = _check_value(f"{call['name']}.{name}", value, properties[name])
        if problem:
            return problem
    return None


class _FunctionCall:
    cost_class = CostClass.CHEAP

    def __init__(self, functions: Sequence[Mapping[str, Any]] | None) -> None:
        self._functions = None if functions is None else _index(functions)

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
            problem = _check_call(call, spec)
            if problem:
                return Verdict(False, reason=problem, feedback=f"Fix the call: {problem}.")
        return Verdict(True, value=calls)


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
