"""Start ``cascade serve``: check everything, bind, then serve from one or more processes.

Everything that can be wrong is checked before the port is bound: the policies (file, line and
field), the client keys, the store, and that a public address has client keys. One socket is
bound here; with ``--workers N``, N spawned processes serve from it (the kernel spreads the
connections), sharing the store, the step log, the providers' rate limits and breakers, and
the client keys' rate limits. One worker serves in this process.

SIGTERM (or Ctrl-C) stops accepting at once; requests in flight get ``--grace`` seconds to
finish, and those cut off after it are recorded with the calls they paid for.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable

import uvicorn

from cascade.backends.base import Backend
from cascade.backends.routed import closing_backend
from cascade.errors import ConfigError
from cascade.policy import PolicySet, load_policies
from cascade.run.job import backend_from, telemetry_for
from cascade.run.spawning import adopt_environment
from cascade.serve.app import build_app
from cascade.serve.config import ServeConfig
from cascade.serve.prepared import Prepared
from cascade.serve.service import Service
from cascade.steplog import StepLog, appending
from cascade.store import Store

__all__ = ["bind", "serve", "uvicorn_server"]

_ORPHAN_CHECK_S = 0.5


def _backend(config: ServeConfig, policies: PolicySet) -> Backend:
    if config.backend is not None:
        return backend_from(config.backend)
    from cascade.backends.default import default_backend, http_models  # noqa: PLC0415

    return default_backend(http_models(tier for policy in policies for tier in policy.ladder))


def _opener(
    prepared: Prepared, index: int
) -> Callable[[], contextlib.AbstractAsyncContextManager[Service]]:
    config = prepared.config

    @contextlib.asynccontextmanager
    async def open_service() -> AsyncIterator[Service]:
        policies = load_policies(config.policy)
        with (
            Store(config.store) as store,
            closing_backend(_backend(config, policies)) as backend,
            appending(config.log_path) as file,
        ):
            await _ready(backend, policies)
            telemetry = telemetry_for(config.otel, content=config.otel_content)
            service = Service(policies, store, backend, prepared, log=StepLog(file),
                              telemetry=telemetry, watch_drift=index == 0)  # fmt: skip
            watcher = asyncio.ensure_future(service.watch())
            try:
                yield service
            finally:
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)
                await service.close(config.grace_s)
                store.finish_run(prepared.run_id)

    return open_service


async def _ready(backend: Backend, policies: PolicySet) -> None:
    """Import what the backend needs (litellm takes seconds) before the first request."""
    ready = getattr(backend, "ready", None)
    if callable(ready):
        for model in {
            model for policy in policies for tier in policy.ladder for model in tier.models
        }:
            with contextlib.suppress(Exception):  # a model that cannot get ready fails its calls
                await ready(model)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: one the system picks)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # With the protocol named, asyncio turns Nagle's algorithm off on every connection: else a
    # reply written in two parts waits ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def uvicorn_server(prepared: Prepared, index: int = 0) -> uvicorn.Server:
    """Worker ``index``'s server: run it with ``.run(sockets=[bind(...)])``."""
    app = build_app(prepared.keys, prepared.config.request_limits, _opener(prepared, index))
    config = uvicorn.Config(app, lifespan="on", log_level="warning", access_log=False,
                            # asyncio.timeout takes seconds as a float; the hint says int
                            timeout_graceful_shutdown=prepared.config.grace_s,  # type: ignore[arg-type]
                            limit_concurrency=prepared.config.max_concurrency,
                            loop="asyncio")  # fmt: skip
    return uvicorn.Server(config)


def _work(prepared: Prepared, index: int, sock: socket.socket) -> None:
    """One worker: serve from ``sock`` until SIGTERM or SIGINT, then shut down gracefully."""
    adopt_environment(prepared.environ)
    uvicorn_server(prepared, index).run(sockets=[sock])


def _spawned(prepared: Prepared, index: int, sock: socket.socket, parent: int) -> None:
    """A worker process: :func:`_work`, shutting down too if ``parent`` (the command) dies.

    The parent's pid comes from the parent: read here, it may already be init's.
    """
    server = uvicorn_server(prepared, index)

    def orphaned() -> None:
        while os.getppid() == parent:
            time.sleep(_ORPHAN_CHECK_S)
        server.should_exit = True  # a graceful shutdown, as on SIGTERM

    threading.Thread(target=orphaned, daemon=True).start()
    adopt_environment(prepared.environ)
    server.run(sockets=[sock])


def _handled(signum: int, _frame: object) -> None:
    """A signal the server has already acted on."""
    del signum


def serve(prepared: Prepared, say: Callable[[str], None]) -> int:
    """Serve until told to stop; return the exit status."""
    config = prepared.config
    sock = bind(config.host, config.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    models = ", ".join("cascade/" + kind for kind in prepared.task_types)
    say(f"cascade serve: http://{shown}:{port}/v1 ({models}; store {config.store}; "
        f"{config.workers} worker{'s' if config.workers > 1 else ''})")  # fmt: skip
    if config.workers == 1:
        # uvicorn handles SIGTERM and Ctrl-C (a graceful shutdown), then raises the signal again
        # for the handler it found: this one lets the command end with its own status.
        previous = {sig: signal.signal(sig, _handled) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            with sock:
                _work(prepared, 0, sock)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 0
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_spawned, args=(prepared, i, sock, os.getpid()),
                               daemon=False)
               for i in range(config.workers)]  # fmt: skip

    def stop(signum: int, _frame: object) -> None:
        for worker in workers:
            if worker.pid is not None and worker.is_alive():
                os.kill(worker.pid, signal.SIGTERM)
        del signum

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for worker in workers:
            worker.start()
        sock.close()  # the workers hold it
        for worker in workers:
            worker.join()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    failed = [w.exitcode for w in workers if w.exitcode not in (0, -signal.SIGTERM)]
    return 1 if failed else 0
