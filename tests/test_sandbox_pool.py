"""The uid pool is a host-wide semaphore.

A sandbox waits for a uid and never faults for want of one; a take of several gets all or none;
and a run stopped while it waits, or while it runs, leaves no scratch folder and no uid held.
The tests of pairing and of cancelled runs start their sandboxes on demand (``warm=0``);
``test_sandbox_warm.py`` covers sandboxes started ahead of use.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from cascade.errors import ConfigError
from cascade.validators.sandbox import Limits, Sandbox
from cascade.validators.uid_pool import UidPool, partners

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the uid pool is used as root only")
MODES = ["bwrap", "unshare"]
REPO = Path(__file__).resolve().parents[1]
SMALL = range(64440, 64443)
"""A pool of three, apart from the host's pool, which other runs use."""


@pytest.fixture
def locks(tmp_path: Path) -> Path:
    """The lock folder of this test's pool: no other run of these tests takes its uids."""
    return tmp_path / "locks"


def small(locks: Path) -> UidPool:
    """The pool of three, as another process would open it: its lock files are its own."""
    return UidPool(SMALL, folder=locks)


def holding(pool: UidPool, count: int) -> asyncio.Future[bool]:
    """Whether ``pool.take(count)`` returns within half a second (the lease is then released)."""

    async def take() -> bool:
        try:
            lease = await asyncio.wait_for(pool.take(count), 0.5)
        except TimeoutError:
            return False
        lease.release()
        return True

    return asyncio.ensure_future(take())


def test_a_take_waits_for_a_uid_instead_of_failing(locks: Path) -> None:
    """With every uid held by another process's lock, take waits, and returns once one is free."""

    async def go() -> tuple[bool, bool]:
        other = await small(locks).take(3)  # another open file: the lock of another process
        waited = await holding(small(locks), 1)
        other.release()
        return waited, await holding(small(locks), 1)

    assert asyncio.run(go()) == (False, True)


def test_a_take_of_several_is_all_or_none(locks: Path) -> None:
    """Two wanted and one free: nothing is taken, so the free uid stays free for others."""

    async def go() -> tuple[bool, bool]:
        other = await small(locks).take(2)
        pair = asyncio.ensure_future(small(locks).take(2))
        await asyncio.sleep(0.2)
        one = await holding(small(locks), 1)
        waiting = not pair.done()
        other.release()
        (await pair).release()
        return waiting, one

    assert asyncio.run(go()) == (True, True)


PAIR = {
    "ping.py": "import socket, sys\nend = socket.socket(fileno=int(sys.argv[1]))\n"
    "end.sendall(b'ping')\nprint(end.recv(4).decode())\n",
    "pong.py": "import socket, sys\nend = socket.socket(fileno=int(sys.argv[1]))\n"
    "assert end.recv(4) == b'ping'\nend.sendall(b'pong')\nprint('sent')\n",
}
"""Two sandboxes that finish only together: each waits for the other on a socket."""


def _three_pairs(sandbox: Sandbox, *, reserve: bool) -> list[tuple[str, str]]:
    """Run three socket-joined pairs at once; each pair's two answers."""

    async def pair() -> tuple[str, str]:
        left, right = socket.socketpair()
        async with sandbox.reserve(2) if reserve else contextlib.nullcontext():
            ping = asyncio.ensure_future(
                sandbox.run(PAIR, ["ping.py", "{peer}"], peer=left.fileno(), spawned=left.close)
            )
            await asyncio.sleep(0.1)  # the first of each pair holds its uid before the others
            pong = await sandbox.run(
                PAIR, ["pong.py", "{peer}"], peer=right.fileno(), spawned=right.close
            )
            return (await ping).stdout.strip(), pong.stdout.strip()

    async def go() -> list[tuple[str, str]]:
        return await asyncio.gather(*(pair() for _ in range(3)))

    return asyncio.run(go())


@pytest.mark.parametrize("mode", MODES)
def test_pairs_that_reserve_their_uids_never_wait_for_each_other(mode: str, locks: Path) -> None:
    """Three pairs, in a pool of three: each pair takes two uids at once, so all finish."""
    sandbox = Sandbox(Limits(wall_s=8), mode=mode, uids=small(locks))
    assert _three_pairs(sandbox, reserve=True) == [("pong", "sent")] * 3


