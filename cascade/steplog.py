"""The step log: one structlog event per step, written as JSON lines.

Each :class:`cascade.Step` becomes an ``event="cascade.step"`` with the fields of
``Step.to_event``. Events pass through a chain of structlog processors; the default chain
redacts secrets (API keys, ``Authorization`` headers, and the values of secret-looking
environment variables) before anything is rendered or captured.

>>> import io
>>> log = StepLog(io.StringIO())  # or StepLog() for JSON lines on standard error
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol

from cascade.outcome import Step
from cascade.secrets import SecretRedactor

__all__ = ["Processor", "SecretRedactor", "StepLog", "TextSink", "capture_steps"]

Processor = Callable[[Any, str, MutableMapping[str, Any]], Any]
"""A structlog processor: ``(logger, method_name, event_dict) -> event_dict``."""

_captures: ContextVar[tuple[list[dict[str, Any]], ...]] = ContextVar(
    "cascade_step_captures", default=()
)


def _capture(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> Any:
    """Hand the (already redacted) event to active captures, which swallow it."""
    captures = _captures.get()
    if captures:
        for sink in captures:
            sink.append(dict(event))
        import structlog  # noqa: PLC0415  # loaded with the first step log, not with cascade

        raise structlog.DropEvent
    return event


class TextSink(Protocol):
    """Where a step log writes its lines: a text file, or anything with ``write`` and ``flush``."""

    def write(self, text: str, /) -> int:
        """Write text."""
        ...

    def flush(self) -> None:
        """Push written text on."""
        ...


class _LineWriter:
    """A structlog logger that writes one line per event to a file, or to the current stderr."""

    def __init__(self, file: TextSink | None) -> None:
        self._file = file

    def msg(self, message: str) -> None:
        """Write one rendered event as a line."""
        self.lines(message + "\n")

    def lines(self, text: str) -> None:
        """Write lines rendered elsewhere, as they are."""
        out = self._file if self._file is not None else sys.stderr
        out.write(text)
        out.flush()

    info = msg


class StepLog:
    """Emit steps as structlog events; JSON lines on ``file`` (standard error by default).

    ``processors`` run after redaction and before rendering; pass your own to enrich events.
    """

    def __init__(
        self,
        file: TextSink | None = None,
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
        self._writer = _LineWriter(file)
        self._logger = structlog.wrap_logger(
            self._writer,
            processors=chain,
            cache_logger_on_first_use=True,
        )

    def emit(self, step: Step) -> None:
        """Log one step as a ``cascade.step`` event."""
        self._logger.info("cascade.step", **step.to_event())

    def event(self, name: str, **fields: Any) -> None:
        """Log any other event through the same chain (redacted like steps)."""
        self._logger.info(name, **fields)

    def write_rendered(self, text: str) -> None:
        """Append JSON lines that another step log rendered (and redacted): a Ray actor's."""
        self._writer.lines(text)


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
