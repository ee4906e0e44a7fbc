"""The step log: one structlog event per step, written as JSON lines.

Each :class:`cascade.Step` becomes an ``event="cascade.step"`` with the fields of
``Step.to_event``. Events pass through a chain of structlog processors; the default chain
redacts secrets (API keys, ``Authorization`` headers, and the values of secret-looking
environment variables) before anything is rendered or captured.

>>> import io
>>> log = StepLog(io.StringIO())  # or StepLog() for JSON lines on standard error
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import IO, Any

from cascade.outcome import Step

__all__ = ["Processor", "SecretRedactor", "StepLog", "capture_steps"]

Processor = Callable[[Any, str, MutableMapping[str, Any]], Any]
"""A structlog processor: ``(logger, method_name, event_dict) -> event_dict``."""

REDACTED = "[REDACTED]"

_SECRET_KEY = re.compile(
    r"(^|[_-])(api[_-]?key|secret|password|passwd|authorization|auth[_-]?token|access[_-]?token"
    r"|refresh[_-]?token|bearer|cookie|session[_-]?token|private[_-]?key)$",
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
)
_MIN_SECRET = 8
"""Shorter strings cannot hold any secret we redact, so they are not scanned."""

_OWN_FIELDS = frozenset(
    {"event", "level", "ts", "step", "tier", "kind", "decision", "prompt_tokens",
     "completion_tokens", "cost_usd", "latency_s", "passed"}
)  # fmt: skip
"""Fields cascade fills itself with numbers, enums and timestamps: nothing there to redact."""

_captures: ContextVar[tuple[list[dict[str, Any]], ...]] = ContextVar(
    "cascade_step_captures", default=()
)


class SecretRedactor:
    """A structlog processor that replaces secrets anywhere in an event with ``[REDACTED]``.

    It redacts values under secret-looking keys, text that looks like a key or an
    ``Authorization`` header, and the literal values of secret-looking environment variables
    (``*_API_KEY``, ``*_TOKEN``, ``*_SECRET``...) as they were when the redactor was made.
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        values = {v for k, v in env.items() if _SECRET_ENV.search(k) and len(v) >= _MIN_SECRET}
        # One pass per string: the environment's secrets first, longest first, so a secret
        # that contains another is replaced whole; then the shapes of keys and headers.
        literals = [re.escape(v) for v in sorted(values, key=len, reverse=True)]
        self._pattern = re.compile("|".join([*literals, *_SECRET_PATTERNS]))
        self._env_secrets = len(literals)
        self._secret_keys: dict[str, bool] = {}

    def __repr__(self) -> str:
        return f"SecretRedactor(env_secrets={self._env_secrets})"

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
            return self._pattern.sub(_redact_match, value) if len(value) >= _MIN_SECRET else value
        if isinstance(value, Mapping):
            return {str(k): self._value(str(k), v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean(v) for v in value]
        return value


def _redact_match(match: re.Match[str]) -> str:
    header = match.group("header")
    return f"{header}{REDACTED}" if header else REDACTED


def _capture(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> Any:
    """Hand the (already redacted) event to active captures, which swallow it."""
    captures = _captures.get()
    if captures:
        for sink in captures:
            sink.append(dict(event))
        import structlog  # noqa: PLC0415  # loaded with the first step log, not with cascade

        raise structlog.DropEvent
    return event


class _LineWriter:
    """A structlog logger that writes one line per event to a file, or to the current stderr."""

    def __init__(self, file: IO[str] | None) -> None:
        self._file = file

    def msg(self, message: str) -> None:
        """Write one rendered event as a line."""
        out = self._file if self._file is not None else sys.stderr
        out.write(message + "\n")
        out.flush()

    info = msg


class StepLog:
    """Emit steps as structlog events; JSON lines on ``file`` (standard error by default).

    ``processors`` run after redaction and before rendering; pass your own to enrich events.
    """

    def __init__(
        self,
        file: IO[str] | None = None,
        *,
        processors: Sequence[Processor] = (),
        redactor: Processor | None = None,
    ) -> None:
        import structlog  # noqa: PLC0415  # loaded with the first step log, not with cascade

        chain: list[Processor] = [
            structlog.processors.add_log_level,
            redactor or SecretRedactor(),
            *processors,
            _capture,
            structlog.processors.JSONRenderer(),
        ]
        self._logger = structlog.wrap_logger(
            _LineWriter(file),
            processors=chain,
            cache_logger_on_first_use=True,
        )

    def emit(self, step: Step) -> None:
        """Log one step as a ``cascade.step`` event."""
        self._logger.info("cascade.step", **step.to_event())

    def event(self, name: str, **fields: Any) -> None:
        """Log any other event through the same chain (redacted like steps)."""
        self._logger.info(name, **fields)


@contextmanager
def capture_steps() -> Iterator[list[dict[str, Any]]]:
    """Collect the step events emitted inside the block, as redacted dicts, instead of writing.

    >>> with capture_steps() as steps:
    ...     pass  # run a cascade here
    >>> steps
    []
    """
    sink: list[dict[str, Any]] = []
    token = _captures.set((*_captures.get(), sink))
    try:
        yield sink
    finally:
        _captures.reset(token)
