"""Behaviour tests that kill ``cascade/validators/warm.py``'s surviving mutants (issue 34).

Each checks what a run on a sandbox started ahead of its job looks like from outside: when it
ends, whether it says it timed out, and that its uid goes back to the pool.
``tests/mutation_survivors.md`` lists the mutants no test can tell apart from the original.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from cascade.validators import launch
from cascade.validators.confine import describe
from cascade.validators.sandbox import Limits, Sandbox, SandboxResult
from cascade.validators.uid_pool import UidPool
from tests.helpers import processes_of

ONE_UID = range(65400 + os.getpid() % 100, 65401 + os.getpid() % 100)
"""A pool of one uid, apart from the host's pool and the other test files' uids."""


async def started_ahead(sandbox: Sandbox) -> None:
    """The first run (its check) done, and its refill: sandboxes started ahead are waiting."""
    await sandbox.run({}, ["-c", "pass"])
    await asyncio.sleep(0.2)


def test_a_job_on_a_started_sandbox_ends_when_its_code_ends() -> None:
    """Not at the wall clock: the run returns at once, not timed out."""

    async def go() -> SandboxResult:
        sandbox = Sandbox(Limits(wall_s=10), mode="bwrap")
        try:
            await started_ahead(sandbox)
            return await sandbox.run({}, ["-c", "print(6 * 7)"])
        finally:
            sandbox.close()

    ran = asyncio.run(go())
    assert (ran.prestarted, ran.returncode, ran.stdout, ran.timed_out) == (True, 0, "42\n", False)
    assert ran.duration_s < 5


def test_a_job_that_ended_before_it_was_waited_for_did_not_time_out() -> None:
    """A slow spawned callback lets the job end first: its run still ends as the code did."""

    async def go() -> SandboxResult:
        sandbox = Sandbox(Limits(wall_s=10), mode="bwrap")
        try:
            await started_ahead(sandbox)
            return await sandbox.run({}, ["-c", "pass"], spawned=lambda: time.sleep(1))
        finally:
            sandbox.close()

    ran = asyncio.run(go())
    assert (ran.prestarted, ran.returncode, ran.timed_out) == (True, 0, False), ran.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="started sandboxes take pool uids as root only")
def test_a_pool_of_one_uid_serves_run_after_run_and_gets_it_back(tmp_path: Path) -> None:
    """The uid a started sandbox ran its job with goes back: the next runs get it, and so do we."""
    pool = UidPool(ONE_UID, folder=tmp_path / "locks")

    async def go() -> list[SandboxResult]:
        sandbox = Sandbox(Limits(wall_s=10), mode="bwrap", uids=pool)
        try:
            found = []
            for n in range(4):
                async with asyncio.timeout(10):
                    found.append(await sandbox.run({}, ["-c", f"print({n})"]))
                await asyncio.sleep(0.2)
            return found
        finally:
            sandbox.close()

    found = asyncio.run(go())
    assert [(r.returncode, r.stdout) for r in found] == [(0, f"{n}\n") for n in range(4)]
    assert any(r.prestarted for r in found)
    time.sleep(0.2)  # the last started sandbox's clean-up, in a thread of its own
    lease = pool.try_take()
    assert lease is not None
    lease.release()


def cgroups_of(uid: int) -> set[str]:
    """The pids cgroups the processes of ``uid`` are in, as the host sees them."""
    found = set()
    for entry in os.scandir("/proc"):
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and entry.stat().st_uid == uid:
                lines = Path(entry.path, "cgroup").read_text().split()
                found |= {line.rsplit("/", 1)[-1] for line in lines if ":pids:" in line}
    return found


@pytest.mark.skipif(os.geteuid() != 0, reason="a cgroup is made as root only")
def test_a_started_sandbox_has_a_cgroup_of_its_own_named_as_its_folder(tmp_path: Path) -> None:
    """As a run started on demand: cascade-sandbox-*, and neither is left once the job is over."""
    if "a cgroup v1 per sandbox" not in describe():
        pytest.skip("no writable cgroup v1 here")
    pool = UidPool(ONE_UID, folder=tmp_path / "locks")
    seen: list[set[str]] = []

    async def go() -> SandboxResult:
        sandbox = Sandbox(Limits(wall_s=10), mode="bwrap", uids=pool)
        try:
            await started_ahead(sandbox)  # its job takes the one uid: no refill
            await started_ahead(sandbox)  # on demand, then the refill takes the uid back
            job = ["-c", "import time; time.sleep(0.5)"]
            return await sandbox.run({}, job, spawned=lambda: seen.append(cgroups_of(ONE_UID[0])))
        finally:
            sandbox.close()

    ran = asyncio.run(go())
    assert (ran.prestarted, ran.returncode) == (True, 0), ran.stderr
    [name] = seen[0]
    assert name.startswith("cascade-sandbox-")
    left = [Path("/sys/fs/cgroup/pids") / name, Path(tempfile.gettempdir()) / name]
    deadline = time.monotonic() + 5  # the job's clean-up runs in a thread of its own
    while any(path.exists() for path in left) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(path.exists() for path in left)


def test_a_started_sandboxs_wall_clock_counts_from_the_start_of_the_run() -> None:
    """Time spent before the wait (a slow spawned callback) counts: the job is killed on time."""

    async def go() -> SandboxResult:
        sandbox = Sandbox(Limits(wall_s=3), mode="bwrap")
        try:
            await started_ahead(sandbox)
            job = ["-c", "import time; time.sleep(60)"]
            return await sandbox.run({}, job, spawned=lambda: time.sleep(1.5))
        finally:
            sandbox.close()

    ran = asyncio.run(go())
    assert (ran.prestarted, ran.timed_out) == (True, True)
    assert ran.duration_s < 4.5


@pytest.mark.skipif(os.geteuid() != 0, reason="started sandboxes take pool uids as root only")
def test_a_cancelled_run_on_a_started_sandbox_has_ended_it_when_the_cancel_returns(
    tmp_path: Path,
) -> None:
    """No process of its uid is left once the caller sees the cancellation, not a moment later."""
    pool = UidPool(ONE_UID, folder=tmp_path / "locks")

    async def go() -> tuple[bool, int]:
        sandbox = Sandbox(Limits(wall_s=20), mode="bwrap", uids=pool)
        try:
            await started_ahead(sandbox)  # its job takes the one uid: no refill
            await started_ahead(sandbox)  # on demand, then the refill takes the uid back
            run = asyncio.ensure_future(sandbox.run({}, ["-c", "import time; time.sleep(60)"]))
            await asyncio.sleep(1)
            running = processes_of({ONE_UID[0]}) > 0
            run.cancel()
            with pytest.raises(asyncio.CancelledError):
                await run
            return running, processes_of({ONE_UID[0]})
        finally:
            sandbox.close()

    assert asyncio.run(go()) == (True, 0)


@pytest.mark.skipif(os.geteuid() != 0, reason="started sandboxes take pool uids as root only")
def test_a_started_sandboxs_code_has_its_pool_uid_named_in_passwd() -> None:
    """As on demand: the uid the job runs as is 'sandbox' in the sandbox's /etc/passwd."""
    code = "import os, pwd\nprint(pwd.getpwuid(os.getuid()).pw_name, os.getuid())\n"

    async def go() -> SandboxResult:
        sandbox = Sandbox(Limits(wall_s=10), mode="bwrap")
        try:
            await started_ahead(sandbox)
            return await sandbox.run({}, ["-c", code])
        finally:
            sandbox.close()

    ran = asyncio.run(go())
    assert (ran.prestarted, ran.returncode) == (True, 0), ran.stderr
    name, uid = ran.stdout.split()
    assert name == "sandbox"
    assert int(uid) in range(64100, 64164)


