"""Sandboxes started ahead of use keep every guarantee of one started for its run.

Each is a whole sandbox of its own (folder, cgroup, uid, seccomp filter installed before its job
arrives), runs one job and is gone; the socket its job came on is closed before the job runs;
the wall-clock limit kills its tree; one that died unused is replaced by a run started on
demand; one left unused gives its uid back.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cascade.validators.confine import NOBODY
from cascade.validators.harness import WIRE_FILE
from cascade.validators.launch import Launcher
from cascade.validators.sandbox import Limits, Sandbox, SandboxResult
from cascade.validators.uid_pool import UidPool
from cascade.validators.warm import WarmPool
from tests.helpers import processes_of

IS_ROOT = os.geteuid() == 0
UIDS = range(64300 + os.getpid() % 40 * 8, 64308 + os.getpid() % 40 * 8)
"""Apart from the host's pool and from other test files' uids."""

PROBE = """
import json, os, socket
fds = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))
def kind(fd):
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return "?"
print(json.dumps({
    "uid": os.getuid(), "pid_in_ns": os.getpid(), "cwd": os.getcwd(),
    "fds": {fd: kind(fd) for fd in fds}, "files": sorted(os.listdir(".")),
    "marker": os.path.exists("/tmp/marker"),
}))
open("/tmp/marker", "w").close()
"""


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """A bubblewrap sandbox keeping two started, closed (and checked) after the test."""
    sandbox = Sandbox(Limits(wall_s=5), mode="bwrap", uids=UidPool(UIDS))
    yield sandbox
    sandbox.close()
    if IS_ROOT:
        assert processes_of(set(UIDS)) == 0, "a started sandbox outlived close()"


async def warmed(sandbox: Sandbox) -> None:
    """The first run (its check) done, and the started sandboxes given time to come up."""
    await sandbox.run({}, ["-c", "pass"])
    await asyncio.sleep(0.5)


def probe(sandbox: Sandbox, runs: int = 1) -> list[tuple[SandboxResult, dict[str, object]]]:
    """``runs`` runs of PROBE, one after another, each with a moment for the pool to refill."""

    async def go() -> list[SandboxResult]:
        await warmed(sandbox)
        results = []
        for _ in range(runs):
            results.append(await sandbox.run({"probe.py": PROBE}, ["probe.py"]))
            await asyncio.sleep(0.5)
        return results

    found = asyncio.run(go())
    assert all(r.returncode == 0 for r in found), [r.stderr[-400:] for r in found]
    return [(r, json.loads(r.stdout)) for r in found]


def test_a_started_sandbox_runs_the_job_as_one_started_for_it(sandbox: Sandbox) -> None:
    """Started ahead, the job sees its files in /sandbox, and stdin is /dev/null."""
    [(result, seen)] = probe(sandbox)
    assert result.prestarted
    assert seen["cwd"] == "/sandbox"
    assert "probe.py" in seen["files"]  # type: ignore[operator]
    assert seen["fds"]["0"] == "/dev/null"  # type: ignore[index]


def test_the_socket_the_job_came_on_is_closed_before_it_runs(sandbox: Sandbox) -> None:
    """The job holds no socket to the host: only stdin, stdout, stderr (and listdir's own)."""
    [(result, seen)] = probe(sandbox)
    assert result.prestarted
    fds: dict[str, str] = seen["fds"]  # type: ignore[assignment]
    assert not [target for target in fds.values() if target.startswith("socket:")], fds
    assert fds["0"] == "/dev/null", fds
    assert set(fds) == {"0", "1", "2", "3"}, fds  # 3: the folder listdir reads


def test_each_started_sandbox_runs_one_job_and_shares_nothing(sandbox: Sandbox) -> None:
    """Three runs: three started sandboxes, none seeing another's /tmp."""
    found = probe(sandbox, runs=3)
    assert all(result.prestarted for result, _ in found)
    assert [seen["marker"] for _, seen in found] == [False, False, False]


@pytest.mark.skipif(not IS_ROOT, reason="uids of its own per sandbox need root")
def test_started_sandboxes_each_hold_a_uid_of_their_own(sandbox: Sandbox) -> None:
    """Two runs at once, both started ahead: two different uids of the pool, neither nobody."""

    async def go() -> list[SandboxResult]:
        await warmed(sandbox)
        job = {"probe.py": PROBE + "import time; time.sleep(0.5)\n"}
        return list(await asyncio.gather(*(sandbox.run(job, ["probe.py"]) for _ in range(2))))

    found = asyncio.run(go())
    assert all(r.prestarted for r in found)
    uids = {json.loads(r.stdout)["uid"] for r in found}
    assert len(uids) == 2
    assert uids <= set(UIDS)
    assert NOBODY not in uids


LIBC = "import ctypes; libc = ctypes.CDLL(None, use_errno=True); "


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("import socket; socket.socket(40, socket.SOCK_STREAM)", "Address family not supported"),
        (LIBC + "print(libc.syscall(250, 0, 0), ctypes.get_errno())", "-1 1"),  # keyctl: EPERM
        (LIBC + "print(libc.unshare(0x10000000), ctypes.get_errno())", "-1 1"),  # CLONE_NEWUSER
    ],
    ids=["vsock", "keyctl", "user-namespace"],
)
def test_the_filter_is_in_place_before_a_started_sandbox_runs_its_job(
    sandbox: Sandbox, code: str, expected: str
) -> None:
    """A vsock socket, the keyring and a new user namespace are refused in a started sandbox."""

    async def go() -> SandboxResult:
        await warmed(sandbox)
        return await sandbox.run({}, ["-c", code])

    result = asyncio.run(go())
    assert result.prestarted
    assert expected in result.stdout + result.stderr