@pytest.mark.parametrize("mode", MODES)
def test_pairs_joined_by_a_socket_pair_are_paired_without_a_reservation(
    mode: str, locks: Path
) -> None:
    """Three pairs in a pool of three, none reserving: the socket pair makes them partners."""
    sandbox = Sandbox(Limits(wall_s=8), mode=mode, uids=small(locks), warm=0)
    assert _three_pairs(sandbox, reserve=False) == [("pong", "sent")] * 3


def test_partners_are_the_two_ends_of_one_socket_pair() -> None:
    """Both ends of a pair name the pair; another pair, a file or a lone socket do not."""
    left, right = socket.socketpair()
    other, _ = socket.socketpair()
    with left, right, other, _, socket.socket(socket.AF_UNIX) as lone, open(__file__) as text:
        assert partners(left.fileno()) == partners(right.fileno()) is not None
        assert partners(other.fileno()) not in (None, partners(left.fileno()))
        assert partners(lone.fileno()) is None
        assert partners(text.fileno()) is None


@pytest.mark.parametrize("mode", MODES)
def test_a_run_whose_partner_never_comes_gives_back_both_uids(mode: str, locks: Path) -> None:
    """The uid kept for a partner that is not a sandbox goes back when the run ends."""
    pool = small(locks)
    sandbox = Sandbox(Limits(wall_s=8), mode=mode, uids=pool, warm=0)

    async def go() -> tuple[str, bool]:
        left, right = socket.socketpair()
        with right:
            right.sendall(b"ping")
            run = sandbox.run(PAIR, ["pong.py", "{peer}"], peer=left.fileno(), spawned=left.close)
            result = await run
        return result.stdout.strip(), await holding(pool, 3)

    assert asyncio.run(go()) == ("sent", True)


@pytest.fixture
def scratch_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Where this test's sandboxes make their scratch folders, to count what is left."""
    home = tmp_path / "scratch"
    home.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(home))
    return home


@pytest.mark.parametrize("mode", MODES)
def test_a_run_cancelled_while_waiting_for_a_uid_leaves_nothing(
    mode: str, scratch_home: Path, locks: Path
) -> None:
    """A run stopped before it has a uid leaves no scratch folder, and takes no uid."""
    pool = small(locks)
    sandbox = Sandbox(Limits(wall_s=5), mode=mode, uids=pool, warm=0)

    async def go() -> bool:
        await sandbox.run({}, ["-c", "pass"])  # the first run's check, out of the way
        other = await asyncio.wait_for(small(locks).take(3), 10)  # all three came back
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(sandbox.run({}, ["-c", "pass"]), 0.5)
        other.release()
        return await holding(pool, 3)

    assert asyncio.run(go()), "the cancelled run kept a uid"
    assert list(scratch_home.iterdir()) == []


@pytest.mark.parametrize("mode", MODES)
def test_a_run_cancelled_while_running_leaves_nothing(
    mode: str, scratch_home: Path, locks: Path
) -> None:
    """A run stopped while its code runs leaves no scratch folder, and gives its uid back."""
    pool = small(locks)
    sandbox = Sandbox(Limits(wall_s=30), mode=mode, uids=pool, warm=0)

    async def go() -> bool:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(sandbox.run({}, ["-c", "import time; time.sleep(30)"]), 3)
        return await holding(pool, 3)

    assert asyncio.run(go()), "the cancelled run kept a uid"
    assert list(scratch_home.iterdir()) == []


def test_a_run_that_cannot_take_a_uid_leaves_nothing(scratch_home: Path, tmp_path: Path) -> None:
    """When the pool's lock files cannot be made, the error is raised and no folder is left."""
    (tmp_path / "not-a-folder").write_text("")
    pool = UidPool(SMALL, folder=tmp_path / "not-a-folder" / "locks")
    sandbox = Sandbox(Limits(wall_s=5), mode="bwrap", uids=pool)
    with pytest.raises(NotADirectoryError):
        asyncio.run(sandbox.run({}, ["-c", "pass"]))
    assert list(scratch_home.iterdir()) == []


WORKER = """
import asyncio, json, sys
from pathlib import Path
from cascade.validators import passes_tests, run_validator
from cascade.errors import ConfigError
from cascade.validators.sandbox import Limits, Sandbox
from cascade.validators.uid_pool import UidPool, partners
from cascade.testing import attempt_with
mode, first, size, locks = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
pool = UidPool(range(first, first + size), folder=locks)
sandbox = Sandbox(Limits(wall_s=20), mode=mode, uids=pool)
validator = passes_tests(json.loads(sys.argv[6]), sandbox=sandbox)
answers = json.loads(sys.argv[5])
async def main():
    await run_validator(validator, attempt_with(answers[0]))  # the first run's check, alone
    return await asyncio.gather(*(run_validator(validator, attempt_with(a)) for a in answers))
print(json.dumps([[v.passed, v.fault, v.reason] for v in asyncio.run(main())]))
"""
"""One cascade process: verdicts on ``answers``, all asked for at once."""

