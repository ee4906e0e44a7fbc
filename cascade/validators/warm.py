"""Sandboxes started ahead of their job (bubblewrap only): each runs one job, then is gone.

Starting a sandbox (bubblewrap, the uid and rlimits, a cgroup, then Python and the seccomp
guard) takes longer than most candidates take to run. A :class:`WarmPool` keeps a few started:
each is a whole sandbox, with its own scratch folder, cgroup and uid from the host-wide pool,
its filter already installed, waiting on a socket for one job. The job (its files, arguments
and descriptors) arrives in one message; the sandbox acknowledges it, closes the socket, and
runs it exactly as a sandbox started for it would. It is never given a second job: it ends with
its job, and its folder, cgroup and uid are given back as a cold run's are.

A started sandbox takes its uid only when one is free at once, never waiting (so it can hold up
no one's run); one left unused for ``idle_s`` seconds is ended, giving its uid back to the host.
One that died before taking its job (its launcher gone, say) is reported as :class:`Lost`, and
the caller runs the job the usual way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from cascade.validators.confine import GUARD, NOBODY, Cgroup, seccomp_filter
from cascade.validators.harness import WIRE, WIRE_FILE
from cascade.validators.launch import (
    FILTER_FILE,
    GUARD_FILE,
    HOST_PATH,
    Launcher,
    SandboxResult,
    cgroup_for,
    ended,
    give_back,
    in_cgroup,
)
from cascade.validators.process_tree import kill_tree
from cascade.validators.uid_pool import Lease, UidPool

__all__ = ["Lost", "Warm", "WarmPool"]

_REAP_S = 5.0


class Lost(Exception):
    """The started sandbox ended before it took its job: nothing of the job ran."""


class _Launched:
    """A :class:`subprocess.Popen` as :func:`kill_tree` sees a process: waited on by pidfd."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self._process = process
        self.pid = process.pid

    def kill(self) -> None:
        self._process.kill()

    async def wait(self) -> int:
        await _exited(self._process, None)
        return self._process.wait()


async def _exited(process: subprocess.Popen[bytes], within: float | None) -> bool:
    """Wait until ``process`` exits, or ``within`` seconds pass: ``False`` if it did not exit."""
    if process.poll() is not None:
        return True
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    pidfd = os.pidfd_open(process.pid)

    def exited() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_reader(pidfd, exited)
    try:
        await asyncio.wait_for(done, within)
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)
    return True


