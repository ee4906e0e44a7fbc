"""Behaviour tests of the uid pool that kill its surviving mutants (issue 34).

Each test opens a small pool of its own (its lock files in the test's folder, its uids apart
from the host's pool), as another cascade process would, and checks what a run sees: how many
uids a take holds, what a reservation hands out, what is refused and how it is said.
"""

from __future__ import annotations

import asyncio
import fcntl
import gc
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest

from cascade.errors import ConfigError
from cascade.validators.uid_pool import UidPool
from tests.test_mutants_confine import python_child

PAIR = range(64450, 64452)
"""A pool of two, apart from the host's pool and from the other tests' pools."""


@pytest.fixture
def pool(tmp_path: Path) -> UidPool:
    """The pool of two, its lock files in this test's folder."""
    return UidPool(PAIR, folder=tmp_path / "locks")


def test_a_pool_says_which_uids_it_holds() -> None:
    """Its repr names its range, as the module's example shows."""
    assert repr(UidPool(PAIR)) == "UidPool(range(64450, 64452))"


def test_a_pool_of_uids_the_host_names_is_refused_saying_so() -> None:
    """Uids that /etc/passwd names (root's, here) are never used: a pool of them is refused."""
    with pytest.raises(ConfigError) as refused:
        UidPool(range(1))
    assert str(refused.value) == "no sandbox uid is free to use in range(0, 1)"


@pytest.mark.parametrize("count", [0, 3])
def test_a_take_of_no_uid_or_of_more_than_the_pool_is_refused(pool: UidPool, count: int) -> None:
    """Nothing to wait for, or a wait that could never end: a configuration error at once."""
    with pytest.raises(ConfigError) as refused:
        asyncio.run(asyncio.wait_for(pool.take(count), 5))
    assert str(refused.value) == f"cannot take {count} uids from a pool of 2"


def test_a_take_and_a_try_take_hold_one_uid_by_default(pool: UidPool) -> None:
    """One uid per run: the other stays free for the next run, here or in another process."""
    lease = asyncio.run(pool.take())
    assert len(lease.uids) == 1
    other = pool.try_take()
    assert other is not None
    assert len(other.uids) == 1
    assert other.uids != lease.uids


def test_a_try_take_with_every_uid_held_is_none(pool: UidPool) -> None:
    """A take that must not wait gets nothing, rather than a lease of no uid."""
    held = pool.try_take(2)
    assert held is not None
    assert pool.try_take() is None
    held.release()
    assert pool.try_take() is not None


def test_take_one_outside_a_reservation_and_without_a_partner_holds_one_uid(
    pool: UidPool,
) -> None:
    """A lone run takes one uid and keeps none aside for a partner."""
    lease = asyncio.run(asyncio.wait_for(pool.take_one(), 5))
    assert len(lease.uids) == 1
    assert pool.try_take() is not None


def test_take_one_inside_a_reservation_takes_a_reserved_uid_without_waiting(
    pool: UidPool,
) -> None:
    """With every uid reserved, the runs inside get them; a wait for the pool would never end."""

    async def inside() -> list[tuple[int, ...]]:
        async with pool.reserve(2):
            first = await asyncio.wait_for(pool.take_one(), 5)
            second = await asyncio.wait_for(pool.take_one(), 5)
            return [first.uids, second.uids]

    assert sorted(asyncio.run(inside())) == [(64450,), (64451,)]


def test_a_reservation_of_another_pool_is_not_drawn_on(tmp_path: Path) -> None:
    """A run of one pool, inside another pool's reservation, takes from its own pool."""
    mine = UidPool(PAIR, folder=tmp_path / "mine")
    theirs = UidPool(range(64452, 64454), folder=tmp_path / "theirs")

    async def inside() -> tuple[int, ...]:
        async with theirs.reserve(2):
            return (await asyncio.wait_for(mine.take_one(), 5)).uids

    assert asyncio.run(inside())[0] in PAIR


def test_a_uid_still_held_when_its_reservation_ends_goes_back_to_the_pool(
    pool: UidPool,
) -> None:
    """A run that outlives the reservation gives its uid to the pool when it ends."""

    async def outlive() -> None:
        async with pool.reserve(2):
            lease = await pool.take_one()
        assert pool.try_take(2) is None  # the run still holds its uid
        lease.release()
        again = pool.try_take(2)
        assert again is not None
        again.release()

    asyncio.run(outlive())


def test_every_cascade_process_shares_one_lock_folder() -> None:
    """By default a pool's locks live in the system's temporary folder, under one fixed name."""
    pool = UidPool(PAIR)
    lease = pool.try_take()
    if lease is None:
        pytest.skip("another run holds this pool's uids")
    lock = Path(tempfile.gettempdir()) / "cascade-sandbox-uids" / f"{lease.uids[0]}.lock"
    try:
        with lock.open("rb") as other, pytest.raises(BlockingIOError):  # held: by this lease
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        lease.release()


