"""Provider exceptions (litellm's, openai's, httpx's, aiohttp's) mapped onto cascade's error tree.

Only names and attributes are read, so nothing here imports litellm. A call that got no reply
at all (the connection refused, reset or cut) is :class:`~cascade.errors.ConnectionFailed`,
apart from a 5xx, though litellm reports both as a 500.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from cascade.errors import (
    AuthenticationFailed,
    BadRequest,
    ConnectionFailed,
    MalformedResponse,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServerError,
    UnknownModel,
    parse_retry_after,
)
from cascade.secrets import REDACTED

__all__ = ["map_exception", "without"]

_SHORTEST_SECRET = 6


def without(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each of ``secrets`` replaced, before anything cuts it short.

    >>> without("bad key sk-abc12345 given", ["sk-abc12345", "k"])
    'bad key [REDACTED] given'
    """
    for secret in secrets:
        if len(secret) >= _SHORTEST_SECRET:  # not a one-letter stop sequence
            text = text.replace(secret, REDACTED)
    return text


def map_exception(exc: BaseException, hide: Iterable[str] = ()) -> ProviderError:
    """Map a litellm (or openai, or httpx) exception onto cascade's error tree.

    The ``hide`` values (the call's key) are taken out of the message before it is cut short,
    so that no part of a key is left where redaction cannot recognise it.
    """
    name = type(exc).__name__
    message = without(f"{name}: {exc}", hide)[:500]
    status = getattr(exc, "status_code", None)
    if name in {"Timeout", "APITimeoutError", "TimeoutError", "ReadTimeout"}:
        return ProviderTimeout(message)
    if name == "RateLimitError" or status == 429:
        return RateLimited(message, _retry_after(exc))
    if name == "APIResponseValidationError" or _caused_by_bad_json(exc):
        return MalformedResponse(message)
    if name == "APIConnectionError" or (isinstance(status, int) and status >= 500):
        # No reply at all is not a 5xx (litellm calls it a 500): the summary counts it apart.
        return ConnectionFailed(message) if _no_reply(exc) else ServerError(message)
    if name == "NotFoundError" or "LLM Provider NOT provided" in str(exc):
        return UnknownModel(message)
    if name in {"AuthenticationError", "PermissionDeniedError"} or status in (401, 403):
        return AuthenticationFailed(f"the provider refused the credentials ({status}): {message}")
    if isinstance(status, int) and 400 <= status < 500:
        return BadRequest(f"the provider refused the request ({status}): {message}")
    return MalformedResponse(message)


_NO_REPLY = {"APIConnectionError", "ConnectError", "ClientConnectorError", "RemoteProtocolError",
             "ServerDisconnectedError"}  # fmt: skip
"""Exceptions (openai, httpx, aiohttp) that say the connection failed before any reply."""


def _no_reply(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is a connection refused, reset or cut: no reply."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        name = type(cause).__name__
        if "Timeout" in name:
            return False
        if name in _NO_REPLY or isinstance(cause, ConnectionError):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def _caused_by_bad_json(exc: BaseException) -> bool:
    """Whether an unparseable body caused ``exc``: litellm reports one as a 500."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, ValueError) and type(seen).__name__ == "JSONDecodeError":
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _retry_after(exc: BaseException) -> float | None:
    """The ``Retry-After`` of a 429, wherever this litellm version keeps the headers."""
    candidates = (
        getattr(exc, "litellm_response_headers", None),
        getattr(getattr(exc, "response", None), "headers", None),
        getattr(exc, "headers", None),
    )
    for headers in candidates:
        if isinstance(headers, Mapping):
            # httpx.Headers is case-insensitive; a plain dict may use either spelling.
            value = headers.get("retry-after") or headers.get("Retry-After")
            if value is not None:
                return parse_retry_after(str(value))
    return None
