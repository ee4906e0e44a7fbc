"""Ending a sandbox's whole process tree, by pids that only the kernel tells us.

The launcher (bwrap or unshare) is our child; its own child is the init of the sandbox's pid
namespace, and when that init dies the kernel kills every process in the namespace. Both pids
are read from the kernel (our child's pid, and its children as ``/proc`` lists them), never from
anything the code under test can write: a pid the code wrote could be one of the host's, or
``0`` (our own process group), or ``-1`` (every process we may signal).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path
from typing import Protocol

__all__ = ["Launched", "kill_tree"]

_REAP_S = 5.0


class Launched(Protocol):
    """The launcher process, as :func:`kill_tree` needs it: an asyncio one, or another."""

    pid: int

    def kill(self) -> None:
        """Send it SIGKILL."""

    async def wait(self) -> int:
        """Wait for it to end, and reap it."""


async def kill_tree(process: Launched) -> None:
    """Kill the sandbox's PID-namespace init, and wait until the whole namespace is gone.

    The init's parent (bwrap or unshare, still alive) can only reap it once every process of
    the namespace is gone: so waiting for the parent waits for the last of them. Where no init
    is found yet, the launcher itself is killed (bwrap's init dies with it). Killing the
    launcher's process group, while the launcher is still unreaped (so its pid and group id
    cannot be anyone else's), is the backstop.
    """
    inits = _children(process.pid)
    for pidfd in inits:
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        os.close(pidfd)
    if not inits:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
    try:
        await asyncio.wait_for(process.wait(), _REAP_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()


def _children(pid: int) -> list[int]:
    """The children of ``pid`` (our own child) as pidfds, each checked to be its child still.

    A pid read from ``/proc`` could be reaped and reused before we open it; one still listed
    among ``pid``'s children after the pidfd is open is the process the pidfd holds.
    """
    found = []
    for child in _listed_children(pid):
        with contextlib.suppress(OSError):
            pidfd = os.pidfd_open(child)
            if child in _listed_children(pid):
                found.append(pidfd)
            else:
                os.close(pidfd)
    return found


def _listed_children(pid: int) -> list[int]:
    with contextlib.suppress(OSError, ValueError):
        return [int(word) for word in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return []
