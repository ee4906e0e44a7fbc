"""``mapped``: any JSONL log, read through a map file of JSON pointers (RFC 6901).

The map file is a JSON object from field to pointer; ``model``, ``answer`` and one of
``messages`` (a chat message list) or ``input`` (a text, sent as one user message) are needed::

    {"messages": "/req/msgs", "answer": "/res/text", "model": "/res/model",
     "prompt_tokens": "/res/usage/in", "completion_tokens": "/res/usage/out",
     "cost_usd": "/billing/usd", "latency_ms": "/timing/ms",
     "tools": "/req/tools", "response_format": "/req/format"}

The rest are optional (``latency_s`` or ``latency_ms``). ``answer`` may point at a text or at an
assistant message (its tool calls become the output). A line missing a needed value is
quarantined; a missing optional value is ``null``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cascade.errors import ConfigError
from cascade.traffic.collect import Collector, read_lines
from cascade.traffic.exchange import Exchange, Malformed, answer_text, from_openai, number

__all__ = ["load_map", "read_mapped", "resolve"]

_FIELDS = frozenset({"messages", "input", "answer", "model", "prompt_tokens",
                     "completion_tokens", "cost_usd", "latency_s", "latency_ms", "tools",
                     "response_format"})  # fmt: skip
_MISSING = object()


def load_map(path: Path) -> dict[str, str]:
    """A map file, checked: known fields, pointers that start with ``/``, the needed ones."""
    try:
        mapping = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a readable JSON map file: {exc}") from exc
    if not isinstance(mapping, dict):
        raise ConfigError(f"{path}: a map file is a JSON object from field to JSON pointer")
    unknown = sorted(set(mapping) - _FIELDS)
    if unknown:
        raise ConfigError(f"{path}: unknown field(s) {', '.join(unknown)}; "
                          f"known: {', '.join(sorted(_FIELDS))}")  # fmt: skip
    for key, pointer in mapping.items():
        if not isinstance(pointer, str) or not (pointer == "" or pointer.startswith("/")):
            raise ConfigError(f"{path}: {key}: {pointer!r} is not a JSON pointer (like /a/0/b)")
    missing = [k for k in ("answer", "model") if k not in mapping]
    if ("messages" in mapping) == ("input" in mapping):
        missing.append("exactly one of messages or input")
    if missing:
        raise ConfigError(f"{path}: the map needs {', '.join(missing)}")
    return mapping


def resolve(document: Any, pointer: str) -> Any:
    """The value at a JSON pointer, or a private marker when there is none.

    >>> resolve({"a/b": [1, {"~c": 2}]}, "/a~1b/1/~0c")
    2
    """
    value = document
    for token in pointer.split("/")[1:] if pointer else ():
        key = token.replace("~1", "/").replace("~0", "~")
        if isinstance(value, Mapping) and key in value:
            value = value[key]
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            return _MISSING
    return value


def read_mapped(mapping: Mapping[str, str], paths: list[Path], into: Collector) -> None:
    """Read logs through ``mapping`` into ``into``; bad lines are quarantined."""
    for path in paths:
        for line_no, text in read_lines(path):
            try:
                into.add(_exchange(json.loads(text), mapping))
            except (ValueError, RecursionError) as exc:
                reason = str(exc) if isinstance(exc, Malformed) else f"not JSON: {exc}"
                into.quarantine(path.name, line_no, reason, text)


def _exchange(line: Any, mapping: Mapping[str, str]) -> Exchange:
    def get(key: str, *, needed: bool = False) -> Any:
        if key not in mapping:
            return None
        value = resolve(line, mapping[key])
        if value is _MISSING:
            if needed:
                raise Malformed(f"no {key} at {mapping[key]}")
            return None
        return value

    if "input" in mapping:
        text = get("input", needed=True)
        if not isinstance(text, str):
            raise Malformed(f"the input at {mapping['input']} is not a text")
        messages: Any = [{"role": "user", "content": text}]
    else:
        messages = get("messages", needed=True)
    answer = get("answer", needed=True)
    output = answer if isinstance(answer, str) else answer_text(answer)
    request = {"messages": messages, "model": get("model", needed=True),
               "tools": get("tools"), "response_format": get("response_format")}  # fmt: skip
    response = {"model": request["model"], "choices": [{"message": {"content": output}}],
                "usage": {"prompt_tokens": get("prompt_tokens"),
                          "completion_tokens": get("completion_tokens")}}  # fmt: skip
    latency = number(get("latency_s"))
    if latency is None and number(get("latency_ms")) is not None:
        latency = float(get("latency_ms")) / 1000
    return from_openai(
        {k: v for k, v in request.items() if v is not None},
        response,
        latency_s=latency,
        cost_usd=number(get("cost_usd")),
    )
