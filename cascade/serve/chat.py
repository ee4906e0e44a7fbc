"""A Chat Completions request, read and checked: what ``cascade serve`` runs, or why not.

:func:`read_request` turns a decoded body into a :class:`ChatRequest` or raises
:class:`BadRequest` naming the parameter that is wrong, which the server answers with a 400 in
OpenAI's error shape. The request's ``model`` names a policy (``cascade/<task_type>``, or the
bare task type); its messages are the task; a ``response_format`` with a JSON Schema and
``tools`` become the task's ``schema`` and ``functions``, which the server's validators check.

>>> limits = RequestLimits()
>>> body = {"model": "cascade/contacts", "messages": [{"role": "user", "content": "Ada"}]}
>>> read_request(body, {"contacts"}, limits).task_type
'contacts'
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from cascade.errors import ConfigError
from cascade.serve.tools import choice_of, tool_problem
from cascade.validators.schema import json_schema

__all__ = ["MODEL_PREFIX", "BadRequest", "ChatRequest", "RequestLimits", "read_request"]

MODEL_PREFIX = "cascade/"
_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
_MESSAGE_KEYS = frozenset({"role", "content", "name", "tool_call_id", "tool_calls"})


class BadRequest(Exception):  # named as the HTTP status it becomes
    """A request that cannot be served as sent: OpenAI's ``invalid_request_error``."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


