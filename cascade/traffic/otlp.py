"""``otlp``: OpenTelemetry GenAI spans exported as OTLP JSON, with message contents.

Each line is an OTLP ``ExportTraceServiceRequest`` in JSON (``{"resourceSpans": [...]}``), as
the collector's file exporter writes it. A call is a span with ``gen_ai.request.model`` or
``gen_ai.response.model``; the served model is the response's. Its answer is read from
``gen_ai.output.messages`` (the conventions' JSON messages, which ``cascade run --otel
--otel-content`` writes), ``gen_ai.completion`` / ``gen_ai.completion.0.content``, or a
``gen_ai.choice`` event; its prompt from ``gen_ai.input.messages``, ``gen_ai.prompt.N.role`` and
``.content``, ``gen_ai.{system,user,assistant,tool}.message`` events, or else the parent span's
``cascade.task.input`` (where cascade puts the task). Tools come from
``gen_ai.tool.definitions``, a ``response_format`` from ``gen_ai.request.response_format``
(JSON), or JSON mode from ``gen_ai.output.type = json``. Tokens are
``gen_ai.usage.input_tokens`` and ``output_tokens`` (or the older ``prompt_tokens`` and
``completion_tokens``), the cost ``cascade.cost_usd``, the latency the span's own duration.
A cascade span that is not an answer to the task's own prompt (a re-ask, a judge's call) is
skipped; a call span with no prompt or answer is quarantined.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from cascade.traffic.collect import Collector, read_lines
from cascade.traffic.exchange import Exchange, Malformed, chat_messages, number, secret_params

__all__ = ["read_otlp"]

_ANSWERS = frozenset({"call", "retry", "fallback", "calibration"})
_CREDENTIALS = ("http.request.header.", "url.full", "server.address")
"""Attributes that may carry credentials (a header, a URL's password): never kept, and
their secrets are removed wherever else they appear."""
_EVENT_ROLES = {f"gen_ai.{r}.message": r for r in ("system", "user", "assistant", "tool")}
_Span = tuple[dict[str, Any], dict[str, Any], int, str]
"""A span, its attributes decoded, and the line (number, text) it came on."""


def read_otlp(paths: list[Path], into: Collector) -> None:
    """Read OTLP JSON files into ``into``; unreadable lines and empty call spans quarantined."""
    for path in paths:
        spans: list[_Span] = []
        for line_no, text in read_lines(path):
            try:
                spans.extend((s, _attributes(s.get("attributes")), line_no, text)
                             for s in _spans(json.loads(text)))  # fmt: skip
            except (ValueError, RecursionError, AttributeError) as exc:
                reason = str(exc) if isinstance(exc, Malformed) else f"not OTLP JSON: {exc}"
                into.quarantine(path.name, line_no, reason, text)
        by_id = {(s.get("traceId"), s.get("spanId")): attrs for s, attrs, _, _ in spans}
        for span, attrs, line_no, text in spans:
            if not _is_call(attrs):
                continue
            try:
                parent = by_id.get((span.get("traceId"), span.get("parentSpanId")), {})
                into.add(_exchange(span, attrs, parent))
            except Malformed as exc:
                into.quarantine(path.name, line_no, f"span {span.get('name')!r}: {exc}", text)


def _spans(document: Any) -> Iterator[dict[str, Any]]:
    if not isinstance(document, Mapping) or not isinstance(document.get("resourceSpans"), list):
        raise Malformed("the line is not an OTLP trace export (no resourceSpans)")
    for resource in document["resourceSpans"]:
        for scope in resource.get("scopeSpans") or ():
            yield from scope.get("spans") or ()


def _value(value: Any) -> Any:
    """An OTLP ``AnyValue`` as plain JSON data."""
    if not isinstance(value, Mapping):
        return None
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in value:
            return value[key]
    if "intValue" in value:
        return int(value["intValue"])  # OTLP JSON writes 64-bit integers as strings
    if "arrayValue" in value:
        return [_value(v) for v in value["arrayValue"].get("values") or ()]
    if "kvlistValue" in value:
        return _attributes(value["kvlistValue"].get("values"))
    return None


def _attributes(raw: Any) -> dict[str, Any]:
    return {a["key"]: _value(a.get("value")) for a in raw or () if isinstance(a, Mapping)}


def _is_call(attrs: Mapping[str, Any]) -> bool:
    if "gen_ai.request.model" not in attrs and "gen_ai.response.model" not in attrs:
        return False
    return attrs.get("cascade.step.kind", "call") in _ANSWERS


def _exchange(
    span: Mapping[str, Any], attrs: Mapping[str, Any], parent: Mapping[str, Any]
) -> Exchange:
    model = attrs.get("gen_ai.response.model") or attrs.get("gen_ai.request.model")
    if not isinstance(model, str) or not model:
        raise Malformed("no model")
    tools = _json(attrs.get("gen_ai.tool.definitions"))
    prompt = attrs.get("gen_ai.usage.input_tokens", attrs.get("gen_ai.usage.prompt_tokens"))
    completion = attrs.get(
        "gen_ai.usage.output_tokens", attrs.get("gen_ai.usage.completion_tokens")
    )
    start, end = (
        number(_int(span.get("startTimeUnixNano"))),
        number(_int(span.get("endTimeUnixNano"))),
    )
    response_format = _json(attrs.get("gen_ai.request.response_format"))
    if response_format is None and attrs.get("gen_ai.output.type") == "json":
        response_format = {"type": "json_object"}
    return Exchange(
        messages=chat_messages(_prompt(span, attrs, parent)),
        response_format=response_format if isinstance(response_format, Mapping) else None,
        secrets=secret_params({k: v for k, v in attrs.items() if k.startswith(_CREDENTIALS)}),
        model=model,
        output=_answer(span, attrs),
        tools=tuple(tools) if isinstance(tools, list) and tools else None,
        prompt_tokens=None if number(prompt) is None else int(prompt),
        completion_tokens=None if number(completion) is None else int(completion),
        cost_usd=number(attrs.get("cascade.cost_usd")),
        latency_s=None if start is None or end is None or end < start else (end - start) / 1e9,
    )


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _json(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError as exc:
        raise Malformed(f"an attribute is not the JSON it should be: {exc}") from exc


def _prompt(span: Mapping[str, Any], attrs: Mapping[str, Any], parent: Mapping[str, Any]) -> Any:
    if "gen_ai.input.messages" in attrs:
        return [_flat(m) for m in _json(attrs["gen_ai.input.messages"]) or ()]
    numbered = _numbered(attrs, "gen_ai.prompt")
    if numbered:
        return numbered
    events = [
        {"role": _EVENT_ROLES[e["name"]], "content": _event_text(e)}
        for e in span.get("events") or ()
        if isinstance(e, Mapping) and e.get("name") in _EVENT_ROLES
    ]
    if events:
        return events
    task = parent.get("cascade.task.input")
    if isinstance(task, str):
        decoded = _json(task) if task.startswith("[") else task
        return decoded if isinstance(decoded, list) else [{"role": "user", "content": task}]
    raise Malformed("no prompt content (export with message contents on: --otel-content)")


def _answer(span: Mapping[str, Any], attrs: Mapping[str, Any]) -> str:
    if "gen_ai.output.messages" in attrs:
        messages = _json(attrs["gen_ai.output.messages"])
        if isinstance(messages, list) and messages:
            return str(_flat(messages[0])["content"])
    for key in ("gen_ai.completion", "gen_ai.completion.0.content"):
        if isinstance(attrs.get(key), str):
            return str(attrs[key])
    for event in span.get("events") or ():
        if isinstance(event, Mapping) and event.get("name") == "gen_ai.choice":
            return _event_text(event)
    raise Malformed("no answer content (export with message contents on: --otel-content)")


def _flat(message: Any) -> dict[str, Any]:
    """A conventions message (``role`` and ``parts``) as a chat message with text content."""
    if not isinstance(message, Mapping):
        raise Malformed("a message is not an object")
    if "parts" not in message:
        return dict(message)
    texts, calls = [], []
    for part in message["parts"] or ():
        if part.get("type") == "text":
            texts.append(str(part.get("content", "")))
        elif part.get("type") == "tool_call":
            calls.append({"name": part.get("name"), "arguments": part.get("arguments") or {}})
    return {
        "role": message.get("role", "user"),
        "content": json.dumps(calls) if calls else "".join(texts),
    }


def _numbered(attrs: Mapping[str, Any], prefix: str) -> list[dict[str, Any]]:
    found = []
    index = 0
    while f"{prefix}.{index}.content" in attrs or f"{prefix}.{index}.role" in attrs:
        found.append({"role": attrs.get(f"{prefix}.{index}.role", "user"),
                      "content": attrs.get(f"{prefix}.{index}.content") or ""})  # fmt: skip
        index += 1
    return found


def _event_text(event: Mapping[str, Any]) -> str:
    attrs = _attributes(event.get("attributes"))
    if isinstance(attrs.get("content"), str):
        return str(attrs["content"])
    message = _json(attrs.get("message"))
    if isinstance(message, Mapping):
        return str(message.get("content") or "")
    body = _value(event.get("body"))
    if isinstance(body, Mapping):
        inner = body.get("message", body)
        return str(inner.get("content") or "") if isinstance(inner, Mapping) else ""
    return ""
