"""How one sandbox is launched: its limits, its view of the files, its process, and its end.

:class:`Launcher` builds the command line: bubblewrap's (or ``unshare``'s) view of the file
system, the unprivileged uid and the rlimits, around ``python -I -B _cascade_guard.py``.
:func:`execute` runs such a command to its end, killing its whole tree at the wall-clock limit;
:func:`ended` reads what it left. :mod:`cascade.validators.sandbox` starts one per run,
:mod:`cascade.validators.warm` ahead of its job.
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
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cascade.validators.confine import NOBODY, Cgroup, processes_of, write_etc
from cascade.validators.process_tree import kill_tree
from cascade.validators.uid_pool import Lease

__all__ = [
    "FILTER_FILE",
    "GUARD_FILE",
    "HOST_PATH",
    "Launcher",
    "Limits",
    "SandboxResult",
    "cgroup_for",
    "ended",
    "execute",
    "give_back",
    "in_cgroup",
]

GUARD_FILE = "_cascade_guard.py"
FILTER_FILE = "_cascade_filter.bpf"

_SCRATCH_MB = 64
_KEEP_OUTPUT = 64_000
_SYSTEM = ("/usr", "/bin", "/lib", "/lib64", "/sbin")
HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
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
    prestarted: bool = False
    """Whether the sandbox was started ahead of this run (:mod:`cascade.validators.warm`)."""

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


@dataclass(frozen=True, slots=True)
class Launcher:
    """The command line of one sandbox running ``python`` under ``limits``."""

    python: str
    limits: Limits

    def inner(self, uid: int, args: list[str]) -> list[str]:
        """The uid dropped and the limits set, then ``python -I -B _cascade_guard.py ARGS``."""
        return [*self.limits_argv(uid), self.python, "-I", "-B", GUARD_FILE, *args]

    def limits_argv(self, uid: int = NOBODY) -> list[str]:
        """``setpriv`` to ``uid`` (as root) and ``prlimit`` with the limits, ahead of Python."""
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

    def python_dirs(self) -> list[str]:
        """The directories this Python needs, outside ``/usr``."""
        found = {sys.prefix, sys.base_prefix, str(Path(os.path.realpath(self.python)).parents[1])}
        return sorted(d for d in found if not any(d.startswith(s + "/") or d == s for s in _SYSTEM))

    def bwrap_argv(self, scratch: Path, names: list[str], inner: list[str], uid: int) -> list[str]:
        """The bubblewrap command: ``names`` of ``scratch/work`` in ``/sandbox``, then ``inner``."""
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
        for directory in self.python_dirs():
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

    def unshare_argv(self, scratch: Path, inner: list[str], uid: int) -> list[str]:
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
        lines += [_ro_bind(d) for d in self.python_dirs()]
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


def cgroup_for(name: str, limits: Limits) -> Cgroup | None:
    """A cgroup for one run, where a writable hierarchy allows; else ``None``."""
    try:
        return Cgroup(name, limits.processes, limits.memory_mb)
    except OSError:
        return None


def give_back(scratch: Path | None, cgroup: Cgroup | None, lease: Lease | None) -> None:
    """Remove a run's cgroup (once its processes are gone) and folder, and free its uid."""
    if cgroup is not None:
        cgroup.remove()
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)
    if lease is not None:
        lease.release()


def in_cgroup(argv: list[str], cgroup: Cgroup | None) -> list[str]:
    """``argv``, started by a shell that first joins ``cgroup``, where there is one.

    The shell joins, then becomes bwrap or unshare: everything the sandbox starts is inside
    from its first instruction (and no slow fork here).
    """
    if cgroup is None:
        return argv
    joins = "; ".join(f"echo $$ > {shlex.quote(path)}" for path in cgroup.procs)
    return ["/bin/sh", "-c", f'{joins}; exec "$@"', "cascade-cgroup", *argv]


def ended(
    scratch: Path,
    returncode: int,
    timed_out: bool,
    duration: float,
    *,
    channel: bool,
    prestarted: bool = False,
) -> SandboxResult:
    """The result of a run whose output went to ``scratch``'s files, once it has ended."""
    with (scratch / "stdout").open("rb") as out, (scratch / "stderr").open("rb") as err:
        stdout = out.read(_KEEP_OUTPUT).decode("utf-8", "replace")
        stderr = err.read(_KEEP_OUTPUT).decode("utf-8", "replace")
    written = ""
    if channel:
        written = (scratch / "channel").read_bytes().decode("utf-8", "replace")
    return SandboxResult(returncode, stdout, stderr, timed_out, duration, written, prestarted)


async def execute(
    argv: list[str],
    scratch: Path,
    wall_s: float,
    *,
    channel: bool = False,
    cgroup: Cgroup | None = None,
    peer: int | None = None,
    spawned: Callable[[], object] | None = None,
) -> SandboxResult:
    """Run ``argv`` with its output in files, killing its whole tree at ``wall_s``."""
    start = time.perf_counter()
    with (
        (scratch / "stdout").open("wb") as out,
        (scratch / "stderr").open("wb") as err,
        (scratch / "channel").open("wb") as results,
    ):
        argv = in_cgroup(argv, cgroup)
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
            env={"PATH": HOST_PATH},
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
    assert process.returncode is not None  # waited for above
    duration = time.perf_counter() - start
    return ended(scratch, process.returncode, timed_out, duration, channel=channel)