def test_a_refill_that_cannot_make_a_folder_raises_nothing(tmp_path: Path) -> None:
    """The temporary folder gone while starting ahead: nothing is raised, and runs go on."""
    faults: list[object] = []

    async def go() -> list[SandboxResult]:
        asyncio.get_running_loop().set_exception_handler(lambda _, context: faults.append(context))
        sandbox = Sandbox(Limits(wall_s=10), mode="bwrap")
        try:
            found = [await sandbox.run({}, ["-c", "print(1)"])]  # the refill comes next
            before = tempfile.tempdir
            tempfile.tempdir = str(tmp_path / "missing")
            try:
                await asyncio.sleep(0.1)
            finally:
                tempfile.tempdir = before
            found.append(await sandbox.run({}, ["-c", "print(2)"]))
            return found
        finally:
            sandbox.close()

    found = asyncio.run(go())
    assert [(r.returncode, r.stdout) for r in found] == [(0, "1\n"), (0, "2\n")]
    assert faults == []


@pytest.mark.skipif(os.geteuid() != 0, reason="started sandboxes take pool uids as root only")
def test_a_start_ahead_that_fails_half_way_gives_back_its_folder_cgroup_and_uid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its seccomp filter cannot be written: nothing of the start is kept, the run goes on."""
    pool = UidPool(ONE_UID, folder=tmp_path / "locks")
    home = tmp_path / "scratch"
    home.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(home))
    made: list[str] = []

    def cgroup_for(name: str, limits: Limits) -> object:
        made.append(name)
        return launch.cgroup_for(name, limits)

    def no_filter() -> bytes:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("cascade.validators.warm.cgroup_for", cgroup_for)
    monkeypatch.setattr("cascade.validators.warm.seccomp_filter", no_filter)

    async def go() -> SandboxResult:
        sandbox = Sandbox(Limits(wall_s=10), mode="bwrap", uids=pool)
        try:
            async with asyncio.timeout(10):  # the one uid back from the failed start
                return await sandbox.run({}, ["-c", "print(1)"])
        finally:
            sandbox.close()

    ran = asyncio.run(go())
    assert (ran.returncode, ran.stdout, ran.prestarted) == (0, "1\n", False)
    assert made
    assert list(home.iterdir()) == []
    assert not [name for name in made if (Path("/sys/fs/cgroup/pids") / name).exists()]


_EXITS_UNCLOSED = """
import asyncio, sys, tempfile
tempfile.tempdir = sys.argv[1]
from cascade.validators.sandbox import Limits, Sandbox
sandbox = Sandbox(Limits(wall_s=10), mode="bwrap")
print(asyncio.run(sandbox.run({}, ["-c", "print(1)"])).stdout.strip())
"""


def test_a_process_that_exits_without_closing_its_sandbox_leaves_no_folder(tmp_path: Path) -> None:
    """It exits at once (no wait for the idle timers), ending the sandboxes it started ahead."""
    home = tmp_path / "scratch"
    home.mkdir()
    start = time.monotonic()
    done = subprocess.run(  # noqa: S603  # this Python, our own script
        [sys.executable, "-c", _EXITS_UNCLOSED, str(home)],
        cwd=Path(__file__).parents[1],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, "1\n"), done.stderr
    assert [path.name for path in home.iterdir()] == ["cascade-sandbox-uids"]  # the pool's locks
    assert time.monotonic() - start < 8  # the idle timers are 10 s
