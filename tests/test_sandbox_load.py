"""The sandbox under concurrent load: limits per sandbox, and no nested user namespaces."""

from __future__ import annotations

import asyncio
import os
import textwrap

import pytest

from cascade.testing import verdict_of
from cascade.validators import passes_tests
from cascade.validators.confine import Cgroup
from cascade.validators.sandbox import Limits, Sandbox

MODES = ["bwrap", "unshare"]
THREADED_ADD = textwrap.dedent(
    """
    import threading
    def add(a, b):
        out = []
        worker = threading.Thread(target=lambda: out.append(a + b))
        worker.start()
        worker.join()
        return out[0]
    """
)
"""A right answer that needs a new thread, which counts against the process limit."""


def sandbox_or_skip(mode: str, limits: Limits) -> Sandbox:
    """A sandbox in ``mode``, or a skip where this machine cannot make one."""
    sandbox = Sandbox(limits, mode=mode)
    if mode == "unshare" and os.geteuid() != 0:
        pytest.skip("the unshare sandbox needs root")
    return sandbox


@pytest.mark.parametrize("mode", MODES)
def test_a_nested_user_namespace_is_refused(mode: str) -> None:
    """unshare(CLONE_NEWUSER) fails with EPERM inside, from Python or from a child process."""
    sandbox = sandbox_or_skip(mode, Limits(wall_s=10))
    code = textwrap.dedent(
        """
        import ctypes, subprocess
        libc = ctypes.CDLL(None, use_errno=True)
        print("unshare", libc.unshare(0x10000000), ctypes.get_errno())
        child = subprocess.run(["unshare", "--user", "/bin/true"], capture_output=True)
        print("child", child.returncode)
        """
    )
    result = asyncio.run(sandbox.run({"probe.py": code}, ["probe.py"]))
    assert "unshare -1 1" in result.stdout, result.stderr
    assert "child 0" not in result.stdout
    assert "user namespaces refused" in sandbox.describe()


def _cgroups_here() -> bool:
    try:
        Cgroup("cascade-probe", 8, 64).remove()
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _cgroups_here(), reason="no writable cgroup with pids and memory here")
@pytest.mark.parametrize("mode", MODES)
def test_a_memory_bomb_over_many_processes_stays_inside_the_sandbox_cap(mode: str) -> None:
    """Six processes of 150 MB each pass every per-process limit, but not the sandbox's 512 MB."""
    sandbox = sandbox_or_skip(mode, Limits(wall_s=20, memory_mb=512))
    bomb = textwrap.dedent(
        """
        import os, time
        children = []
        for _ in range(6):
            pid = os.fork()
            if pid == 0:
                block = b"x" * (150 << 20)  # written, so really resident
                time.sleep(1)  # held together: a child that ends first frees its share
                os._exit(0 if len(block) else 1)
            children.append(pid)
        codes = [os.waitpid(pid, 0)[1] for pid in children]
        print("all lived" if all(code == 0 for code in codes) else f"killed: {codes}")
        """
    )
    result = asyncio.run(sandbox.run({"bomb.py": bomb}, ["bomb.py"]))
    assert "all lived" not in result.stdout, "the processes together passed the sandbox's cap"
    assert "cgroup" in sandbox.describe()


@pytest.mark.parametrize("mode", MODES)
def test_eight_fork_bombs_leave_a_ninth_sandbox_working(mode: str) -> None:
    """Process limits hold per sandbox: eight sandboxes at their limit do not starve a ninth."""
    if os.geteuid() != 0:
        pytest.skip("a uid per sandbox needs root; unprivileged sandboxes share the caller's")
    bombs = sandbox_or_skip(mode, Limits(wall_s=4, cpu_s=4, processes=16))
    honest = bombs  # the same limits for all nine
    bomb = textwrap.dedent(
        """
        import os, time
        while True:
            try:
                os.fork()
            except OSError:
                time.sleep(0.05)
        """
    )

    async def go() -> list[object]:
        running = [
            asyncio.ensure_future(bombs.run({"bomb.py": bomb}, ["bomb.py"])) for _ in range(8)
        ]
        await asyncio.sleep(1.5)  # the bombs are at their limits
        validator = passes_tests(["assert add(2, 2) == 4"], sandbox=honest)
        verdict = await asyncio.to_thread(verdict_of, validator, THREADED_ADD)
        return [verdict, *await asyncio.gather(*running)]

    verdict, *results = asyncio.run(go())
    assert verdict.passed, verdict  # type: ignore[attr-defined]
    assert all(r.timed_out for r in results)  # type: ignore[attr-defined]
