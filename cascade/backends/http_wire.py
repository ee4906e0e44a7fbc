"""What the lean HTTP backend sends and reads: the Chat Completions API, as plain JSON.

Which URL and headers a model is called at, which tier params may go in the body, the error a
refusal is, and the text, usage and model an answer holds. :mod:`cascade.backends.http` does
the calling.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

from cascade.backends.answer import calls_text
from cascade.backends.provider_errors import without
from cascade.errors import (
    AuthenticationFailed,
    BadRequest,
    MalformedResponse,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServerError,
    UnknownModel,
    parse_retry_after,
)
from cascade.types import Usage

__all__ = ["body_of", "model_problem", "params_problem", "read", "refused", "where"]

AGENT = "cascade-http/1"
"""The lean path's ``User-Agent``: a provider's logs (and the tests) tell its calls apart."""

_OPENAI = "https://api.openai.com/v1"
_CONNECTION = frozenset({"api_base", "api_key", "api_version", "organization", "extra_headers"})
"""Tier params that say where and as whom to call: never sent in the body."""
_LITELLM_ONLY = frozenset(
    {"drop_params", "num_retries", "max_retries", "timeout", "caching", "custom_llm_provider",
     "base_model", "mock_response", "fallbacks", "api_type", "input_cost_per_token",
     "output_cost_per_token"}
)  # fmt: skip
"""litellm's own settings: no Chat Completions server takes them in a request body."""


def model_problem(model: str) -> str | None:
    """Why ``model`` cannot go over the lean HTTP path, or None when it can.

    >>> model_problem("openai/gpt-4o-mini") is None
    True
    >>> model_problem("anthropic/claude-3-5-haiku")[-48:]
    'azure/... models, not anthropic/claude-3-5-haiku'
    """
    provider, slash, _ = model.partition("/")
    if not slash or provider in ("openai", "azure"):
        return None
    return ("backend = 'http' calls the Chat Completions API: openai/... or azure/... models, "
            f"not {model}")  # fmt: skip


def params_problem(model: str, params: Mapping[str, Any]) -> str | None:
    """Why a tier's ``params`` cannot go over the lean path with ``model``, or None.

    >>> params_problem("openai/m", {"num_retries": 3})
    "num_retries is litellm's own setting, which backend = 'http' cannot send: drop it"
    """
    for key in params:
        if key in _LITELLM_ONLY:
            return f"{key} is litellm's own setting, which backend = 'http' cannot send: drop it"
    if model.startswith("azure/") and not (params.get("api_version")
                                           or os.environ.get("AZURE_API_VERSION")):  # fmt: skip
        return f"{model}: an azure tier needs api_version (in params, or AZURE_API_VERSION)"
    return None


def where(model: str, params: Mapping[str, Any]) -> tuple[str, dict[str, str], str]:
    """The URL, headers and model name of a call to ``model`` (raises :class:`ProviderError`)."""
    headers = {"Content-Type": "application/json", "Accept": "application/json",
               "User-Agent": AGENT}  # fmt: skip
    extra = params.get("extra_headers")
    if isinstance(extra, Mapping):
        headers.update({str(k): str(v) for k, v in extra.items()})
    provider, slash, name = model.partition("/")
    if not slash:
        provider, name = "openai", model
    if provider == "azure":
        base = params.get("api_base") or os.environ.get("AZURE_API_BASE")
        version = params.get("api_version") or os.environ.get("AZURE_API_VERSION")
        if not base or not version:
            raise BadRequest(f"{model}: an azure tier needs api_base and api_version "
                             "(or AZURE_API_BASE and AZURE_API_VERSION)")  # fmt: skip
        key = params.get("api_key") or os.environ.get("AZURE_API_KEY")
        if key:
            headers["api-key"] = str(key)
        url = f"{str(base).rstrip('/')}/openai/deployments/{name}/chat/completions"
        return f"{url}?api-version={version}", headers, name
    base = (params.get("api_base") or os.environ.get("OPENAI_BASE_URL")
            or os.environ.get("OPENAI_API_BASE") or _OPENAI)  # fmt: skip
    key = params.get("api_key") or os.environ.get("OPENAI_API_KEY")
    if key:
        headers["Authorization"] = f"Bearer {key}"
    elif base == _OPENAI:
        raise AuthenticationFailed(f"{model}: no API key: set OPENAI_API_KEY or the tier's api_key")
    if params.get("organization"):
        headers["OpenAI-Organization"] = str(params["organization"])
    return f"{str(base).rstrip('/')}/chat/completions", headers, name


