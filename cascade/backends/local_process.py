"""A local model's process, seen from the backend: started on demand, asked one request at a time.

A native crash in llama.cpp (SIGILL, SIGSEGV, an OOM kill) ends the model's process and not the
run. The call in flight then fails as provider trouble: a transient :class:`ServerError` that
names the signal, which the engine retries; the process is started again after a bounded
backoff. After ``max_deaths`` deaths in a row the model is given up for the life of the backend,
and every call gets a permanent :class:`BackendCrashed`, so its tasks end ``failed`` with the
reason (``local model process died: signal 4 (illegal instruction)``) instead of waiting.

Everything here blocks: the backend runs it on the model's own thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Sequence
from typing import Any

from cascade.errors import (
    BackendCrashed,
    PermanentProviderError,
    ProviderError,
    ProviderTimeout,
    ServerError,
    UnknownModel,
)

__all__ = ["ModelProcess", "describe_exit"]

_LOAD_TIMEOUT_S = 300.0
"""How long a model may take to load (Gemma 3 270M: about a second)."""


def describe_exit(returncode: int) -> str:
    """How a process ended, in words: ``signal 4 (illegal instruction)``, ``exit status 1``.

    >>> describe_exit(-11)
    'signal 11 (segmentation fault)'
    >>> describe_exit(3)
    'exit status 3'
    """
    if returncode >= 0:
        return f"exit status {returncode}"
    number = -returncode
    try:
        words = (signal.strsignal(number) or "").lower()
    except ValueError:
        words = ""
    return f"signal {number} ({words or 'unknown'})"


class ModelProcess:
    """One model's process: ``argv`` starts it, and it speaks ``cascade.backends.llama_child``.

    ``max_deaths`` deaths in a row give the model up; before each restart the process waits
    ``backoff_s`` doubled per death so far, at most ``max_backoff_s``.
    """

    def __init__(
        self,
        model: str,
        argv: Sequence[str],
        *,
        max_deaths: int = 3,
        backoff_s: float = 0.25,
        max_backoff_s: float = 2.0,
    ) -> None:
        self.model = model
        self._argv = list(argv)
        self._max_deaths = max_deaths
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._buffer = b""
        self.deaths = 0
        """Deaths in a row: reset by every answer."""
        self._refused: ProviderError | None = None
        self._last_exit = ""

    def ask(self, request: dict[str, Any], deadline: float) -> dict[str, Any]:
        """Send ``request`` and return the process's reply, by ``deadline`` (monotonic)."""
        if self._refused is not None:
            raise self._refused
        if self.deaths >= self._max_deaths:
            raise BackendCrashed(self._death_words())
        if time.monotonic() > deadline:
            raise ProviderTimeout(f"{self.model}: the deadline passed while waiting for the model")
        proc = self._proc or self._start()
        assert proc.stdin is not None
        try:
            proc.stdin.write(json.dumps(request).encode() + b"\n")
            proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self._died()
        reply = self._line(deadline, what="no answer within the call's deadline")
        self.deaths = 0
        return reply

    def close(self) -> None:
        """End the process: its stdin closes, and it is killed if it does not leave in 5 s."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        assert proc.stdin is not None
        try:
            proc.stdin.close()
            proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
        _close_pipes(proc)

    def _start(self) -> subprocess.Popen[bytes]:
        """Start the process (after the backoff its deaths call for) and wait for its model."""
        if self.deaths:
            time.sleep(min(self._max_backoff_s, self._backoff_s * 2.0 ** (self.deaths - 1)))
        self._buffer = b""
        self._proc = subprocess.Popen(  # noqa: S603  # our own module, with our own interpreter
            self._argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        hello = self._line(time.monotonic() + _LOAD_TIMEOUT_S, what="the model did not load")
        if hello.get("ready") is not True:
            self.close()
            self._refused = _refusal(self.model, hello)
            raise self._refused
        return self._proc

    def _line(self, deadline: float, *, what: str) -> dict[str, Any]:
        """The process's next line, as JSON; a death or the deadline raises instead."""
        proc = self._proc
        assert proc is not None
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                left = deadline - time.monotonic()
                if left <= 0:
                    self._stop()
                    raise ProviderTimeout(f"{self.model}: {what}; its process was stopped")
                if not selector.select(min(left, 60.0)):
                    continue
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    self._died()
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        try:
            reply = json.loads(line)
        except ValueError:
            reply = None
        if not isinstance(reply, dict):
            self._stop()
            raise ServerError(f"{self.model}: its process wrote something not in the protocol")
        return reply

    def _stop(self) -> None:
        """Kill the process (a timeout, not a death: the next call starts it again)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()
            proc.wait()
            _close_pipes(proc)

    def _died(self) -> None:
        """The process ended on its own: count the death and raise what the call gets."""
        proc, self._proc = self._proc, None
        assert proc is not None
        self._last_exit = describe_exit(proc.wait())
        _close_pipes(proc)
        self.deaths += 1
        if self.deaths >= self._max_deaths:
            raise BackendCrashed(self._death_words())
        raise ServerError(f"{self.model}: local model process died: {self._last_exit}")

    def _death_words(self) -> str:
        return (
            f"{self.model}: local model process died: {self._last_exit}"
            f" ({self.deaths} times in a row; given up)"
        )


def _close_pipes(proc: subprocess.Popen[bytes]) -> None:
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            with contextlib.suppress(OSError):  # a broken pipe to a dead process: nothing to flush
                pipe.close()


def _refusal(model: str, hello: dict[str, Any]) -> ProviderError:
    """What a process that would not load its model said, as the error every call gets."""
    message = str(hello.get("message", hello))
    if hello.get("error") == "missing":
        return UnknownModel(f"{model} needs llama-cpp-python: pip install 'cascade-llm[local]'")
    return PermanentProviderError(f"{model}: llama.cpp would not load it: {message}")
