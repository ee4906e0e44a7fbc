"""A request's ``tools`` and ``tool_choice``: checked, then what they ask of the answer.

The backends give a model's tool calls as JSON text, ``[{"name": ..., "arguments": {...}}]``
(see :mod:`cascade.backends.litellm`); :func:`tool_calls_of` reads exactly that form back, and
only for functions the request offered, so prose that merely looks like a call stays prose.

What the answer must be follows ``tool_choice``: ``"required"``, or a named function, makes it
a call (of that function), checked by :func:`~cascade.validators.function_call`; ``"none"``
makes it text; ``"auto"`` (the default) lets it be either, and a call must then be a valid one.

>>> tool_calls_of('[{"name": "f", "arguments": {"x": 1}}]', {"f"})
[{'name': 'f', 'arguments': {'x': 1}}]
>>> tool_calls_of('f(x=1)', {"f"}) is None
True
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from cascade.types import Attempt, Verdict
from cascade.validators.base import CostClass
from cascade.validators.calls import function_call

__all__ = ["CallIfAny", "choice_of", "tool_calls_of", "tool_problem"]


def tool_calls_of(text: str, offered: Collection[str]) -> list[dict[str, Any]] | None:
    """The calls ``text`` holds in the backends' form, when it is that and names offered ones."""
    calls = _call_form(text)
    if calls is None or any(call["name"] not in offered for call in calls):
        return None
    return calls


def _call_form(text: str) -> list[dict[str, Any]] | None:
    """``text`` read as the backends' form of tool calls, whatever functions it names."""
    if not text.startswith("[{"):
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, list) or not value:
        return None
    for call in value:
        if not isinstance(call, dict) or set(call) != {"name", "arguments"}:
            return None
        if not isinstance(call["name"], str) or not isinstance(call["arguments"], dict):
            return None
    return value


def choice_of(tool_choice: Any) -> tuple[str, str | None]:
    """``(mode, function)``: mode ``none``, ``auto`` or ``required``; the function it names."""
    if tool_choice is None:
        return "auto", None
    if isinstance(tool_choice, str):
        return tool_choice, None
    return "required", str(tool_choice["function"]["name"])


def tool_problem(tools: Sequence[Mapping[str, Any]], tool_choice: Any) -> tuple[str, str] | None:
    """What is wrong with ``tools`` (their names) and ``tool_choice``: ``(message, param)``."""
    names: set[str] = set()
    for index, tool in enumerate(tools):
        name = tool["function"]["name"]
        if not name or len(name) > 64 or not name.replace("_", "a").replace("-", "a").isalnum():
            return (f"tools[{index}].function.name must be 1 to 64 letters, digits, _ or -",
                    f"tools[{index}].function.name")  # fmt: skip
        if name in names:
            return f"tools[{index}]: a second function named {name!r}", f"tools[{index}]"
        names.add(name)
    if tool_choice is None or tool_choice in ("none", "auto", "required"):
        return None
    function = tool_choice.get("function") if isinstance(tool_choice, Mapping) else None
    if (not isinstance(tool_choice, Mapping) or tool_choice.get("type") != "function"
            or not isinstance(function, Mapping)):  # fmt: skip
        return ('tool_choice must be "none", "auto", "required" or '
                '{"type": "function", "function": {"name": ...}}', "tool_choice")  # fmt: skip
    if function.get("name") not in names:
        return f"tool_choice names {function.get('name')!r}, which no tool offers", "tool_choice"
    return None


class CallIfAny:
    """``tool_choice: auto``: a text answer passes; a call must be a valid one, of one offered."""

    cost_class = CostClass.FREE

    def __init__(self) -> None:
        self._calls = function_call()

    def __repr__(self) -> str:
        return "call_if_any()"

    def __call__(self, attempt: Attempt) -> Verdict:
        """Pass a text answer; judge a call as :func:`~cascade.validators.function_call` does."""
        if _call_form(attempt.output) is None:
            return Verdict(True, reason="a text answer (tool_choice auto)")
        return self._calls(attempt)
