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
there is never an unsandboxed fallback.

>>> Sandbox(Limits(wall_s=5))
Sandbox(Limits(wall_s=5, cpu_s=10, memory_mb=1024, file_mb=16, processes=64))
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path

from cascade.errors import ConfigError
from cascade.validators.confine import (
    GUARD,
    NOBODY,
    Cgroup,
    SandboxWarning,
    choose_mode,
    describe,
    processes_of,
    seccomp_filter,
    write_etc,
)
from cascade.validators.process_tree import kill_tree
from cascade.validators.uid_pool import UidPool, partners

__all__ = ["Limits", "Sandbox", "SandboxResult", "SandboxWarning"]

_SCRATCH_MB = 64
_KEEP_OUTPUT = 64_000
_SYSTEM = ("/usr", "/bin", "/lib", "/lib64", "/sbin")
_HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/sandbox",
    "LANG": "C.UTF-8",
    "TMPDIR": "/tmp",  # noqa: S108  # the sandbox's own private tmpfs
    "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
}


@dataclass(frozen=True, slots=True)
class Limits:
    """What sandboxed code may use. ``wall_s`` kills the whole process tree."""

    wall_s: float = 10.0
    cpu_s: int = 10
    memory_mb: int = 1024
    file_mb: int = 16
    processes: int = 64

    def __repr__(self) -> str:
        return (
            f"Limits(wall_s={self.wall_s:g}, cpu_s={self.cpu_s}, memory_mb={self.memory_mb}, "
            f"file_mb={self.file_mb}, processes={self.processes})"
        )


@dataclass(frozen=True, slots=True)
class SandboxResult:
    """How a sandboxed run ended, with the start of its output."""

    returncode: int
    stdout: str
    stderr: str
    timed_out: bool
    duration_s: float
    channel: str = ""
    """What the code wrote to the channel descriptor (``run(..., channel=True)``)."""

    @property
    def signal_name(self) -> str | None:
        """The signal that killed the code, such as ``SIGKILL``, if one did.

        bwrap and unshare report a child killed by signal N as exit status 128 + N.
        """
        number = -self.returncode if self.returncode < 0 else self.returncode - 128
        if number <= 0:
            return None
        with contextlib.suppress(ValueError):
            return signal.Signals(number).name
        return f"signal {number}"


