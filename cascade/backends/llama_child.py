"""The local model's own process: llama.cpp loads one GGUF file here and answers requests.

:class:`~cascade.backends.local.LocalBackend` starts ``python -m cascade.backends.llama_child``
once per model (and per worker), so a native crash in llama.cpp (SIGILL on a CPU the build did
not expect, SIGSEGV, an OOM kill) ends this process, not the run.

The protocol is one JSON object per line. The process first writes ``{"ready": true}`` once the
model has loaded, or ``{"error": KIND, "message": ...}`` and exits. Then, for each request line
``{"messages": [...], "kwargs": {...}}``, it writes ``{"raw": COMPLETION, "compute_s": S}`` or
``{"error": KIND, "message": ...}``. ``KIND`` is ``missing`` (llama-cpp-python is not installed)
or ``refused`` (llama.cpp refused the model or the request). The protocol has its own copy of
standard output: llama.cpp's native code may print, and anything it prints goes to standard
error. The process ends when its standard input closes.

:class:`Model` is the same work in this process, for the benchmark that measures the hop.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

__all__ = ["Model", "main"]


class Model:
    """One GGUF model loaded by llama.cpp in this process; not thread-safe."""

    def __init__(
        self, path: str, *, n_ctx: int, n_threads: int, seed: int, chat_format: str | None
    ) -> None:
        from llama_cpp import Llama  # noqa: PLC0415  # the local extra, in this process only

        self._llm = Llama(
            model_path=path,
            n_ctx=n_ctx,
            n_threads=n_threads,
            seed=seed,
            chat_format=chat_format,
            verbose=False,
        )

    def complete(
        self, messages: Sequence[Mapping[str, Any]], kwargs: Mapping[str, Any]
    ) -> dict[str, Any]:
        """llama.cpp's chat completion, as it returns it, and the seconds it computed."""
        started = time.monotonic()
        chat: Any = [dict(m) for m in messages]  # llama_cpp types each role's message apart
        raw = self._llm.create_chat_completion(messages=chat, **kwargs)
        return {"raw": raw, "compute_s": time.monotonic() - started}

    def close(self) -> None:
        """Free the model's native memory."""
        self._llm.close()


def _serve(model: Model, requests: TextIO, replies: TextIO) -> None:
    for line in requests:
        request = json.loads(line)
        try:
            reply = model.complete(request["messages"], request["kwargs"])
        except ValueError as exc:  # llama.cpp's way of saying the prompt does not fit, say
            reply = {"error": "refused", "message": str(exc)}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Load the model named on the command line, then answer requests until stdin closes."""
    parser = argparse.ArgumentParser(prog="python -m cascade.backends.llama_child")
    parser.add_argument("--model", required=True, help="the GGUF file")
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--n-threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chat-format", default=None)
    args = parser.parse_args(argv)
    # The protocol keeps the real stdout; fd 1 becomes stderr, for whatever native code prints.
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        model = Model(
            args.model,
            n_ctx=args.n_ctx,
            n_threads=args.n_threads,
            seed=args.seed,
            chat_format=args.chat_format,
        )
    except ImportError as exc:
        replies.write(json.dumps({"error": "missing", "message": str(exc)}) + "\n")
        return 1
    except ValueError as exc:  # llama-cpp-python's way of saying the file would not load
        replies.write(json.dumps({"error": "refused", "message": str(exc)}) + "\n")
        return 1
    replies.write(json.dumps({"ready": True}) + "\n")
    replies.flush()
    try:
        _serve(model, sys.stdin, replies)
    finally:
        model.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
