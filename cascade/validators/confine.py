"""What keeps one sandbox from another and from the host's kernel, beside the namespaces.

- **No nested user namespaces.** Every sandboxed Python starts in :data:`GUARD`, which installs
  a seccomp filter (built here, :func:`seccomp_filter`) before any code under test runs:
  ``unshare`` and ``clone`` with ``CLONE_NEWUSER`` fail with ``EPERM``, ``clone3`` (whose flags
  a filter cannot read) with ``ENOSYS``, so that libc falls back to ``clone``, and so do
  syscalls of another ABI (32-bit, x32). The filter cannot be lifted and is inherited by every
  child. Where it cannot be installed, nothing runs.
- **Limits per sandbox, not per host uid.** As root, each sandbox running at a time gets a uid
  of its own from a host-wide pool (:mod:`cascade.validators.uid_pool`, held with lock files, so
  that no two processes ever share one): ``RLIMIT_NPROC`` then counts that sandbox's processes
  alone. Where a cgroup
  hierarchy with the ``pids`` and ``memory`` controllers is writable (v2, or v1 as on many
  container hosts), each sandbox also gets its own cgroup with ``pids.max`` and a memory cap for
  all its processes together (:class:`Cgroup`). Unprivileged, the sandbox keeps the caller's
  uid and its process limit counts that uid's other processes in.

>>> len(seccomp_filter("x86_64")) % 8, len(seccomp_filter("aarch64")) // 8
(0, 26)
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import struct
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from cascade.errors import ConfigError
from cascade.validators.uid_pool import UID_POOL

__all__ = [
    "GUARD",
    "NOBODY",
    "Cgroup",
    "SandboxWarning",
    "choose_mode",
    "describe",
    "processes_of",
    "seccomp_filter",
    "write_etc",
]

_ARCHES = {
    # machine: (AUDIT_ARCH_*, {syscall name: number})
    "x86_64": (0xC000003E, {
        "unshare": 272, "clone": 56, "clone3": 435, "socket": 41, "socketpair": 53,
        "add_key": 248, "request_key": 249, "keyctl": 250,
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    }),
    "aarch64": (0xC00000B7, {
        "unshare": 97, "clone": 220, "clone3": 435, "socket": 198, "socketpair": 199,
        "add_key": 217, "request_key": 218, "keyctl": 219,
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    }),
}  # fmt: skip
_CLONE_NEWUSER = 0x10000000
_FAMILIES = (1, 2, 10)
"""The socket families allowed: AF_UNIX, and AF_INET / AF_INET6, which reach nothing from the
sandbox's empty network namespace (both modes make one). Every other family fails: vsock, for
one, is not namespaced at all, and netlink or packet sockets reach the kernel's own state."""
_RET_ALLOW, _RET_ERRNO = 0x7FFF0000, 0x00050000
_EPERM, _ENOSYS, _EAFNOSUPPORT = 1, 38, 97
_LD_ABS, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
_NUMBER, _ARCH, _ARG0 = 0, 4, 16  # offsets in struct seccomp_data (ARG0: its low half)
_Op = tuple[int, str | None, str | None, int]
"""One instruction: (code, jump-if-true label, jump-if-false label, constant); a ``None``
label falls through. A label is an instruction of its own: ``("", name)``."""


def _assemble(program: list[_Op | tuple[str, str]]) -> bytes:
    """Classic BPF from ``program``, its forward jumps given as labels."""
    ops: list[_Op] = []
    labels: dict[str, int] = {}
    for item in program:
        if len(item) == 2:
            labels[item[1]] = len(ops)
        else:
            ops.append(item)

    def jump(target: str | None, at: int) -> int:
        return 0 if target is None else labels[target] - at - 1

    return b"".join(
        struct.pack("<HBBI", code, jump(true, at), jump(false, at), k)
        for at, (code, true, false, k) in enumerate(ops)
    )


