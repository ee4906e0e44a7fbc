"""``openai-chat``: chat-completions request/response pairs, one JSON object per line.

Each line is an object with the request (the ``chat.completions.create`` arguments) under
``request`` (or ``request_body`` or ``kwargs``) and the ``ChatCompletion`` under ``response``
(or ``response_body`` or ``completion``). Either may be wrapped as ``{"body": ..., "headers":
...}`` as HTTP-level loggers write them; headers are never read. Optional top-level fields:
``latency_s``, ``latency_ms`` or ``duration_ms``; ``cost_usd`` or ``cost``. For example::

    {"request": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]},
     "response": {"model": "gpt-4o-mini-2024-07-18", "choices": [{"message":
        {"role": "assistant", "content": "Hello!"}}], "usage": {"prompt_tokens": 8,
        "completion_tokens": 2}}, "latency_ms": 412}

The served model is the response's ``model`` (the request's where the response has none).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cascade.traffic.collect import Collector, read_lines
from cascade.traffic.exchange import Exchange, Malformed, from_openai, number, secret_params

__all__ = ["read_openai_chat"]

_REQUEST = ("request", "request_body", "kwargs")
_RESPONSE = ("response", "response_body", "completion")


def read_openai_chat(paths: list[Path], into: Collector) -> None:
    """Read logs of request/response pairs into ``into``; bad lines are quarantined."""
    for path in paths:
        for line_no, text in read_lines(path):
            try:
                into.add(exchange(json.loads(text)))
            except (ValueError, RecursionError) as exc:  # Malformed, JSONDecodeError are these
                reason = str(exc) if isinstance(exc, Malformed) else f"not JSON: {exc}"
                into.quarantine(path.name, line_no, reason, text)


def exchange(line: Any) -> Exchange:
    """One logged pair as an :class:`Exchange`."""
    if not isinstance(line, Mapping):
        raise Malformed("the line is not a JSON object")
    request, request_secrets = _unwrap(_first(line, _REQUEST, "request"))
    response, _ = _unwrap(_first(line, _RESPONSE, "response"))
    latency = number(line.get("latency_s"))
    for key in ("latency_ms", "duration_ms"):
        if latency is None and number(line.get(key)) is not None:
            latency = float(line[key]) / 1000
    cost = number(line.get("cost_usd", line.get("cost")))
    around = {k: v for k, v in line.items() if k not in (*_REQUEST, *_RESPONSE)}
    return from_openai(
        request,
        response,
        latency_s=latency,
        cost_usd=cost,
        secrets=(*request_secrets, *secret_params(around)),
    )


def _first(line: Mapping[str, Any], keys: tuple[str, ...], what: str) -> Any:
    for key in keys:
        if key in line:
            return line[key]
    raise Malformed(f"the line has no {what} (looked for {', '.join(keys)})")


def _unwrap(value: Any) -> tuple[Any, tuple[str, ...]]:
    """An HTTP-level ``{"body": ..., "headers": ...}`` as its body, and its headers' secrets."""
    if isinstance(value, Mapping) and isinstance(value.get("body"), Mapping):
        return value["body"], secret_params({k: v for k, v in value.items() if k != "body"})
    return value, ()
