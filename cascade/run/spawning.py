"""How worker processes start: forked from a server that has imported cascade and litellm once.

Started fresh (``spawn``), each worker imports Python's standard library, cascade and litellm
on its own: litellm alone takes seconds of CPU, so N workers on a loaded machine took tens of
seconds to reach their first call, one import after another. Here the workers come from a
fork server (:mod:`multiprocessing`'s ``forkserver``): one process, started on the first run
that needs workers, imports what they need once and forks a worker per request. It is
single-threaded, so forking it is safe; it exits when this process does.

A fork server keeps the environment it was started with, so each worker is given this
process's environment as it is when the worker starts (:func:`adopt_environment`).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Mapping
from multiprocessing.context import ForkServerContext, SpawnContext

__all__ = ["adopt_environment", "start_early", "worker_context"]

_PRELOAD = ["cascade.run.worker_process"]
_PRELOAD_LITELLM = "cascade.backends.litellm_preload"


def worker_context(*, litellm: bool) -> ForkServerContext | SpawnContext:
    """The context to start worker processes in: a fork server where the platform has one.

    With ``litellm``, the server also imports litellm (the default backend) for its workers.
    What the server imports is settled when it starts, on the first call in this process.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([*_PRELOAD, *([_PRELOAD_LITELLM] if litellm else [])])
    return context


def start_early(*, litellm: bool) -> None:
    """Start the fork server now, so that its imports overlap this process's own start-up."""
    if worker_context(litellm=litellm).get_start_method() == "forkserver":
        from multiprocessing import forkserver  # noqa: PLC0415  # only where there is one

        forkserver.ensure_running()


def adopt_environment(environ: Mapping[str, str]) -> None:
    """Make this process's environment ``environ`` (a worker's, given it by its coordinator)."""
    if dict(os.environ) != dict(environ):
        os.environ.clear()
        os.environ.update(environ)