def test_the_wall_clock_limit_kills_a_started_sandbox(sandbox: Sandbox) -> None:
    """A job that sleeps past the limit ends at it, its whole tree killed."""
    quick = Sandbox(Limits(wall_s=1), mode="bwrap", uids=sandbox.uids)
    code = "import os, time\nif os.fork() == 0:\n    time.sleep(60)\ntime.sleep(60)\n"

    async def go() -> SandboxResult:
        await warmed(quick)
        return await quick.run({}, ["-c", code])

    start = time.monotonic()
    result = asyncio.run(go())
    quick.close()
    assert result.prestarted
    assert result.timed_out
    assert time.monotonic() - start < 10
    if IS_ROOT:
        assert processes_of(set(UIDS)) == 0


def test_a_started_sandbox_that_died_unused_is_replaced_by_a_run_on_demand(
    sandbox: Sandbox,
) -> None:
    """The job still runs, and right, when the started sandbox it was given is gone."""

    async def go() -> SandboxResult:
        await warmed(sandbox)
        for warm in list(sandbox._warm._ready):  # what the test cannot reach otherwise
            warm.process.kill()
            warm.process.wait()
        return await sandbox.run({}, ["-c", "print(6 * 7)"])

    result = asyncio.run(go())
    assert (result.returncode, result.stdout.strip(), result.prestarted) == (0, "42", False)


def test_a_started_sandbox_lost_while_taking_its_job_hands_it_to_a_run_on_demand(
    sandbox: Sandbox,
) -> None:
    """A started sandbox whose socket breaks as the job is handed over: the job runs anyway."""

    async def go() -> SandboxResult:
        await warmed(sandbox)
        for warm in list(sandbox._warm._ready):  # alive, but its socket leads nowhere
            warm.control.close()
            warm.control, gone = socket.socketpair()
            gone.close()
        return await sandbox.run({}, ["-c", "print(6 * 7)"])

    result = asyncio.run(go())
    assert (result.returncode, result.stdout.strip(), result.prestarted) == (0, "42", False)


def test_a_job_bringing_another_wire_runs_on_demand(sandbox: Sandbox) -> None:
    """The wire a started sandbox imported ahead serves only jobs that bring the same text."""

    async def go() -> SandboxResult:
        await warmed(sandbox)
        files = {WIRE_FILE: "VALUE = 'theirs'\n"}
        code = "import sys, os; sys.path.insert(0, os.getcwd()); import _cascade_wire as w\n"
        return await sandbox.run(files, ["-c", code + "print(w.VALUE)"])

    result = asyncio.run(go())
    assert (result.stdout.strip(), result.prestarted) == ("theirs", False)


