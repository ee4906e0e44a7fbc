"""Secrets kept out of everything cascade writes: the step log, the store, results and reports.

A :class:`SecretRedactor` replaces with ``[REDACTED]`` the values under secret-looking keys,
text shaped like a key or an ``Authorization`` header, the literal values of secret-looking
environment variables (``*_API_KEY``, ``*_TOKEN``...), and any other secret it is given (the
``api_key`` a policy sets on a tier, say). It is a structlog processor for events, and
:meth:`SecretRedactor.text` cleans one string: a provider's error message that echoes the key
is cleaned before it becomes a step, a reason or a row.

>>> SecretRedactor({}).text("Incorrect API key provided: sk-proj-abcdefghijklmnop")
'Incorrect API key provided: [REDACTED]'
>>> SecretRedactor({}, extra=["hunter2hunter2"]).text("password hunter2hunter2 refused")
'password [REDACTED] refused'
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import Any
from urllib.parse import urlsplit

__all__ = ["REDACTED", "SecretRedactor", "redact", "register_secrets", "secret_values"]

REDACTED = "[REDACTED]"

_SECRET_KEY = re.compile(
    r"(^|[_-])(api[_-]?key|secret|password|passwd|authorization|token|auth[_-]?token"
    r"|access[_-]?token|refresh[_-]?token|bearer|cookie|session[_-]?token|private[_-]?key"
    r"|subscription[_-]?key|credentials?)$",
    re.IGNORECASE,
)
_SECRET_ENV = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?)$", re.IGNORECASE)
_SECRET_PATTERNS = (
    # A credential header, as text: keep the name, redact the value.
    r"(?P<header>(?i:\b(?:proxy-)?authorization|\bx-api-key|\bapi-key)['\"]?\s*[:=]\s*['\"]?"
    r"(?i:(?:bearer|basic)\s+)?)[^\s'\",}]+",
    r"(?i:\bbearer\s+)[A-Za-z0-9._~+/=-]{8,}",
    r"\b(?:sk|rk|pk)-[A-Za-z0-9_-]{12,}",
    r"\bAKIA[0-9A-Z]{16}\b",
    r"\bgh[pousr]_[A-Za-z0-9]{20,}\b",
    r"\bxox[abpr]-[A-Za-z0-9-]{10,}\b",
    # A URL's credentials (scheme://user:password@host): the host stays.
    r"(?<=://)[^/\s:@'\"]+:[^/\s@'\"]+(?=@)",
)
_MIN_SECRET = 8
"""Shorter strings cannot hold any secret we redact, so they are not scanned."""

_MARKS = ("sk-", "rk-", "pk-", "AKIA", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "xox", "://")
"""Text that each shape above must contain, as written: a string with none is not scanned."""
_MARKS_ANY_CASE = ("authorization", "api-key", "bearer")
"""The same for the shapes matched in any case, looked for in the lower-cased string."""

_OWN_FIELDS = frozenset(
    {"event", "level", "ts", "step", "tier", "kind", "decision", "prompt_tokens",
     "completion_tokens", "cost_usd", "latency_s", "passed"}
)  # fmt: skip
"""Fields cascade fills itself with numbers, enums and timestamps: nothing there to redact."""


class SecretRedactor:
    """A structlog processor that replaces secrets anywhere in an event with ``[REDACTED]``.

    It redacts values under secret-looking keys, text that looks like a key or an
    ``Authorization`` header, and the literal values of secret-looking environment variables
    (``*_API_KEY``, ``*_TOKEN``, ``*_SECRET``...) as they were when the redactor was made.
    """

    def __init__(
        self, environ: Mapping[str, str] | None = None, *, extra: Iterable[str] = ()
    ) -> None:
        env = os.environ if environ is None else environ
        values = {v for k, v in env.items() if _SECRET_ENV.search(k) and len(v) >= _MIN_SECRET}
        values |= {v for v in extra if isinstance(v, str) and len(v) >= _MIN_SECRET}
        # One pass per string: the environment's secrets first, longest first, so a secret
        # that contains another is replaced whole; then the shapes of keys and headers.
        literals = [re.escape(v) for v in sorted(values, key=len, reverse=True)]
        self._pattern = re.compile("|".join([*literals, *_SECRET_PATTERNS]))
        self._env_secrets = len(literals)
        # Scanning with that pattern tries every alternative at every position; a string that
        # holds none of the literal texts some alternative needs cannot match, and is not scanned.
        self._marks = (*sorted(values, key=len, reverse=True), *_MARKS)
        self._secret_keys: dict[str, bool] = {}

    def __repr__(self) -> str:
        return f"SecretRedactor(env_secrets={self._env_secrets})"

    def text(self, value: str) -> str:
        """``value`` with every secret in it replaced."""
        return self._pattern.sub(_redact_match, value) if self._may_hold(value) else value

    def _may_hold(self, value: str) -> bool:
        """Whether ``value`` is long enough and holds a text some secret's shape needs.

        Text that is not all ASCII is always scanned: the pattern's case-insensitive parts also
        match a few other letters (U+0131, a dotless i, for ``i``), which lower-casing would miss.
        """
        if len(value) < _MIN_SECRET:
            return False
        if not value.isascii():
            return True
        for mark in self._marks:
            if mark in value:
                return True
        lower = value.lower()
        return any(mark in lower for mark in _MARKS_ANY_CASE)

    def __call__(self, _logger: Any, _method: str, event: MutableMapping[str, Any]) -> Any:
        """Return the event with every secret in it replaced."""
        return {key: self._value(key, value) for key, value in event.items()}

    def _is_secret_key(self, key: str) -> bool:
        known = self._secret_keys.get(key)
        if known is None:
            known = self._secret_keys[key] = _SECRET_KEY.search(key) is not None
        return known

    def _value(self, key: str, value: Any) -> Any:
        if key in _OWN_FIELDS:
            return value
        if value not in (None, "") and self._is_secret_key(key):
            return REDACTED
        return self._clean(value)

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {str(k): self._value(str(k), v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean(v) for v in value]
        return value


def _redact_match(match: re.Match[str]) -> str:
    header = match.group("header")
    return f"{header}{REDACTED}" if header else REDACTED


_HARMLESS_PARAMS = frozenset(
    {"temperature", "top_p", "top_k", "min_p", "max_tokens", "max_completion_tokens", "stop",
     "seed", "n", "presence_penalty", "frequency_penalty", "repeat_penalty", "logit_bias",
     "logprobs", "top_logprobs", "response_format", "tools", "tool_choice", "functions",
     "function_call", "parallel_tool_calls", "reasoning_effort", "model", "api_version",
     "timeout", "num_retries", "custom_llm_provider"}
)  # fmt: skip
"""Tier parameters that shape the request and hold no credential: the rest are secrets."""
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def secret_values(params: Mapping[str, Any]) -> Iterator[str]:
    """The secrets among a tier's ``params``, judged by what they are, not by their names.

    Every string under a parameter that is not known to be harmless (sampling settings,
    ``response_format``, tools, the model, the API version) is a secret: ``api_key``, a
    ``token``, each ``extra_headers`` value, anything nested under them. A URL is harmless but
    for its credentials (``https://user:password@host``), which are secrets. Numbers and
    booleans are never secrets.

    >>> sorted(secret_values({"token": "tok-1234567890", "temperature": 0.2,
    ...     "api_base": "https://me:pw-12345678@gw.example/v1",
    ...     "extra_headers": {"X-Gateway-Token": "hdr-1234567890"}}))
    ['hdr-1234567890', 'me:pw-12345678', 'pw-12345678', 'tok-1234567890']
    """
    for key, value in params.items():
        if str(key) in _HARMLESS_PARAMS and not _SECRET_KEY.search(str(key)):
            continue
        yield from _strings(value)


def _strings(value: Any) -> Iterator[str]:
    """Every string in ``value`` (a URL's credentials alone), nested ones too."""
    if isinstance(value, str):
        if _URL.match(value):
            yield from _url_credentials(value)
        else:
            yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def _url_credentials(url: str) -> Iterator[str]:
    parts = urlsplit(url)
    if parts.password:
        yield f"{parts.username}:{parts.password}"
        yield parts.password
    elif parts.username:
        yield parts.username


_registered: set[str] = set()
_shared: list[SecretRedactor] = []


def register_secrets(values: Iterable[str]) -> None:
    """Add secrets (a policy's ``api_key``) to those :func:`redact` removes in this process."""
    fresh = {v for v in values if isinstance(v, str) and len(v) >= _MIN_SECRET} - _registered
    if fresh:
        _registered.update(fresh)
        _shared.clear()


def redact(value: str) -> str:
    """``value`` without secrets: the environment's, those registered, and key-shaped text.

    The store runs every error, verdict and reason through it before it writes them.
    """
    if not _shared:
        _shared.append(SecretRedactor(extra=_registered))
    return _shared[0].text(value)
