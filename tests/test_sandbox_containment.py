"""What sandboxed code cannot reach beside the namespaces.

The kernel keyring, socket families other than unix and inet, io_uring, the launcher's
descriptors, and the choice of what cascade kills. Each runs under bubblewrap, and under the
unshare fallback where we are root.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cascade.validators.sandbox import Limits, Sandbox
from cascade.validators.uid_pool import UidPool

IS_ROOT = os.geteuid() == 0
MODES = [
    "bwrap",
    pytest.param("unshare", marks=pytest.mark.skipif(not IS_ROOT, reason="unshare needs root")),
]
OWN_UIDS = range(64420, 64428)
"""The uids of these tests' sandboxes: apart from the host's pool, which other runs use."""
REPO = Path(__file__).resolve().parents[1]


def run(mode: str, code: str, wall_s: float = 10) -> str:
    """Run ``code`` in a sandbox in ``mode``; its stdout (its stderr if it printed nothing)."""
    sandbox = Sandbox(Limits(wall_s=wall_s), mode=mode, uids=UidPool(OWN_UIDS))
    result = asyncio.run(sandbox.run({"probe.py": textwrap.dedent(code)}, ["probe.py"]))
    return result.stdout or result.stderr


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("name", "number", "args"),
    [
        ("add_key", 248, 'b"user", DESCRIPTION, b"secret", 6, KEYRING'),
        ("request_key", 249, 'b"user", DESCRIPTION, None, KEYRING'),
        ("keyctl", 250, "0, KEYRING, 1"),  # KEYCTL_GET_KEYRING_ID, creating it
    ],
)
def test_the_kernel_keyring_is_refused(mode: str, name: str, number: int, args: str) -> None:
    """add_key, request_key and keyctl each fail with EPERM, called directly by number."""
    if os.uname().machine != "x86_64":
        pytest.skip("the syscall numbers here are x86_64's")
    code = f"""
        import ctypes
        DESCRIPTION, KEYRING = b"cascade-probe", ctypes.c_long(-4)  # the user keyring
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        print("{name}", libc.syscall({number}, {args}), ctypes.get_errno())
    """
    assert run(mode, code).split() == [name, "-1", "1"]


@pytest.mark.skipif(not Path("/proc/keys").exists(), reason="no kernel keyring here")
@pytest.mark.parametrize("mode", MODES)
def test_no_key_outlives_its_sandbox(mode: str) -> None:
    """A key added for everyone to read, in each keyring the code can name, is never made."""
    description = f"cascade-canary-{secrets.token_hex(6)}"
    code = f"""
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        for keyring in (-1, -2, -3, -4, -5):  # thread, process, session, user, user-session
            key = libc.syscall(248, b"user", b"{description}", b"secret", 6, ctypes.c_long(keyring))
            if key > 0:
                libc.syscall(250, 5, ctypes.c_long(key), ctypes.c_ulong(0x3F3F3F3F))  # SETPERM
                print("made", key)
        print("done")
    """
    output = run(mode, code)
    assert "done" in output, output
    assert "made" not in output
    assert description not in Path("/proc/keys").read_text()


@pytest.mark.parametrize("mode", MODES)
def test_only_unix_and_inet_sockets_can_be_made(mode: str) -> None:
    """AF_VSOCK, AF_NETLINK, AF_PACKET and AF_ALG fail with EAFNOSUPPORT; the allowed work."""
    code = """
        import socket
        for family, kind in [(40, 1), (16, 2), (17, 3), (38, 5), (1, 1), (2, 1), (10, 2)]:
            try:
                socket.socket(family, kind).close()
                print(family, "made")
            except OSError as error:
                print(family, error.errno)
        for family in (40, 16, 1):
            try:
                [end.close() for end in socket.socketpair(family, 1)]
                print("pair", family, "made")
            except OSError as error:
                print("pair", family, error.errno)
    """
    lines = run(mode, code).splitlines()
    assert lines == [
        "40 97", "16 97", "17 97", "38 97", "1 made", "2 made", "10 made",
        "pair 40 97", "pair 16 97", "pair 1 made",
    ]  # fmt: skip


@pytest.mark.parametrize("mode", MODES)
def test_inet_sockets_live_in_an_empty_network_namespace(mode: str) -> None:
    """The only interface an allowed AF_INET socket could use is the sandbox's own loopback."""
    code = "print([line.split(':')[0].strip() for line in open('/proc/net/dev')][2:])\n"
    assert run(mode, code).strip() == "['lo']"