class Sandbox:
    """Run ``python -I -B ARGS`` over a set of files, in isolation.

    ``mode`` is ``"bwrap"``, ``"unshare"`` or ``None`` to choose: bubblewrap when it works,
    else ``unshare`` (root only) with a :class:`SandboxWarning`, else :class:`ConfigError`.
    ``uids`` is the pool the runs take their uids from, as root (by default the host's).
    """

    def __init__(
        self, limits: Limits | None = None, *, mode: str | None = None, uids: UidPool | None = None
    ) -> None:
        if mode not in (None, "bwrap", "unshare"):
            raise ConfigError(f"sandbox mode must be 'bwrap' or 'unshare', got {mode!r}")
        self.limits = limits or Limits()
        self.uids = uids or UidPool()
        self._mode = mode
        self._python = sys.executable
        self._checked = False

    def __repr__(self) -> str:
        return f"Sandbox({self.limits!r})"

    @property
    def mode(self) -> str:
        """The isolation in use, chosen on first use."""
        if self._mode is None:
            self._mode = choose_mode()
        return self._mode

    def reserve(self, count: int) -> AbstractAsyncContextManager[None]:
        """Hold ``count`` uids at once for the runs inside (tasks they start included).

        Runs that must live at the same time, such as two sandboxes joined by a socket, take
        their uids together here: each taking its own could leave every uid of the pool held by
        a run that waits for its partner, which waits for a uid. Unprivileged, it does nothing.

        >>> async def both(sandbox: Sandbox) -> None:
        ...     async with sandbox.reserve(2):
        ...         await asyncio.gather(sandbox.run({}, ["-c", "1"]), sandbox.run({}, ["-c", "2"]))
        """
        if os.geteuid() != 0:
            return contextlib.nullcontext()
        return self.uids.reserve(count)

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
            if "/" in name or name.startswith(".") or not name:
                raise ConfigError(f"sandbox file names must be plain names, got {name!r}")
        if not self._checked:
            probe = await self._run({}, ["-c", "print('ok')"])
            if probe.returncode != 0 or probe.stdout.strip() != "ok":
                detail = (probe.stderr or probe.stdout).strip()[-500:]
                raise ConfigError(f"the {self.mode} sandbox cannot start Python: {detail}")
            self._checked = True
        return await self._run(files, args, channel=channel, peer=peer, spawned=spawned)

    async def _run(
        self,
        files: Mapping[str, str],
        args: Sequence[str],
        *,
        channel: bool = False,
        peer: int | None = None,
        spawned: Callable[[], object] | None = None,
    ) -> SandboxResult:
        mode = self.mode
        scratch = cgroup = lease = None
        try:
            # Waits for a uid, holding nothing yet: no folder, no cgroup.
            pair = partners(peer) if peer is not None else None
            lease = await self.uids.take_one(pair) if os.geteuid() == 0 else None
            uid = lease.uids[0] if lease is not None else NOBODY
            scratch = Path(tempfile.mkdtemp(prefix="cascade-sandbox-"))
            cgroup = _cgroup(scratch.name, self.limits)
            work = scratch / "work"
            work.mkdir()
            for name, text in {**files, "_cascade_guard.py": GUARD}.items():
                # A lone surrogate in the code is the code's fault: Python inside refuses it.
                (work / name).write_text(text, encoding="utf-8", errors="surrogatepass")
            (work / "_cascade_filter.bpf").write_bytes(seccomp_filter())
            inner = [*self._limits_argv(uid), self._python, "-I", "-B", "_cascade_guard.py"]
            inner += args
            names = sorted([*files, "_cascade_guard.py", "_cascade_filter.bpf"])
            if mode == "bwrap":
                argv = self._bwrap_argv(scratch, names, inner, uid)
            else:
                argv = self._unshare_argv(scratch, inner, uid)
            enter = None if cgroup is None else cgroup.procs
            return await _execute(
                argv, scratch, self.limits.wall_s, channel=channel, cgroup=enter, peer=peer,
                spawned=spawned,
            )  # fmt: skip
        finally:
            if cgroup is not None:
                cgroup.remove()
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
            if lease is not None:
                lease.release()

    def describe(self) -> str:
        """The isolation in force here, for people: the sandbox's self-test says it."""
        return f"{self.mode}; {describe()}"

    def _limits_argv(self, uid: int = NOBODY) -> list[str]:
        limits = self.limits
        processes = limits.processes
        if os.geteuid() != 0:
            # Unprivileged, we keep our own uid, and RLIMIT_NPROC counts all of its processes.
            processes += processes_of(os.getuid())
        drop = ["/usr/bin/setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
        return [
            *(drop if os.geteuid() == 0 else []),
            "/usr/bin/prlimit",
            f"--nproc={processes}",
            f"--as={limits.memory_mb << 20}",
            f"--cpu={limits.cpu_s}",
            f"--fsize={limits.file_mb << 20}",
            "--core=0",
            "--",
        ]

    def _python_dirs(self) -> list[str]:
        """The directories this Python needs, outside ``/usr``."""
        found = {sys.prefix, sys.base_prefix, str(Path(os.path.realpath(self._python)).parents[1])}
        return sorted(d for d in found if not any(d.startswith(s + "/") or d == s for s in _SYSTEM))

    def _bwrap_argv(self, scratch: Path, names: list[str], inner: list[str], uid: int) -> list[str]:
        etc = write_etc(scratch, uid)
        argv = ["bwrap", "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
        argv += ["--unshare-cgroup-try", "--die-with-parent", "--new-session", "--clearenv"]
        for path in _SYSTEM:
            if os.path.islink(path):
                argv += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                argv += ["--ro-bind", path, path]
        # /tmp first: Python itself may live under it (a virtualenv in a CI checkout, say).
        scratch_size = str(_SCRATCH_MB << 20)
        argv += ["--perms", "1777", "--size", scratch_size, "--tmpfs", "/tmp"]  # noqa: S108
        made: set[str] = {"/tmp"}  # noqa: S108  # the sandbox's private tmpfs
        for directory in self._python_dirs():
            for parent in reversed(Path(directory).parents[:-1]):
                if str(parent) not in made:
                    made.add(str(parent))
                    argv += ["--dir", str(parent)]
            argv += ["--ro-bind", directory, directory]
        argv += ["--ro-bind", str(etc), "/etc", "--proc", "/proc", "--dev", "/dev"]
        argv += ["--perms", "0777", "--size", scratch_size, "--tmpfs", "/sandbox"]
        for name in names:
            argv += ["--ro-bind", str(scratch / "work" / name), f"/sandbox/{name}"]
        for key, value in _ENV.items():
            argv += ["--setenv", key, value]
        argv += ["--chdir", "/sandbox"]
        if os.geteuid() == 0:
            argv += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        return [*argv, "--", *inner]

    def _unshare_argv(self, scratch: Path, inner: list[str], uid: int) -> list[str]:
        """``unshare`` namespaces, then a shell that builds the same view and chroots into it."""
        etc = write_etc(scratch, uid)
        root = scratch / "root"
        root.mkdir()
        lines = ["set -eu", f"R={shlex.quote(str(root))}", "mount --make-rprivate /"]
        lines.append('mount -t tmpfs -o mode=0755,size=16m cascade-root "$R"')
        for path in _SYSTEM:
            if os.path.islink(path):
                lines.append(f'ln -s {shlex.quote(os.readlink(path))} "$R{path}"')
            elif os.path.isdir(path):
                lines.append(_ro_bind(path))
        size = f"size={_SCRATCH_MB}m"
        # /tmp first: Python itself may live under it (a virtualenv in a CI checkout, say).
        lines.append(f'mkdir "$R/tmp"; mount -t tmpfs -o mode=1777,{size} cascade-tmp "$R/tmp"')
        lines += [_ro_bind(d) for d in self._python_dirs()]
        lines.append(_ro_bind(str(etc), "/etc"))
        lines += [
            f'mkdir "$R/sandbox"; mount -t tmpfs -o mode=0777,{size} cascade-work "$R/sandbox"',
            f'cp -r {shlex.quote(str(scratch / "work"))}/. "$R/sandbox/"',
            'mkdir "$R/proc"; mount -t proc proc "$R/proc"',
            'mkdir "$R/dev"',
            *(
                f'touch "$R/dev/{dev}"; mount --bind /dev/{dev} "$R/dev/{dev}"'
                for dev in ("null", "zero", "random", "urandom")
            ),
        ]
        env = [f"{key}={value}" for key, value in _ENV.items()]
        chroot = ["chroot", "$R", "/usr/bin/env", "-i", "-C", "/sandbox", *env, *inner]
        # Not exec'd: the shell stays the namespace's init and reports a signal death as 128 + N.
        lines.append(" ".join(a if a == "$R" else shlex.quote(a) for a in chroot))
        unshare = ["unshare", "--mount", "--net", "--pid", "--fork", "--ipc", "--uts"]
        return [*unshare, "--kill-child", "--", "/bin/sh", "-c", "\n".join(lines)]


def _ro_bind(source: str, target: str | None = None) -> str:
    inside = '"$R"' + shlex.quote(target or source)
    # Separate commands, not a && chain: under ``set -e`` a failure inside a chain is ignored.
    return (
        f"mkdir -p {inside}; mount --rbind {shlex.quote(source)} {inside}; "
        f"mount -o remount,bind,ro {inside}"
    )


def _cgroup(name: str, limits: Limits) -> Cgroup | None:
    """A cgroup for one run, where a writable hierarchy allows; else ``None``."""
    try:
        return Cgroup(name, limits.processes, limits.memory_mb)
    except OSError:
        return None


async def _execute(
    argv: list[str],
    scratch: Path,
    wall_s: float,
    *,
    channel: bool = False,
    cgroup: list[str] | None = None,
    peer: int | None = None,
    spawned: Callable[[], object] | None = None,
) -> SandboxResult:
    """Run ``argv`` with its output in files, killing its whole tree at ``wall_s``."""
    start = time.perf_counter()
    with (
        (scratch / "stdout").open("w+b") as out,
        (scratch / "stderr").open("w+b") as err,
        (scratch / "channel").open("w+b") as results,
    ):
        if cgroup:
            # The launcher joins the cgroup, then becomes bwrap or unshare: everything the
            # sandbox starts is inside from its first instruction (and no slow fork here).
            joins = "; ".join(f"echo $$ > {shlex.quote(path)}" for path in cgroup)
            argv = ["/bin/sh", "-c", f'{joins}; exec "$@"', "cascade-cgroup", *argv]
        # The descriptors handed on, and their numbers where the arguments ask for them: only
        # these, since the code inherits every descriptor the launcher has.
        handed = {"{channel}": results.fileno() if channel else None, "{peer}": peer}
        fds = [fd for fd in handed.values() if fd is not None]
        for mark, fd in handed.items():
            if fd is not None:
                argv = [a.replace(mark, str(fd)) for a in argv]
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
            env={"PATH": _HOST_PATH},
            cwd=scratch,
            pass_fds=fds,
        )
        if spawned is not None:
            spawned()
        timed_out = False
        try:
            await asyncio.wait_for(process.wait(), wall_s)
        except TimeoutError:
            timed_out = True
        finally:
            if process.returncode is None:
                await kill_tree(process)
        duration = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout = out.read(_KEEP_OUTPUT).decode("utf-8", "replace")
        stderr = err.read(_KEEP_OUTPUT).decode("utf-8", "replace")
        results.seek(0)
        written = results.read().decode("utf-8", "replace") if channel else ""
    assert process.returncode is not None  # waited for above
    return SandboxResult(process.returncode, stdout, stderr, timed_out, duration, written)
