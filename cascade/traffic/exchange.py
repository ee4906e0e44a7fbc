"""One logged call as the importers read it, and the reading of OpenAI chat bodies they share.

An :class:`Exchange` is what a log line says about one call: the request that matters for a
task (its messages, tools and ``response_format``), the model that served it, its answer, and
its tokens, cost and latency where the log has them. Nothing else of the request is kept: its
headers, keys and sampling settings never reach an :class:`Exchange`. A line that cannot be
read raises :class:`Malformed`, whose reason goes to the quarantine file.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Exchange",
    "Malformed",
    "answer_text",
    "chat_messages",
    "from_openai",
    "number",
    "secret_params",
]


class Malformed(ValueError):
    """A log line that holds no readable call; its message is the quarantine reason."""


@dataclass(frozen=True, slots=True)
class Exchange:
    """One call read from a log: the request's task part, who answered, and what it cost."""

    messages: tuple[dict[str, Any], ...]
    model: str
    output: str
    tools: tuple[Any, ...] | None = None
    response_format: Mapping[str, Any] | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: float | None = None
    latency_s: float | None = None
    batch: bool = False
    """Served through a batch API: priced at its batch rate where the cost is not logged."""
    secrets: tuple[str, ...] = ()
    """Credentials the logged request carried (keys, headers, URL passwords): never written,
    and removed wherever they appear in what is."""


def chat_messages(raw: Any) -> tuple[dict[str, Any], ...]:
    """A request's ``messages`` with text content: parts joined, a missing content empty."""
    if not isinstance(raw, list) or not raw:
        raise Malformed("the request has no messages")
    found = []
    for index, message in enumerate(raw):
        if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
            raise Malformed(f"messages[{index}] is not a chat message with a role")
        kept = {k: v for k, v in message.items() if k in ("role", "name", "tool_calls",
                                                              "tool_call_id")}  # fmt: skip
        kept["content"] = _text(message.get("content"), f"messages[{index}]")
        found.append(kept)
    return tuple(found)


def _text(content: Any, where: str) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, Mapping) and isinstance(part.get("text", part.get("content")),
                                                          str):  # fmt: skip
                texts.append(part.get("text", part.get("content")))
            # images and audio carry no text to replay; their place is kept by the rest
        return "".join(texts)
    raise Malformed(f"{where}: content is neither text nor a list of parts")


def answer_text(message: Any) -> str:
    """An assistant message as the output text: its tool calls as JSON calls, else its text.

    Tool calls become ``[{"name": ..., "arguments": {...}}]``, which the function-call
    validator reads.
    """
    if not isinstance(message, Mapping):
        raise Malformed("the answer is not a message")
    calls = message.get("tool_calls") or (
        [{"function": message["function_call"]}] if message.get("function_call") else None
    )
    if calls:
        found = []
        for call in calls:
            function = call.get("function") if isinstance(call, Mapping) else None
            if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
                raise Malformed("a tool call has no function name")
            arguments = function.get("arguments", {})
            if isinstance(arguments, str):
                # Kept as the model wrote it when it is not JSON: the validator will say so.
                with contextlib.suppress(ValueError):
                    arguments = json.loads(arguments) if arguments.strip() else {}
            found.append({"name": function["name"], "arguments": arguments})
        return json.dumps(found)
    return _text(message.get("content"), "the answer")


def number(value: Any) -> float | None:
    """A logged number, or ``None`` when the log has none (booleans are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


_TASK_PARAMS = frozenset({"messages", "model", "tools", "response_format", "functions"})


def secret_params(request: Mapping[str, Any]) -> tuple[str, ...]:
    """The credentials among a logged request's fields: see :func:`cascade.secrets.secret_values`.

    The prompt is not a credential, so ``messages`` is not searched; key-shaped text in it is
    still redacted when the dataset is written.
    """
    from cascade.secrets import secret_values  # noqa: PLC0415  # light, but only when importing

    return tuple(secret_values({k: v for k, v in request.items() if k not in _TASK_PARAMS}))


def from_openai(
    request: Any,
    response: Any,
    *,
    latency_s: float | None = None,
    cost_usd: float | None = None,
    batch: bool = False,
    secrets: Sequence[str] = (),
) -> Exchange:
    """An :class:`Exchange` from a chat-completions request body and its response body."""
    if not isinstance(request, Mapping):
        raise Malformed("the request is not a JSON object")
    if not isinstance(response, Mapping):
        raise Malformed("the response is not a JSON object")
    if "error" in response and not response.get("choices"):
        raise Malformed(f"the call failed: {json.dumps(response['error'])[:300]}")
    choices = response.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
        raise Malformed("the response has no choices")
    model = response.get("model") or request.get("model")
    if not isinstance(model, str) or not model:
        raise Malformed("neither the response nor the request names the model")
    tools = request.get("tools") or [
        {"type": "function", "function": f} for f in request.get("functions") or ()
    ]
    if not isinstance(tools, list):
        raise Malformed("the request's tools are not a list")
    response_format = request.get("response_format")
    if response_format is not None and not isinstance(response_format, Mapping):
        raise Malformed("the request's response_format is not an object")
    usage = response.get("usage")
    usage = usage if isinstance(usage, Mapping) else {}
    prompt = number(usage.get("prompt_tokens", usage.get("input_tokens")))
    completion = number(usage.get("completion_tokens", usage.get("output_tokens")))
    return Exchange(
        messages=chat_messages(request.get("messages")),
        model=model,
        output=answer_text(choices[0].get("message")),
        tools=tuple(tools) or None,
        response_format=response_format,
        prompt_tokens=None if prompt is None else int(prompt),
        completion_tokens=None if completion is None else int(completion),
        cost_usd=cost_usd,
        latency_s=latency_s,
        batch=batch,
        secrets=(*secret_params(request), *secrets),
    )
