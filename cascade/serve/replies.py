"""What ``cascade serve`` answers: a ChatCompletion, its stream, or an error in OpenAI's shape.

An accepted answer becomes a normal ``chat.completion``: its ``model`` is the model that
served it, its ``usage`` the sum over every call the ladder made (re-asks and lower tiers
included), and, when the request offered tools, its calls are ``tool_calls``. A ladder that
ended without an accepted answer is never passed off as one: it is an error whose ``code``
says how it ended and whose ``reasons`` are the validators' (and the providers') last words.
The ``x-cascade-*`` headers say the tier, the attempts, the escalation reasons, the cost and
the task id either way.

>>> error_body("no", "invalid_request_error", param="model")["error"]["param"]
'model'
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any

from cascade.enums import Status
from cascade.outcome import Outcome
from cascade.secrets import redact
from cascade.serve.tools import tool_calls_of

__all__ = ["Reply", "completion_of", "error_body", "headers_of", "sse_chunks", "status_of"]


@dataclass(frozen=True, slots=True)
class Reply:
    """What to answer: the status, the JSON body, the headers, and whether to stream it."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str]
    stream: bool = False
    include_usage: bool = False


_STATUS = {
    Status.EXHAUSTED: (422, "cascade_rejected", "exhausted"),
    Status.BUDGET_EXHAUSTED: (422, "cascade_rejected", "budget_exhausted"),
    Status.DEADLINE: (504, "cascade_deadline", "deadline"),
    Status.FAILED: (502, "upstream_error", "failed"),
    Status.QUARANTINED: (400, "invalid_request_error", "quarantined"),
}
_HEADER_CHARS = 2000
_CHUNK_CHARS = 64


def error_body(
    message: str,
    kind: str,
    *,
    param: str | None = None,
    code: str | None = None,
    **more: Any,
) -> dict[str, Any]:
    """OpenAI's error shape: ``{"error": {"message", "type", "param", "code"}}`` and ``more``."""
    return {"error": {"message": redact(message), "type": kind, "param": param,
                      "code": code, **more}}  # fmt: skip


def status_of(outcome: Outcome) -> int:
    """The HTTP status an outcome is answered with: 200 only for an accepted answer."""
    return 200 if outcome.accepted else _STATUS.get(outcome.status, (500, "", ""))[0]


def completion_of(
    outcome: Outcome, created: int, *, offered: Collection[str] = ()
) -> dict[str, Any]:
    """The body of the answer to a request whose ladder ended with ``outcome``.

    An answer in the backends' form of tool calls, naming functions in ``offered``, becomes
    ``tool_calls``; any other is the message's content.
    """
    if not outcome.accepted:
        _, kind, code = _STATUS.get(outcome.status, (500, "server_error", str(outcome.status)))
        reasons = [redact(reason) for reason in outcome.reasons]
        said = f"no answer was accepted ({outcome.status}): " + "; ".join(reasons)
        return error_body(said, kind, code=code, reasons=reasons, task_id=outcome.task_id)
    text = outcome.output or ""
    message: dict[str, Any] = {"role": "assistant", "content": text}
    finish = "stop"
    calls = tool_calls_of(text, offered) if offered else None
    if calls:
        message["content"] = None
        message["tool_calls"] = [
            {"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
             "function": {"name": call["name"], "arguments": json.dumps(call["arguments"])}}
            for call in calls
        ]  # fmt: skip
        finish = "tool_calls"
    prompt = sum(step.prompt_tokens for step in outcome.steps)
    answer = sum(step.completion_tokens for step in outcome.steps)
    return {
        "id": outcome.task_id,
        "object": "chat.completion",
        "created": created,
        "model": _served(outcome),
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": answer,
                  "total_tokens": prompt + answer},
        "system_fingerprint": None,
    }  # fmt: skip


def _served(outcome: Outcome) -> str:
    """The model whose answer was accepted (a fallback's, when a fallback served it)."""
    if outcome.best_step is not None and 0 <= outcome.best_step < len(outcome.steps):
        step = outcome.steps[outcome.best_step]
        return step.model_served or step.model_requested
    for step in reversed(outcome.steps):
        if step.decision == "accept":
            return step.model_served or step.model_requested
    return outcome.model or ""


def headers_of(outcome: Outcome) -> dict[str, str]:
    """The ``x-cascade-*`` headers: tier, attempts, escalation reasons, cost and task id."""
    escalations = []
    for step in outcome.steps:
        if step.decision == "escalate":
            why = "; ".join(v.reason for v in step.verdicts if not v.passed) or step.error or ""
            escalations.append(f"tier {step.tier} ({step.model_requested}): {why}")
    reasons = " | ".join(escalations)
    return {
        "x-cascade-task-id": outcome.task_id,
        "x-cascade-status": str(outcome.status),
        "x-cascade-tier": "" if outcome.tier is None else str(outcome.tier),
        "x-cascade-attempts": str(len(outcome.steps)),
        "x-cascade-cost-usd": f"{outcome.cost_usd:.8f}",
        "x-cascade-escalations": _header_text(redact(reasons)),
    }


def _header_text(text: str) -> str:
    """``text`` as one header value: printable ASCII, one line, at most a couple of KB."""
    flat = " ".join(text.split())
    flat = flat.encode("ascii", "backslashreplace").decode("ascii")
    return flat if len(flat) <= _HEADER_CHARS else flat[: _HEADER_CHARS - 3] + "..."


def sse_chunks(completion: dict[str, Any], *, include_usage: bool) -> Iterator[bytes]:
    """An accepted answer as ``chat.completion.chunk`` events, then ``data: [DONE]``."""
    base = {"id": completion["id"], "object": "chat.completion.chunk",
            "created": completion["created"], "model": completion["model"],
            "system_fingerprint": None}  # fmt: skip
    choice = completion["choices"][0]
    message = choice["message"]

    def event(delta: dict[str, Any], finish: str | None = None, **more: Any) -> bytes:
        chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish,
                                      "logprobs": None}], **more}  # fmt: skip
        return b"data: " + json.dumps(chunk).encode() + b"\n\n"

    yield event({"role": "assistant", "content": ""})
    if message.get("tool_calls"):
        for index, call in enumerate(message["tool_calls"]):
            yield event({"tool_calls": [{"index": index, **call}]})
    else:
        text = message["content"] or ""
        for start in range(0, len(text), _CHUNK_CHARS):
            yield event({"content": text[start : start + _CHUNK_CHARS]})
    usage = {"usage": None} if include_usage else {}
    yield event({}, choice["finish_reason"], **usage)
    if include_usage:
        yield (
            b"data: "
            + json.dumps({**base, "choices": [], "usage": completion["usage"]}).encode()
            + b"\n\n"
        )
    yield b"data: [DONE]\n\n"