def test_the_first_of_a_pair_keeps_one_uid_for_its_partner_and_gives_back_only_its_own(
    pool: UidPool,
) -> None:
    """Partners hold a uid each; the first to end leaves its partner's uid held."""
    pair = frozenset({1, 2})  # what partners() says of a socket pair: the inodes of both ends

    async def both() -> None:
        first = await asyncio.wait_for(pool.take_one(pair), 5)
        assert len(first.uids) == 1
        assert pool.try_take() is None  # the other is kept for the partner
        second = await asyncio.wait_for(pool.take_one(pair), 5)
        assert {*first.uids, *second.uids} == set(PAIR)
        first.release()
        assert pool.try_take(2) is None  # the partner still runs as its uid
        second.release()
        assert pool.try_take(2) is not None

    asyncio.run(both())


def test_a_forked_child_takes_uids_of_its_own(pool: UidPool) -> None:
    """A child holds none of its parent's locks, and takes a free uid the parent does not hold."""
    held = pool.try_take()
    assert held is not None
    child = os.fork()
    if child == 0:  # the child: take a uid, say whether it got one, and go
        try:
            own = pool.try_take()
            code = 0 if own is not None and own.uids != held.uids else 1
        except BaseException:  # noqa: BLE001  # any failure is the answer "no"
            code = 2
        os._exit(code)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_pools_lock_files_are_its_own_and_stay_out_of_programs_it_starts(
    pool: UidPool, tmp_path: Path
) -> None:
    """Lock files are private (0600), and a program started without closing files holds none."""
    lease = pool.try_take()
    assert lease is not None
    lock = tmp_path / "locks" / f"{lease.uids[0]}.lock"
    assert lock.stat().st_mode & 0o777 == 0o600
    listing = tmp_path / "fds"
    os.system(f"ls -l /proc/$$/fd > {listing}")  # noqa: S605  # fork and exec, files left open
    assert str(lock) not in listing.read_text()


def test_a_pool_dropped_while_it_holds_uids_gives_them_back(tmp_path: Path) -> None:
    """Collected (or at exit), a pool unlocks what it held: another process can take them."""
    dropped = UidPool(PAIR, folder=tmp_path / "locks")
    assert dropped.try_take(2) is not None
    del dropped
    gc.collect()
    assert UidPool(PAIR, folder=tmp_path / "locks").try_take(2) is not None


def test_a_pool_refused_at_its_making_is_collected_quietly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pool that was never made has nothing to unlock, and its collection raises nothing."""
    unraisable: list[object] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    with pytest.raises(ConfigError):
        UidPool(range(1))
    gc.collect()
    assert unraisable == []


_PASSWD = b"""root:x:0:0:root:/root:/bin/sh
caf\xe9:x:64460:64461:a name that is not UTF-8:/:/bin/sh

half:x
three:x:64461
odd:x:64462:group:a group that is not a number:/:/bin/sh
"""
"""A host's /etc/passwd with the lines a real one may hold: not UTF-8, empty, cut short."""
_POOL_OF = """
import sys
sys.argv[1:] and __import__("ctypes").CDLL(None).mount(
    sys.argv[1].encode(), b"/etc/passwd", None, 4096, None
)
from cascade.validators.uid_pool import UidPool
print(UidPool(range(64460, 64464))._usable)
"""
"""Run in a child: the uids a pool would use, with argv[1] bound over /etc/passwd."""


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root")
def test_every_uid_the_hosts_passwd_names_is_left_out_however_odd_its_lines(
    tmp_path: Path,
) -> None:
    """Named uids (third field) are never used, whatever the rest of a line or the file holds."""
    passwd = tmp_path / "passwd"
    passwd.write_bytes(_PASSWD)
    usable = python_child(["unshare", "--mount", "--"], _POOL_OF, str(passwd))
    assert usable.split() == ["[64463]"]


def test_a_pools_folder_is_made_private_and_one_others_may_only_enter_is_accepted(
    tmp_path: Path,
) -> None:
    """The pool makes its lock folder 0700; one of ours others may enter but not write will do."""
    made = UidPool(PAIR, folder=tmp_path / "made")
    assert made.try_take() is not None
    assert (tmp_path / "made").stat().st_mode & 0o777 == 0o700
    enterable = tmp_path / "enterable"
    enterable.mkdir(mode=0o711)
    enterable.chmod(0o711)
    assert UidPool(PAIR, folder=enterable).try_take() is not None


@pytest.mark.parametrize("paired", [False, True])
def test_a_take_that_waits_polls_without_spinning(pool: UidPool, *, paired: bool) -> None:
    """Lock files wake nobody, so a waiting take polls: with a growing pause, not in a busy loop."""
    held = pool.try_take(2)
    assert held is not None

    async def wait_half_a_second() -> None:
        asyncio.get_running_loop().call_later(0.5, held.release)
        take = pool.take_one(frozenset({1, 2})) if paired else pool.take()
        (await asyncio.wait_for(take, 5)).release()

    before = time.process_time()
    asyncio.run(wait_half_a_second())
    assert time.process_time() - before < 0.25
