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
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from pathlib import Path
from typing import IO, Any, Protocol

from cascade.outcome import Step
from cascade.secrets import SecretRedactor

__all__ = ["Processor", "SecretRedactor", "StepLog", "TextSink", "appending", "capture_steps"]

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
    """A structlog logger that writes one line per event to a file, or to the current stderr.

    A write that fails (a full disk) stops the log instead of failing the step that was being
    logged: ``failure`` keeps the error, and later lines are dropped (the store has them all).
    """

    def __init__(self, file: TextSink | None) -> None:
        self._file = file
        self.failure: OSError | None = None

    def msg(self, message: str) -> None:
        """Write one rendered event as a line."""
        self.lines(message + "\n")

    def lines(self, text: str) -> None:
        """Write lines rendered elsewhere, as they are."""
        if self.failure is not None:
            return
        out = self._file if self._file is not None else sys.stderr
        try:
            out.write(text)
            out.flush()
        except OSError as exc:
            self.failure = exc

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

    @property
    def failure(self) -> OSError | None:
        """The write that stopped this log (a full disk), if one did."""
        return self._writer.failure

    @property
    def path(self) -> str:
        """Where the lines go: the file's name, or ``<stderr>``."""
        return str(getattr(self._writer._file, "name", "<stderr>"))

    def write_rendered(self, text: str) -> None:
        """Append JSON lines that another step log rendered (and redacted): a Ray actor's."""
        self._writer.lines(text)


@contextmanager
def appending(path: str | Path) -> Iterator[IO[str]]:
    """The step log file at ``path``, opened for appending; a line is one write.

    The buffer is big enough for any line, and each line is flushed as it is logged. Closing
    the file flushes what is left: after a write that failed (a full disk), the failed line.
    That error is already the log's (:attr:`StepLog.failure`), and closing does not raise it.
    """
    file = open(path, "a", encoding="utf-8", buffering=1 << 20)  # noqa: SIM115  # closed below
    try:
        yield file
    finally:
        with suppress(OSError):
            file.close()


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