@pytest.mark.skipif(not IS_ROOT, reason="uids are only held as root")
def test_started_sandboxes_left_unused_give_their_uids_back(tmp_path: Path) -> None:
    """A started sandbox unused for idle_s ends, its uid free again for anyone on the host."""
    uids = UidPool(range(UIDS.start, UIDS.start + 2), folder=tmp_path / "locks")
    pool = WarmPool(2, idle_s=0.5)
    pool.fill(Launcher(sys.executable, Limits()), uids)
    assert uids.try_take(1) is None  # both held by the started two
    time.sleep(2)
    lease = uids.try_take(2)
    assert lease is not None, "an idle started sandbox kept its uid"
    lease.release()
    assert processes_of(set(UIDS)) == 0


def test_close_ends_every_started_sandbox_and_its_folder(tmp_path: Path) -> None:
    """After close(), no started sandbox runs and none of their folders is left."""
    pool = WarmPool(2)
    pool.fill(Launcher(sys.executable, Limits()), UidPool(UIDS) if IS_ROOT else None)
    started = list(pool._ready)  # what close() must end
    assert len(started) == 2
    pool.close()
    assert all(warm.process.poll() is not None for warm in started)
    assert not any(warm.scratch.exists() for warm in started)


def test_a_cancelled_started_run_leaves_no_process(sandbox: Sandbox) -> None:
    """Stopping a run while its started sandbox works kills the sandbox there and then."""

    async def go() -> None:
        await warmed(sandbox)
        run = sandbox.run({}, ["-c", "import time; time.sleep(60)"])
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(run, 1)

    asyncio.run(go())
    sandbox.close()
    if IS_ROOT:
        assert processes_of(set(UIDS)) == 0


def test_a_sandbox_started_by_another_thread_is_not_used_here(sandbox: Sandbox) -> None:
    """It dies with the thread that started it, so a run on another thread starts its own."""
    started, release = threading.Event(), threading.Event()

    def other() -> None:
        asyncio.run(warmed(sandbox))  # this thread's check, and its started sandboxes
        started.set()
        release.wait(30)

    thread = threading.Thread(target=other)
    thread.start()
    try:
        assert started.wait(30)
        result = asyncio.run(sandbox.run({}, ["-c", "print(6 * 7)"]))
    finally:
        release.set()
        thread.join()
    assert (result.stdout.strip(), result.prestarted) == ("42", False)


@pytest.mark.timeout(60)
def test_a_started_sandbox_that_never_takes_its_job_is_given_up_at_the_wall_clock() -> None:
    """Alive but deaf: the job waits no longer than its wall-clock limit, then runs on demand."""
    sandbox = Sandbox(Limits(wall_s=1), mode="bwrap", uids=UidPool(UIDS))
    kept = []

    async def go() -> SandboxResult:
        await warmed(sandbox)
        for warm in list(sandbox._warm._ready):  # alive, and its socket leads to no reader
            warm.control.close()
            warm.control, deaf = socket.socketpair()
            kept.append(deaf)
        return await sandbox.run({}, ["-c", "print(6 * 7)"])

    start = time.monotonic()
    try:
        result = asyncio.run(go())
    finally:
        sandbox.close()
        for end in kept:
            end.close()
    assert (result.stdout.strip(), result.prestarted) == ("42", False)
    assert time.monotonic() - start < 20


def test_a_sandbox_that_cannot_be_started_ahead_leaves_the_run_alone(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When starting ahead fails (a full disk, say), runs start on demand, and nothing is raised."""

    def cannot(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("cascade.validators.warm.start", cannot)
    faults: list[object] = []

    async def go() -> list[SandboxResult]:
        asyncio.get_running_loop().set_exception_handler(lambda _, context: faults.append(context))
        found = [await sandbox.run({}, ["-c", "print(6 * 7)"]) for _ in range(2)]
        await asyncio.sleep(0.1)  # the refills after the runs
        return found

    found = asyncio.run(go())
    assert [(r.stdout.strip(), r.prestarted) for r in found] == [("42", False)] * 2
    assert faults == []