@pytest.mark.parametrize("mode", MODES)
def test_io_uring_is_refused(mode: str) -> None:
    """io_uring, which opens sockets where the filter cannot see, fails with ENOSYS."""
    code = """
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        params = ctypes.create_string_buffer(120)
        print(libc.syscall(425, 4, params), ctypes.get_errno())
    """
    assert run(mode, code).split() == ["-1", "38"]


@pytest.mark.parametrize("mode", MODES)
def test_the_code_holds_no_descriptor_but_its_own(mode: str) -> None:
    """Nothing of the launcher's is open inside: only stdin, stdout and stderr."""
    code = """
        import os
        found = []
        for fd in range(3, 1024):
            try:
                os.fstat(fd)
            except OSError:
                continue
            found.append(fd)
        print("open", found)
    """
    assert run(mode, code).strip() == "open []"


HOSTILE = """
import os, time
PAYLOADS = [str({pid}).encode(), b'{{"child-pid": {pid}}}']
for fd in range(3, 1024):
    for payload in PAYLOADS:
        try:
            os.lseek(fd, 0, 0)
            os.write(fd, payload)
        except OSError:
            pass
for folder in (".", "/sandbox", "/tmp", ".."):
    for name in ("info", "pid", "child-pid"):
        try:
            open(os.path.join(folder, name), "w").write(PAYLOADS[1].decode())
        except OSError:
            pass
time.sleep(60)
"""
"""Write ``pid`` wherever the code can, in every form a launcher's info could take; hang."""

DRIVER = """
import asyncio, sys
from cascade.validators.sandbox import Limits, Sandbox
from cascade.validators.uid_pool import UidPool
mode, first, code = sys.argv[1], int(sys.argv[2]), sys.argv[3]
sandbox = Sandbox(Limits(wall_s=2), mode=mode, uids=UidPool(range(first, first + 4)))
result = asyncio.run(sandbox.run({"hostile.py": code}, ["hostile.py"]))
print("timed out", result.timed_out)
"""
"""cascade in a session of its own, running the hostile code: killing its group kills this."""


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("target", ["a process of the test's", "cascade's own group"])
def test_a_pid_the_code_writes_is_never_signalled(mode: str, target: str) -> None:
    """Code that writes a host pid, or 0, everywhere and then times out kills neither."""
    with subprocess.Popen(["sleep", "60"]) as victim:  # noqa: S607  # coreutils on PATH
        try:
            pid = victim.pid if target == "a process of the test's" else 0
            cascade = subprocess.run(  # noqa: S603  # our own Python and script
                [sys.executable, "-c", DRIVER, mode, str(OWN_UIDS[-4]), HOSTILE.format(pid=pid)],
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=60,
                start_new_session=True,
                check=False,
            )
            assert cascade.returncode == 0, cascade.stderr[-2000:]
            assert "timed out True" in cascade.stdout
            assert victim.poll() is None, "the sandbox had a process of the test's killed"
        finally:
            victim.kill()


@pytest.mark.parametrize("mode", MODES)
def test_a_lone_surrogate_in_the_code_fails_inside_not_here(mode: str) -> None:
    """Text that UTF-8 cannot encode reaches Python inside, which refuses it: no exception."""
    output = run(mode, "print('\ud800')\n")
    assert "SyntaxError" in output or "UnicodeDecodeError" in output, output