@dataclass(frozen=True, slots=True)
class RequestLimits:
    """What one request may carry: body bytes, messages, and ``max_tokens``."""

    max_body_bytes: int = 1_000_000
    max_messages: int = 256
    max_tokens: int = 16_384

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_messages", "max_tokens"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1")


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A request the server can run: the policy it names and the task it carries."""

    task_type: str
    messages: tuple[dict[str, Any], ...]
    response_format: dict[str, Any] | None
    schema: dict[str, Any] | None
    tools: tuple[dict[str, Any], ...] | None
    tool_choice: Any
    max_tokens: int | None
    stream: bool
    include_usage: bool

    def shape(self) -> str:
        """What tells one cascade from another: the parameters sent to the models."""
        return json.dumps(
            [self.task_type, self.response_format, self.tools, self.tool_choice, self.max_tokens],
            sort_keys=True,
        )

    def functions(self) -> list[dict[str, Any]]:
        """The functions a call may name: those the tools offer, or the one tool_choice names."""
        _, named = choice_of(self.tool_choice)
        offered = [dict(tool["function"]) for tool in self.tools or ()]
        return [f for f in offered if f["name"] == named] if named is not None else offered


def read_request(body: Any, task_types: Collection[str], limits: RequestLimits) -> ChatRequest:
    """Check a decoded request body; raise :class:`BadRequest` naming what is wrong."""
    if not isinstance(body, Mapping):
        raise BadRequest("the request body must be a JSON object")
    task_type = _task_type(body.get("model"), task_types)
    messages = _messages(body.get("messages"), limits)
    response_format, schema = _response_format(body.get("response_format"))
    tools = _tools(body.get("tools"))
    tool_choice = body.get("tool_choice")
    if tools is None and tool_choice is not None:
        raise BadRequest("tool_choice needs tools", "tool_choice")
    if tools is not None and (problem := tool_problem(tools, tool_choice)) is not None:
        raise BadRequest(*problem)
    asked = [_max_tokens(body.get(name), name, limits)
             for name in ("max_completion_tokens", "max_tokens")]  # fmt: skip
    max_tokens = min((n for n in asked if n is not None), default=None)
    stream = body.get("stream") or False  # null is the default, as OpenAI's API has it
    if not isinstance(stream, bool):
        raise BadRequest("stream must be true or false", "stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, Mapping):
        raise BadRequest("stream_options must be an object", "stream_options")
    if body.get("n") not in (None, 1):
        raise BadRequest("only n = 1 is served: one task, one answer", "n")
    return ChatRequest(task_type, messages, response_format, schema, tools,
                       tool_choice, max_tokens, stream,
                       bool(options.get("include_usage", False)))  # fmt: skip


def _max_tokens(value: Any, name: str, limits: RequestLimits) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadRequest(f"{name} must be a positive integer", name)
    if value > limits.max_tokens:
        raise BadRequest(f"{name} is {value}, over this server's limit of {limits.max_tokens}",
                         name)  # fmt: skip
    return value


def _task_type(model: Any, task_types: Collection[str]) -> str:
    if not isinstance(model, str) or not model:
        raise BadRequest("model is required: cascade/<task type>", "model")
    name = model.removeprefix(MODEL_PREFIX)
    if name not in task_types:
        known = ", ".join(MODEL_PREFIX + t for t in sorted(task_types))
        raise BadRequest(f"the model {model!r} does not exist: this server serves {known}",
                         "model", "model_not_found")  # fmt: skip
    return name


def _messages(messages: Any, limits: RequestLimits) -> tuple[dict[str, Any], ...]:
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages must be a non-empty list", "messages")
    if len(messages) > limits.max_messages:
        raise BadRequest(f"{len(messages)} messages, over this server's limit of "
                         f"{limits.max_messages}", "messages")  # fmt: skip
    return tuple(_message(message, f"messages[{i}]") for i, message in enumerate(messages))


def _message(message: Any, where: str) -> dict[str, Any]:
    if not isinstance(message, Mapping):
        raise BadRequest(f"{where} must be an object", where)
    role = message.get("role")
    if role not in _ROLES:
        raise BadRequest(f"{where}.role must be one of {', '.join(sorted(_ROLES))}",
                         f"{where}.role")  # fmt: skip
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(_text_part(part, f"{where}.content[{i}]")
                          for i, part in enumerate(content))  # fmt: skip
    elif content is None and role == "assistant" and message.get("tool_calls"):
        content = ""
    if not isinstance(content, str):
        raise BadRequest(f"{where}.content must be a string or a list of text parts",
                         f"{where}.content")  # fmt: skip
    kept = {k: v for k, v in message.items() if k in _MESSAGE_KEYS}
    kept["content"] = content
    return kept


def _text_part(part: Any, where: str) -> str:
    if (
        isinstance(part, Mapping)
        and part.get("type") == "text"
        and isinstance(part.get("text"), str)
    ):
        return str(part["text"])
    raise BadRequest(f"{where}: only text parts are served", where)


def _response_format(value: Any) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    if value is None:
        return None, None
    if not isinstance(value, Mapping):
        raise BadRequest("response_format must be an object", "response_format")
    kind = value.get("type")
    if kind == "text":
        return dict(value), None
    if kind == "json_object":
        return dict(value), {"type": "object"}
    if kind != "json_schema":
        raise BadRequest("response_format.type must be text, json_object or json_schema",
                         "response_format.type")  # fmt: skip
    spec = value.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, Mapping) else None
    if not isinstance(schema, Mapping):
        raise BadRequest("response_format.json_schema.schema must be a JSON Schema object",
                         "response_format.json_schema.schema")  # fmt: skip
    _check_schema(schema, "response_format.json_schema.schema")
    return dict(value), dict(schema)


_CHECKED: dict[str, None] = {}
"""The digests of schemas found valid (a client sends the same few with every request)."""
_CHECKED_MAX = 1024


def _check_schema(schema: Mapping[str, Any], param: str) -> None:
    """Refuse ``schema`` unless it compiles; each distinct one is compiled once."""
    digest = hashlib.sha256(json.dumps(schema, sort_keys=True).encode()).hexdigest()
    if digest in _CHECKED:
        return
    try:
        json_schema(schema)
    except (ConfigError, RecursionError) as exc:
        raise BadRequest(f"{param} is not a valid JSON Schema: {exc}", param) from exc
    if len(_CHECKED) >= _CHECKED_MAX:
        _CHECKED.clear()
    _CHECKED[digest] = None


def _tools(value: Any) -> tuple[dict[str, Any], ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise BadRequest("tools must be a non-empty list", "tools")
    for index, tool in enumerate(value):
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if (
            not isinstance(tool, Mapping)
            or tool.get("type") != "function"
            or not isinstance(function, Mapping)
            or not isinstance(function.get("name"), str)
        ):
            raise BadRequest(f"tools[{index}] must be a function tool with a name",
                             f"tools[{index}]")  # fmt: skip
        parameters = function.get("parameters")
        where = f"tools[{index}].function.parameters"
        if parameters is not None and not isinstance(parameters, Mapping):
            raise BadRequest(f"{where} must be a JSON Schema object", where)
        if parameters is not None:
            _check_schema(parameters, where)
    return tuple(dict(tool) for tool in value)