def body_of(name: str, messages: Iterable[Mapping[str, str]], params: Mapping[str, Any]) -> bytes:
    """The request body: the model's name, the messages and the tier's other params.

    ``extra_body`` is merged in at the top, as the OpenAI SDK does (vLLM's ``guided_json``, say).
    A value JSON cannot carry (a set, ``nan``) is a :class:`BadRequest`: no retry mends it.
    """
    if (problem := params_problem("", params)) is not None:
        raise BadRequest(problem)
    body = {key: value for key, value in params.items() if key not in _CONNECTION}
    extra = body.pop("extra_body", None)
    body = {"model": name, "messages": [dict(m) for m in messages], **body}
    if isinstance(extra, Mapping):
        body.update(extra)
    try:
        return json.dumps(body, default=_plain, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"the tier's params cannot be sent as JSON: {exc}") from exc


def _plain(value: object) -> object:
    """JSON for what ``json`` cannot write itself: a tier's frozen mappings, say."""
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def refused(
    status: int, raw: bytes, headers: Mapping[str, str], hide: Iterable[str] = ()
) -> ProviderError:
    """The error for an answer other than 200, as litellm's mapping would make it.

    The ``hide`` values (the call's key) are taken out of the provider's words before they are
    cut short, so that no part of a key is left where redaction cannot recognise it.
    """
    message = f"HTTP {status}: {_said(raw, hide)}"
    if status == 429:
        after = headers.get("Retry-After")
        return RateLimited(message, parse_retry_after(after) if after is not None else None)
    if status in (401, 403):
        return AuthenticationFailed(f"the provider refused the credentials ({status}): {message}")
    if status == 404:
        return UnknownModel(message)
    if status == 408:
        return ProviderTimeout(message)
    if status >= 500:
        return ServerError(message)
    if status >= 400:
        return BadRequest(f"the provider refused the request ({status}): {message}")
    return MalformedResponse(message)


def _said(raw: bytes, hide: Iterable[str]) -> str:
    """What an error answer says: its ``error.message``, else the start of its body."""
    try:
        said = str(json.loads(raw)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        said = raw[:4000].decode("utf-8", "replace")
    return without(said, hide)[:400]


def read(raw: bytes, hide: Iterable[str] = ()) -> tuple[str, Usage, str]:
    """A completion's text (its tool calls as JSON, when it made some), usage and model."""
    try:
        completion = json.loads(raw)
        if "error" in completion and "choices" not in completion:
            raise ServerError(f"HTTP 200 with an error: {_said(raw, hide)}")
        message = completion["choices"][0]["message"]
        usage = completion.get("usage") or {}
        counted = Usage(int(usage.get("prompt_tokens") or 0),
                        int(usage.get("completion_tokens") or 0))  # fmt: skip
        served = str(completion.get("model") or "")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise MalformedResponse(f"completion has no usable choice or usage: {exc}") from exc
    if counted.prompt_tokens < 0 or counted.completion_tokens < 0:
        raise MalformedResponse(f"completion counts negative tokens: {counted}")
    calls = message.get("tool_calls") if isinstance(message, Mapping) else None
    if calls:
        try:
            pairs = [(c["function"]["name"], c["function"].get("arguments")) for c in calls]
        except (KeyError, TypeError, AttributeError) as exc:
            problem = f"a tool call has no function name or arguments: {exc}"
            raise MalformedResponse(problem) from exc
        return calls_text(pairs), counted, served
    text = message.get("content") if isinstance(message, Mapping) else None
    if not isinstance(text, str):
        raise MalformedResponse(f"completion content is {type(text).__name__}, not text")
    return text, counted, served
