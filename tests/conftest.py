"""Test setup: no network but loopback, litellm offline, a cache of the session's own."""

from __future__ import annotations

import gc
import ipaddress
import os
import socket
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
# Kept sandbox verdicts go to a folder of this session's, never the user's cache.
os.environ["CASCADE_CACHE"] = tempfile.mkdtemp(prefix="cascade-test-cache-")


class NetworkBlocked(OSError):
    """Raised instead of connecting anywhere but loopback."""


def _is_loopback(address: Any) -> bool:
    if not isinstance(address, tuple):
        return True  # AF_UNIX paths and the like never leave the machine
    host = str(address[0])
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%", maxsplit=1)[0]).is_loopback
    except ValueError:
        return False  # an unresolved host name: resolving it is a network call too


def _guard(method: Callable[..., Any]) -> Callable[..., Any]:
    def guarded(sock: socket.socket, address: Any, *args: Any) -> Any:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address):
            raise NetworkBlocked(f"tests may only connect to loopback, not {address!r}")
        return method(sock, address, *args)

    return guarded


def _guard_getaddrinfo(real: Callable[..., Any]) -> Callable[..., Any]:
    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name is not None and not _is_loopback((name, 0)):
            raise NetworkBlocked(f"tests may not resolve {name!r}")
        return real(host, *args, **kwargs)

    return guarded


socket.socket.connect = _guard(socket.socket.connect)  # type: ignore[method-assign]
socket.socket.connect_ex = _guard(socket.socket.connect_ex)  # type: ignore[method-assign]
socket.getaddrinfo = _guard_getaddrinfo(socket.getaddrinfo)


@pytest.fixture(autouse=True)
def _collector_as_found() -> Iterator[None]:
    """Each test leaves the garbage collector as it found it.

    ``cascade run`` freezes its process's heap (cascade/run/heap.py); the CLI tests run it in
    this process, and without this the suite's own heap would stay frozen after them.
    """
    yield
    gc.unfreeze()


@pytest.fixture(autouse=True)
def _no_fork_server_left() -> Iterator[None]:
    """A fork server a test started (its worker processes') is stopped and reaped after it.

    Left running, it would be a child of this process until the session ends, and a tool that
    waits for any child (mutmut, which runs the tests in its own process first) would reap it.
    """
    yield
    from multiprocessing import forkserver  # noqa: PLC0415  # only where there is one

    server: Any = forkserver._forkserver  # no public way to stop it (typeshed lists none)
    if server._forkserver_pid is not None:
        server._stop()  # closes its pipe, then waits for it to exit