def seccomp_filter(machine: str | None = None) -> bytes:
    """The classic-BPF program of the filter, for ``machine`` (this one's by default).

    Refused: syscalls of another ABI (32-bit, x32) and a new user namespace (``EPERM``);
    ``clone3``, whose flags a filter cannot read, and io_uring, which could open sockets
    unfiltered (``ENOSYS``: libc and Python fall back); the kernel keyring, which outlives the
    sandbox and is shared between uids (``EPERM``); sockets of a family not in
    :data:`_FAMILIES` (``EAFNOSUPPORT``).
    """
    arch, number = _ARCHES[machine or platform.machine()]
    checked = {
        "unshare": "flags", "clone": "flags", "socket": "family", "socketpair": "family",
        "clone3": "enosys", "io_uring_setup": "enosys", "io_uring_enter": "enosys",
        "io_uring_register": "enosys",
        "add_key": "eperm", "request_key": "eperm", "keyctl": "eperm",
    }  # fmt: skip
    program: list[_Op | tuple[str, str]] = [
        (_LD_ABS, None, None, _ARCH),
        (_JEQ, None, "eperm", arch),
        (_LD_ABS, None, None, _NUMBER),
        (_JGE, "eperm", None, 0x40000000),  # x32
        *((_JEQ, label, None, number[name]) for name, label in checked.items()),
        (_RET, None, None, _RET_ALLOW),
        ("", "flags"),
        (_LD_ABS, None, None, _ARG0),
        (_JSET, "eperm", "allow", _CLONE_NEWUSER),
        ("", "family"),
        (_LD_ABS, None, None, _ARG0),
        *((_JEQ, "allow", None, family) for family in _FAMILIES),
        (_RET, None, None, _RET_ERRNO | _EAFNOSUPPORT),
        ("", "allow"),
        (_RET, None, None, _RET_ALLOW),
        ("", "enosys"),
        (_RET, None, None, _RET_ERRNO | _ENOSYS),
        ("", "eperm"),
        (_RET, None, None, _RET_ERRNO | _EPERM),
    ]
    return _assemble(program)


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
if _args == ["--job"]:
    def _take_job():
        # Started ahead of its job: one job arrives on the socket at fd 0, whose descriptors
        # replace their marks in the arguments. The socket is closed before any of it runs.
        import json, os, socket
        control = socket.socket(fileno=0)
        head, fds, _, _ = socket.recv_fds(control, 20, 4)
        while 0 < len(head) < 20:
            head += control.recv(20 - len(head))
        if len(head) < 20:
            raise SystemExit(0)  # let go unused
        body = bytearray()
        while len(body) < int(head):
            if not (chunk := control.recv(min(1 << 20, int(head) - len(body)))):
                raise SystemExit(0)
            body += chunk
        control.sendall(b"1")
        control.close()
        os.open("/dev/null", os.O_RDONLY)  # the lowest free descriptor: 0 again
        job = json.loads(body)
        for name, text in job["files"].items():
            with open(name, "x", encoding="utf-8", errors="surrogatepass") as handle:
                handle.write(text)
        marks = dict(zip(job["marks"], (str(fd) for fd in fds)))
        args = job["args"]
        for mark, fd in marks.items():
            args = [a.replace(mark, fd) for a in args]
        return args
    def _ahead():
        # What every job imports, imported while the sandbox waits: the standard modules, and
        # the wire both ends of a test run speak (bound read-only beside this file).
        import importlib.util, json, marshal, operator, os, socket, traceback
        spec = importlib.util.spec_from_file_location("_cascade_wire", "_cascade_wire.py")
        if spec is not None and spec.loader is not None and os.path.exists(spec.origin or ""):
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            sys.modules["_cascade_wire"] = module
    _ahead()
    del _ahead
    _args = _take_job()
    del _take_job
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
                # Handed down already, the controllers need no write: a read-only mount
                # (a container's, say) would pass unseen, and no cgroup could be made in it.
                if os.access(base, os.W_OK):
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
        parts.append(f"a uid of its own per sandbox ({len(UID_POOL)} in the pool)")
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
