"""What keeps one sandbox from another and from the host's kernel, beside the namespaces.

- **No nested user namespaces.** Every sandboxed Python starts in :data:`GUARD`, which installs
  a seccomp filter (built here, :func:`seccomp_filter`) before any code under test runs:
  ``unshare`` and ``clone`` with ``CLONE_NEWUSER`` fail with ``EPERM``, ``clone3`` (whose flags
  a filter cannot read) with ``ENOSYS``, so that libc falls back to ``clone``, and so do
  syscalls of another ABI (32-bit, x32). The filter cannot be lifted and is inherited by every
  child. Where it cannot be installed, nothing runs.
- **Limits per sandbox, not per host uid.** As root, each sandbox running at a time gets a uid
  of its own from a pool (:class:`UidSlot`, held with a lock file, so that worker processes never
  share one): ``RLIMIT_NPROC`` then counts that sandbox's processes alone. Where a cgroup
  hierarchy with the ``pids`` and ``memory`` controllers is writable (v2, or v1 as on many
  container hosts), each sandbox also gets its own cgroup with ``pids.max`` and a memory cap for
  all its processes together (:class:`Cgroup`). Unprivileged, the sandbox keeps the caller's
  uid and its process limit counts that uid's other processes in.

>>> len(seccomp_filter("x86_64")) % 8, len(seccomp_filter("aarch64")) // 8
(0, 13)
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import platform
import shutil
import struct
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from cascade.errors import ConfigError

__all__ = [
    "GUARD",
    "NOBODY",
    "UID_POOL",
    "Cgroup",
    "SandboxWarning",
    "UidSlot",
    "choose_mode",
    "describe",
    "processes_of",
    "seccomp_filter",
    "write_etc",
]

_ARCHES = {
    # machine: (AUDIT_ARCH_*, unshare, clone, clone3)
    "x86_64": (0xC000003E, 272, 56, 435),
    "aarch64": (0xC00000B7, 97, 220, 435),
}
_CLONE_NEWUSER = 0x10000000
_RET_ALLOW, _RET_ERRNO = 0x7FFF0000, 0x00050000
_EPERM, _ENOSYS = 1, 38
_LD_ABS, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06


def seccomp_filter(machine: str | None = None) -> bytes:
    """The classic-BPF program of the filter, for ``machine`` (this one's by default)."""
    arch, unshare, clone, clone3 = _ARCHES[machine or platform.machine()]
    program = [
        (_LD_ABS, 0, 0, 4),  # 0: the syscall's architecture
        (_JEQ, 0, 10, arch),  # 1: another ABI -> EPERM (12)
        (_LD_ABS, 0, 0, 0),  # 2: the syscall number
        (_JGE, 8, 0, 0x40000000),  # 3: x32 -> EPERM (12)
        (_JEQ, 3, 0, unshare),  # 4: -> check the flags (8)
        (_JEQ, 2, 0, clone),  # 5: -> check the flags (8)
        (_JEQ, 4, 0, clone3),  # 6: -> ENOSYS (11)
        (_RET, 0, 0, _RET_ALLOW),  # 7
        (_LD_ABS, 0, 0, 16),  # 8: the low half of the first argument: the flags
        (_JSET, 2, 0, _CLONE_NEWUSER),  # 9: a new user namespace -> EPERM (12)
        (_RET, 0, 0, _RET_ALLOW),  # 10
        (_RET, 0, 0, _RET_ERRNO | _ENOSYS),  # 11
        (_RET, 0, 0, _RET_ERRNO | _EPERM),  # 12
    ]
    return b"".join(struct.pack("<HBBI", *instruction) for instruction in program)


GUARD = r"""
import ctypes, runpy, sys
def _confine():
    with open("_cascade_filter.bpf", "rb") as handle:
        program = handle.read()
    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = Program(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(38, 1, 0, 0, 0) != 0 or libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) != 0:
        errno = ctypes.get_errno()
        sys.stderr.write(f"cascade sandbox: cannot install the seccomp filter (errno {errno})\n")
        raise SystemExit(125)
_confine()
del _confine
_args = sys.argv[1:]
if _args[0] == "-c":
    sys.argv = ["-c", *_args[2:]]
    exec(compile(_args[1], "<string>", "exec"), {"__name__": "__main__"})
elif _args[0] == "-m":
    sys.argv = [_args[1], *_args[2:]]
    runpy.run_module(_args[1], run_name="__main__", alter_sys=True)
else:
    sys.argv = _args
    runpy.run_path(_args[0], run_name="__main__")
"""
"""``python -I -B _cascade_guard.py ARGS``: confine this process, then run ARGS as python would."""


class SandboxWarning(UserWarning):
    """The sandbox runs in its weaker fallback mode."""


NOBODY = 65534
_UID_BASE, _UID_SLOTS = 64100, 64
UID_POOL = range(_UID_BASE, _UID_BASE + _UID_SLOTS)
"""The uids sandboxes run as when cascade runs as root, one per sandbox running at a time."""


class UidSlot:
    """A uid from the pool, held (across processes) until :meth:`release`."""

    def __init__(self) -> None:
        folder = Path(tempfile.gettempdir()) / "cascade-sandbox-uids"
        folder.mkdir(mode=0o700, exist_ok=True)
        taken = _host_uids()
        for slot in range(_UID_SLOTS):
            uid = _UID_BASE + slot
            if uid in taken:
                continue
            handle: IO[bytes] = (folder / f"{uid}.lock").open("wb")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                continue
            self.uid, self._handle = uid, handle
            return
        raise RuntimeError(f"all {_UID_SLOTS} sandbox uids are in use")

    def release(self) -> None:
        """Give the uid back to the pool."""
        with contextlib.suppress(OSError):
            fcntl.flock(self._handle, fcntl.LOCK_UN)
        self._handle.close()


def _host_uids() -> set[int]:
    with contextlib.suppress(OSError):
        lines = Path("/etc/passwd").read_text(encoding="utf-8", errors="replace").splitlines()
        return {int(parts[2]) for parts in (line.split(":") for line in lines)
                if len(parts) > 2 and parts[2].isdigit()}  # fmt: skip
    return set()


@dataclass(frozen=True, slots=True)
class _Hierarchy:
    version: int
    pids: Path
    memory: Path


def _own_path(controller: str) -> str | None:
    """The cgroup path of this process for ``controller`` (``""``: the v2 unified one)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, names, path = line.split(":", 2)
            if controller in names.split(","):
                return path
    return None


def _find_hierarchy() -> _Hierarchy | None:
    if os.geteuid() != 0:
        return None
    root = Path("/sys/fs/cgroup")
    controllers = root / "cgroup.controllers"
    if controllers.exists():  # v2 only
        own = _own_path("")
        if own is not None and {"pids", "memory"} <= set(controllers.read_text().split()):
            base = root / own.lstrip("/")
            subtree = base / "cgroup.subtree_control"
            with contextlib.suppress(OSError):
                if not {"pids", "memory"} <= set(subtree.read_text().split()):
                    subtree.write_text("+pids +memory")
                return _Hierarchy(2, base, base)
        return None
    pids, memory = _own_path("pids"), _own_path("memory")
    if pids is None or memory is None:
        return None
    found = _Hierarchy(1, root / "pids" / pids.lstrip("/"), root / "memory" / memory.lstrip("/"))
    writable = all(os.access(p, os.W_OK) for p in (found.pids, found.memory))
    return found if writable else None


_HIERARCHY: list[_Hierarchy | None] = []


def _hierarchy() -> _Hierarchy | None:
    if not _HIERARCHY:
        _HIERARCHY.append(_find_hierarchy())
    return _HIERARCHY[0]


class Cgroup:
    """A cgroup of one sandbox run: ``pids.max`` and a memory cap over all its processes."""

    def __init__(self, name: str, processes: int, memory_mb: int) -> None:
        found = _hierarchy()
        if found is None:
            raise OSError("no writable cgroup hierarchy with pids and memory")
        self.version = found.version
        self._dirs = sorted({found.pids / name, found.memory / name})
        for folder in self._dirs:
            folder.mkdir()
        try:
            if found.version == 2:
                (found.pids / name / "pids.max").write_text(str(processes))
                (found.memory / name / "memory.max").write_text(str(memory_mb << 20))
                (found.memory / name / "memory.swap.max").write_text("0")
            else:
                (found.pids / name / "pids.max").write_text(str(processes))
                (found.memory / name / "memory.limit_in_bytes").write_text(str(memory_mb << 20))
        except OSError:
            self.remove()
            raise
        self.procs = [str(folder / "cgroup.procs") for folder in self._dirs]

    def remove(self) -> None:
        """Remove the cgroup once its processes are gone (they are, after the run)."""
        for folder in self._dirs:
            for _ in range(50):
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)


def describe() -> str:
    """Which mechanisms keep sandboxes apart on this machine, for people."""
    parts = ["user namespaces refused (seccomp)"]
    if os.geteuid() == 0:
        parts.append(f"a uid of its own per sandbox ({_UID_SLOTS} in the pool)")
        found = _hierarchy()
        if found is not None:
            parts.append(f"a cgroup v{found.version} per sandbox (pids.max, memory)")
        else:
            parts.append("no writable cgroup: memory is capped per process only")
    else:
        parts.append("unprivileged: one uid shared with the caller's processes")
    return "; ".join(parts)


def write_etc(scratch: Path, uid: int = 65534) -> Path:
    """A minimal /etc: who nobody is, and nothing else (no shadow, no hosts, no secrets)."""
    etc = scratch / "etc"
    etc.mkdir()
    sandbox = f"sandbox:x:{uid}:{uid}:sandbox:/sandbox:/bin/sh\n" if uid != NOBODY else ""
    (etc / "passwd").write_text(
        f"root:x:0:0:root:/root:/bin/sh\nnobody:x:{NOBODY}:{NOBODY}:nobody:/sandbox:/bin/sh\n"
        + sandbox
    )
    (etc / "group").write_text(f"root:x:0:\nnogroup:x:{NOBODY}:\n")
    for path in etc.iterdir():
        path.chmod(0o644)
    etc.chmod(0o755)
    return etc


def processes_of(uid: int) -> int:
    """How many processes ``uid`` runs on this host."""
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                count += entry.stat().st_uid == uid
    return count


def choose_mode() -> str:
    """The sandbox to use here: bubblewrap, else ``unshare`` (root), else a ConfigError."""
    problems = []
    if shutil.which("bwrap"):
        if _works(["bwrap", "--ro-bind", "/", "/", "--unshare-net", "--", "/bin/true"]):
            return "bwrap"
        problems.append("bubblewrap is installed but cannot create namespaces here")
    else:
        problems.append("bubblewrap (bwrap) is not installed")
    probe = ["unshare", "--mount", "--net", "--pid", "--fork", "--", "/bin/true"]
    if os.geteuid() == 0 and shutil.which("unshare") and _works(probe):
        warnings.warn(
            f"{problems[0]}: running generated code under the weaker unshare + rlimits "
            "sandbox. Install bubblewrap (apt-get install bubblewrap) for the full sandbox.",
            SandboxWarning,
            stacklevel=4,
        )
        return "unshare"
    problems.append("the unshare fallback needs root and a working unshare")
    raise ConfigError(
        "no sandbox is available to run generated code, and it is never run unsandboxed: "
        + "; ".join(problems)
        + ". Install bubblewrap (apt-get install bubblewrap)."
    )


def _works(argv: list[str]) -> bool:
    try:
        completed = subprocess.run(argv, capture_output=True, timeout=10, check=False)  # noqa: S603  # fixed argv
    except (OSError, subprocess.TimeoutExpired):
        return False
    return completed.returncode == 0
