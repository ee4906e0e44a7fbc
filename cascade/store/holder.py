"""One ``cascade run`` per store at a time.

Two runs on one store would each reclaim the other's live leases and pay for the same tasks
twice. So a run holds an advisory lock on ``STORE.lock`` for as long as it lives, with who holds
it written inside; a second run on the same store is refused, naming the holder. The operating
system releases the lock when the holder ends, however it ends (``kill -9`` included), so a
resume never waits for a dead run.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from cascade.errors import ConfigError

__all__ = ["holding"]


@contextlib.contextmanager
def holding(store: str | Path, what: str = "cascade run") -> Iterator[None]:
    """Hold ``store`` for this process, or raise :class:`ConfigError` naming who holds it."""
    path = Path(f"{store}.lock")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise ConfigError(f"--store {store}: cannot hold it ({path}: {exc.strerror})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(
                f"--store {store} is in use by another live run ({_holder(fd)}); wait for it "
                "to end, or give this run a store of its own"
            ) from None
        me = {"what": what, "pid": os.getpid(), "host": socket.gethostname(),
              "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}  # fmt: skip
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        yield
    finally:
        os.close(fd)  # which releases the lock


def _holder(fd: int) -> str:
    """Who the lock file says holds it, in words."""
    try:
        found = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except ValueError:
        found = {}
    if not isinstance(found, dict) or "pid" not in found:
        return "its holder did not say who it is"
    return (
        f"{found.get('what', 'a run')}, pid {found['pid']} on {found.get('host', '?')}, "
        f"since {found.get('since', '?')}"
    )