SLOW = "```python\nimport time\ntime.sleep(0.5)\ndef add(a, b):\n    return a {} b\n```"
OPERATORS = ("+", "-", "+", "*")
ANSWERS = [SLOW.format(op) for op in OPERATORS]
"""Right and wrong answers, each holding its sandbox for half a second."""
FORMS = {
    "snippets": ["assert add(2, 2) == 4", "assert add(1, 5) == 6"],
    "a pytest file": "def test_add():\n    assert add(2, 2) == 4\n    assert add(1, 5) == 6\n",
}
"""Tests in each form: a pytest file takes two sandboxes at once, the code's and the tests'."""


def verdicts_of(*workers: subprocess.Popen[str]) -> list[list[list[object]]]:
    """Each worker's verdicts, once it has finished."""
    found = []
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err[-2000:]
        found.append(json.loads(out))
    return found


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("form", FORMS)
def test_two_processes_asking_for_more_uids_than_the_pool_holds_get_their_verdicts(
    mode: str, form: str, locks: Path
) -> None:
    """Two processes, four verdicts each at once, three uids: the verdicts of each alone."""

    def start(answers: list[str]) -> subprocess.Popen[str]:
        argv = [sys.executable, "-c", WORKER, mode, str(SMALL.start), str(len(SMALL)), str(locks)]
        argv += [json.dumps(answers), json.dumps(FORMS[form])]
        return subprocess.Popen(  # noqa: S603  # our own Python and script
            argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    alone = verdicts_of(start(ANSWERS))[0] + verdicts_of(start(ANSWERS[::-1]))[0]
    first, second = verdicts_of(start(ANSWERS), start(ANSWERS[::-1]))
    assert not any(fault for _, fault, _ in alone)
    assert [passed for passed, _, _ in alone] == [op == "+" for op in OPERATORS + OPERATORS[::-1]]
    assert first + second == alone


@pytest.mark.parametrize("mode", MODES)
def test_a_sandbox_waits_its_turn_within_one_process(mode: str, locks: Path) -> None:
    """Eight runs at once in a pool of three all finish, never more than three at a time."""
    sandbox = Sandbox(Limits(wall_s=10), mode=mode, uids=small(locks))
    code = textwrap.dedent(
        """
        import os, time
        start = time.time()
        time.sleep(0.3)
        print(start, time.time(), os.getuid())
        """
    )

    async def go() -> list[str]:
        runs = [sandbox.run({"probe.py": code}, ["probe.py"]) for _ in range(8)]
        return [result.stdout for result in await asyncio.gather(*runs)]

    spans = [(float(a), float(b), int(uid)) for a, b, uid in map(str.split, asyncio.run(go()))]
    assert len(spans) == 8
    assert {uid for _, _, uid in spans} <= set(SMALL)
    for start, _, uid in spans:
        alive = [other for other in spans if other[0] <= start < other[1]]
        assert len(alive) <= len(SMALL)
        assert [other[2] for other in alive].count(uid) == 1, "two sandboxes shared a uid"


@pytest.mark.parametrize("whose", ["everyone's to write", "another user's"])
def test_a_lock_folder_others_can_write_to_is_refused(tmp_path: Path, whose: str) -> None:
    """Whoever can write to the lock folder could hold every uid: such a folder is an error."""
    folder = tmp_path / "locks"
    folder.mkdir(mode=0o700)
    if whose == "everyone's to write":
        folder.chmod(0o777)
    else:
        os.chown(folder, 65534, 65534)
    with pytest.raises(ConfigError, match="no one else can write"):
        asyncio.run(UidPool(SMALL, folder=folder).take())


def test_a_forked_child_cannot_give_back_its_parents_uid(locks: Path) -> None:
    """A child shares its parent's lock files: releasing an inherited lease must not unlock them."""
    pool = small(locks)

    async def go() -> tuple[bool, bool]:
        lease = await pool.take()
        child = os.fork()
        if child == 0:  # the child: give back what it inherited, and go
            lease.release()
            os._exit(0)
        await asyncio.to_thread(os.waitpid, child, 0)
        all_free_while_held = await holding(small(locks), 3)
        lease.release()
        return all_free_while_held, await holding(small(locks), 3)

    assert asyncio.run(go()) == (False, True)
