"""Run untrusted Python in a sandbox: bubblewrap, or ``unshare`` plus rlimits as a loud fallback.

The sandbox gets a fresh, size-capped directory holding only the files it is given (read-only),
a read-only view of ``/usr`` and of this Python, no network, no ``/root``, no ``/etc/shadow``,
an unprivileged uid (one of its own from a host-wide pool when we are root: a run waits for
a free one, see :mod:`cascade.validators.uid_pool`), limits on CPU, memory, file size and
processes (per sandbox: see :mod:`cascade.validators.confine`, which also refuses new user
namespaces, the kernel keyring and sockets other than unix and inet ones), and a clean
environment with no secrets. The whole process tree is killed at the wall-clock limit, found
from the launcher's children as the kernel lists them: nothing the code writes can choose what
is killed. When neither bubblewrap nor ``unshare`` can be used, running the code is refused:
there is never an unsandboxed fallback. With bubblewrap, a few sandboxes are kept started
ahead of use (:mod:`cascade.validators.warm`), each for one run only.

>>> Sandbox(Limits(wall_s=5))
Sandbox(Limits(wall_s=5, cpu_s=10, memory_mb=1024, file_mb=16, processes=64))
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextvars import ContextVar
from pathlib import Path

from cascade.errors import ConfigError
from cascade.validators.confine import (
    GUARD,
    NOBODY,
    SandboxWarning,
    choose_mode,
    describe,
    seccomp_filter,
)
from cascade.validators.launch import (
    FILTER_FILE,
    GUARD_FILE,
    Launcher,
    Limits,
    SandboxResult,
    cgroup_for,
    execute,
    give_back,
)
from cascade.validators.uid_pool import UidPool, partners
from cascade.validators.warm import Lost, Warm, WarmPool

__all__ = ["Limits", "Sandbox", "SandboxResult", "SandboxWarning"]

_CLAIMED: ContextVar[tuple[object, list[Warm]] | None] = ContextVar("cascade_claimed", default=None)
"""The started sandboxes a :meth:`Sandbox.reserve` holds for the runs inside it."""


class Sandbox:
    """Run ``python -I -B ARGS`` over a set of files, in isolation.

    ``mode`` is ``"bwrap"``, ``"unshare"`` or ``None`` to choose: bubblewrap when it works,
    else ``unshare`` (root only) with a :class:`SandboxWarning`, else :class:`ConfigError`.
    ``uids`` is the pool the runs take their uids from, as root (by default the host's).
    ``warm`` is how many bubblewrap sandboxes to keep started ahead of use (``0``: none).
    """

    def __init__(
        self,
        limits: Limits | None = None,
        *,
        mode: str | None = None,
        uids: UidPool | None = None,
        warm: int = 2,
    ) -> None:
        if mode not in (None, "bwrap", "unshare"):
            raise ConfigError(f"sandbox mode must be 'bwrap' or 'unshare', got {mode!r}")
        if warm < 0:
            raise ConfigError(f"warm must be 0 or more sandboxes, got {warm}")
        self.limits = limits or Limits()
        self.uids = uids or UidPool()
        self._mode = mode
        self._python = sys.executable
        self._checked = False
        self._warm = WarmPool(warm)

    def __repr__(self) -> str:
        return f"Sandbox({self.limits!r})"

    @property
    def mode(self) -> str:
        """The isolation in use, chosen on first use."""
        if self._mode is None:
            self._mode = choose_mode()
        return self._mode

    @contextlib.asynccontextmanager
    async def reserve(self, count: int) -> AsyncIterator[None]:
        """Hold ``count`` sandboxes at once for the runs inside (tasks they start included).

        Runs that must live at the same time, such as two sandboxes joined by a socket, take
        what they need together here: started sandboxes first, then uids for the rest at once
        (each run taking its own uid could leave every uid of the pool held by a run that waits
        for its partner, which waits for a uid). Unprivileged, only started ones are held.

        >>> async def both(sandbox: Sandbox) -> None:
        ...     async with sandbox.reserve(2):
        ...         await asyncio.gather(sandbox.run({}, ["-c", "1"]), sandbox.run({}, ["-c", "2"]))
        """
        claimed = [w for _ in range(count) if self._checked and (w := self._warm.claim())]
        token = _CLAIMED.set((self, claimed))
        try:
            if os.geteuid() == 0 and count > len(claimed):
                async with self.uids.reserve(count - len(claimed)):
                    yield
            else:
                yield
        finally:
            _CLAIMED.reset(token)
            for warm in claimed:  # held, and not used by a run inside
                warm.discard()

    async def run(
        self,
        files: Mapping[str, str],
        args: Sequence[str],
        *,
        channel: bool = False,
        peer: int | None = None,
        spawned: Callable[[], object] | None = None,
    ) -> SandboxResult:
        """Write ``files`` into a fresh directory and run ``python -I -B *args`` there.

        With ``channel``, the code gets one more open descriptor, a file of the host's, whose
        number replaces ``{channel}`` in ``args``; what it writes there comes back in
        :attr:`SandboxResult.channel`, apart from its stdout. ``peer`` is a descriptor of ours
        (a socket to another sandbox, say) handed on as it is, its number replacing ``{peer}``;
        ``spawned`` is called once the sandbox's process holds it (so ours can be closed).

        The first run checks that the sandbox can start Python at all, so that a broken setup
        is a :class:`ConfigError` rather than a string of failed candidates.
        """
        for name in files:
            if "/" in name or name.startswith(".") or not name or name in (GUARD_FILE, FILTER_FILE):
                raise ConfigError(f"sandbox file names must be plain names, got {name!r}")
        if not self._checked:
            probe = await self._run({}, ["-c", "print('ok')"])
            if probe.returncode != 0 or probe.stdout.strip() != "ok":
                detail = (probe.stderr or probe.stdout).strip()[-500:]
                raise ConfigError(f"the {self.mode} sandbox cannot start Python: {detail}")
            self._checked = True
            self._fill()
        try:
            if (warm := self._claim()) is not None:
                with contextlib.suppress(Lost):  # nothing of the job ran: run it the usual way
                    return await warm.run(
                        files, args, self.limits.wall_s, channel=channel, peer=peer,
                        spawned=spawned,
                    )  # fmt: skip
            return await self._run(files, args, channel=channel, peer=peer, spawned=spawned)
        finally:
            # Once this run has ended (starting others meanwhile slows it), and after the
            # caller has its result.
            asyncio.get_running_loop().call_soon(self._fill)

    def _claim(self) -> Warm | None:
        held = _CLAIMED.get()
        if held is not None and held[0] is self and held[1]:
            return held[1].pop()
        return self._warm.claim() if self._checked else None

    def _fill(self) -> None:
        if self.mode == "bwrap" and self._warm.size:
            launcher = Launcher(self._python, self.limits)
            # What stops a start here (a full disk, the uid pool's folder) stops a run started
            # on demand too, which reports it: here it only means none is started ahead.
            with contextlib.suppress(OSError, ConfigError):
                self._warm.fill(launcher, self.uids if os.geteuid() == 0 else None)

    async def _run(
        self,
        files: Mapping[str, str],
        args: Sequence[str],
        *,
        channel: bool = False,
        peer: int | None = None,
        spawned: Callable[[], object] | None = None,
    ) -> SandboxResult:
        launcher = Launcher(self._python, self.limits)
        scratch = cgroup = lease = None
        try:
            # Waits for a uid, holding nothing yet: no folder, no cgroup.
            pair = partners(peer) if peer is not None else None
            lease = await self.uids.take_one(pair) if os.geteuid() == 0 else None
            uid = lease.uids[0] if lease is not None else NOBODY
            scratch = Path(tempfile.mkdtemp(prefix="cascade-sandbox-"))
            cgroup = cgroup_for(scratch.name, self.limits)
            work = scratch / "work"
            work.mkdir()
            for name, text in {**files, GUARD_FILE: GUARD}.items():
                # A lone surrogate in the code is the code's fault: Python inside refuses it.
                (work / name).write_text(text, encoding="utf-8", errors="surrogatepass")
            (work / FILTER_FILE).write_bytes(seccomp_filter())
            inner = launcher.inner(uid, list(args))
            names = sorted([*files, GUARD_FILE, FILTER_FILE])
            if self.mode == "bwrap":
                argv = launcher.bwrap_argv(scratch, names, inner, uid)
            else:
                argv = launcher.unshare_argv(scratch, inner, uid)
            return await execute(
                argv, scratch, self.limits.wall_s, channel=channel, cgroup=cgroup, peer=peer,
                spawned=spawned,
            )  # fmt: skip
        finally:
            give_back(scratch, cgroup, lease)

    def close(self) -> None:
        """End the sandboxes started ahead of use (garbage collection and exit do it too)."""
        self._warm.close()

    def describe(self) -> str:
        """The isolation in force here, for people: the sandbox's self-test says it."""
        started = f"; {self._warm.size} started ahead" if self.mode == "bwrap" else ""
        return f"{self.mode}; {describe()}{started}"