class Warm:
    """One sandbox, started and waiting for its job on ``control``."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        control: socket.socket,
        scratch: Path,
        cgroup: Cgroup | None,
        lease: Lease | None,
    ) -> None:
        self.process = process
        self.control = control
        self.scratch = scratch
        self.cgroup = cgroup
        self.lease = lease
        self.born = time.monotonic()
        self.thread = threading.current_thread()
        """The thread that started it: bubblewrap dies with that thread (--die-with-parent)."""

    def __repr__(self) -> str:
        return f"Warm(pid={self.process.pid})"

    async def run(
        self,
        files: Mapping[str, str],
        args: Sequence[str],
        wall_s: float,
        *,
        channel: bool = False,
        peer: int | None = None,
        spawned: Callable[[], object] | None = None,
    ) -> SandboxResult:
        """Run the job; :class:`Lost` if the sandbox ended before taking it."""
        start = time.perf_counter()
        try:
            with (self.scratch / "channel").open("wb") as results:
                fds = ([results.fileno()] if channel else []) + ([] if peer is None else [peer])
                marks = (["{channel}"] if channel else []) + ([] if peer is None else ["{peer}"])
                try:
                    async with asyncio.timeout(wall_s):
                        await self._hand_over(files, args, fds, marks)
                except TimeoutError:
                    raise Lost("the started sandbox did not take its job in time") from None
            if spawned is not None:
                spawned()
            timed_out = not await _exited(self.process, wall_s - (time.perf_counter() - start))
            if timed_out:
                await kill_tree(_Launched(self.process))
            code = self.process.wait()
            duration = time.perf_counter() - start
            return ended(self.scratch, code, timed_out, duration, channel=channel, prestarted=True)
        finally:
            if self.process.poll() is None:  # cancelled, or lost: killing it waits for it
                await asyncio.to_thread(self.discard)
            else:
                # Removing a cgroup waits for the kernel to let go of it: not the caller's wait.
                asyncio.get_running_loop().run_in_executor(None, self.discard)

    async def _hand_over(
        self, files: Mapping[str, str], args: Sequence[str], fds: list[int], marks: list[str]
    ) -> None:
        if files.get(WIRE_FILE, WIRE) != WIRE:
            raise Lost(f"the job brings a {WIRE_FILE} of its own")
        files = {name: text for name, text in files.items() if name != WIRE_FILE}
        job = {"files": files, "args": list(args), "marks": marks}
        body = json.dumps(job).encode()  # ASCII: a lone surrogate travels escaped
        loop = asyncio.get_running_loop()
        self.control.setblocking(False)
        try:
            # The header and the descriptors fit an empty socket buffer: this cannot block.
            socket.send_fds(self.control, [f"{len(body):020d}".encode()], fds)
            await loop.sock_sendall(self.control, body)
            taken = await loop.sock_recv(self.control, 1)
        except OSError as exc:
            raise Lost(f"the started sandbox is gone ({exc})") from None
        finally:
            self.control.close()
        if taken != b"1":
            raise Lost("the started sandbox ended before it took its job")

    def discard(self) -> None:
        """End the sandbox, if it still runs, and give back its folder, cgroup and uid."""
        self.control.close()
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                # Our child, unreaped, so its group is still its own: bwrap, and with it (by
                # --die-with-parent) the sandbox's init and everything in its namespace.
                os.killpg(self.process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(_REAP_S)
        give_back(self.scratch, self.cgroup, self.lease)


def start(launcher: Launcher, uids: UidPool | None) -> Warm | None:
    """A bubblewrap sandbox started for a job to come; ``None`` if no uid is free right now.

    ``uids`` is the pool to take the uid from (as root); ``None`` keeps ours (unprivileged).
    """
    lease = None
    if uids is not None and (lease := uids.try_take()) is None:
        return None
    uid = NOBODY if lease is None else lease.uids[0]
    scratch = cgroup = None
    ours = theirs = None
    try:
        scratch = Path(tempfile.mkdtemp(prefix="cascade-sandbox-"))
        cgroup = cgroup_for(scratch.name, launcher.limits)
        work = scratch / "work"
        work.mkdir()
        (work / GUARD_FILE).write_text(GUARD, encoding="utf-8")
        (work / FILTER_FILE).write_bytes(seccomp_filter())
        (work / WIRE_FILE).write_text(WIRE, encoding="utf-8")
        inner = launcher.inner(uid, ["--job"])
        names = [GUARD_FILE, FILTER_FILE, WIRE_FILE]
        argv = in_cgroup(launcher.bwrap_argv(scratch, names, inner, uid), cgroup)
        ours, theirs = socket.socketpair()
        with (scratch / "stdout").open("wb") as out, (scratch / "stderr").open("wb") as err:
            process = subprocess.Popen(  # noqa: S603  # our own launcher's argv
                argv, stdin=theirs.fileno(), stdout=out, stderr=err, start_new_session=True,
                env={"PATH": HOST_PATH}, cwd=scratch,
            )  # fmt: skip
        theirs.close()
        return Warm(process, ours, scratch, cgroup, lease)
    except BaseException:
        for end in (ours, theirs):
            if end is not None:
                end.close()
        give_back(scratch, cgroup, lease)
        raise


class WarmPool:
    """Up to ``size`` sandboxes started ahead, each ended after ``idle_s`` seconds unused.

    Sandboxes are started from the thread that calls :meth:`fill` (bubblewrap dies with the
    thread that started it): call it from the event loop's thread.
    """

    def __init__(self, size: int, idle_s: float = 10.0) -> None:
        self.size = size
        self.idle_s = idle_s
        self._ready: list[Warm] = []
        self._lock = threading.Lock()
        self._closer = weakref.finalize(self, _discard_all, self._ready, self._lock)

    def __repr__(self) -> str:
        return f"WarmPool(size={self.size})"

    def claim(self) -> Warm | None:
        """The oldest sandbox this thread started, still alive, now the caller's alone.

        Only this thread's: a sandbox dies with the thread that started it, so one of another
        thread's could be killed mid-job when that thread ends. ``None`` if there is none.
        """
        dead = []
        here = threading.current_thread()
        try:
            with self._lock:
                for warm in list(self._ready):
                    if warm.process.poll() is not None or not warm.thread.is_alive():
                        self._ready.remove(warm)
                        dead.append(warm)
                    elif warm.thread is here:
                        self._ready.remove(warm)
                        return warm
            return None
        finally:
            for warm in dead:
                warm.discard()

    def fill(self, launcher: Launcher, uids: UidPool | None) -> None:
        """Start sandboxes until ``size`` wait, or no uid is free."""
        while len(self._ready) < self.size and (warm := start(launcher, uids)) is not None:
            with self._lock:
                self._ready.append(warm)
            timer = threading.Timer(self.idle_s, self._expire, (warm,))
            timer.daemon = True
            timer.start()

    def close(self) -> None:
        """End every sandbox waiting here."""
        _discard_all(self._ready, self._lock)

    def _expire(self, warm: Warm) -> None:
        with self._lock:
            if warm not in self._ready:
                return  # claimed meanwhile: its job's run ends it
            self._ready.remove(warm)
        warm.discard()


def _discard_all(ready: list[Warm], lock: threading.Lock) -> None:
    with lock:
        ended_now = list(ready)
        ready.clear()
    for warm in ended_now:
        warm.discard()
