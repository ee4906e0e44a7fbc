"""The uids sandboxes run as when cascade runs as root: one per running sandbox, host-wide.

Each uid is held with an ``flock`` on a lock file of its own, in a folder that every cascade
process on the host shares, so that no two sandboxes anywhere on the host run as one uid (and
``RLIMIT_NPROC`` counts one sandbox's processes alone). The pool is a semaphore: when every uid
is taken, here or by another process, :meth:`UidPool.take` waits until enough are given back,
however long that is, instead of failing. A lock is the kernel's, so a process that dies gives
its uids back at once.

A run that needs several sandboxes at a time (the code's and the tests', joined by a socket)
takes its uids in one :meth:`UidPool.take`: all of them or none, so that runs that each hold
half of what they need can never wait for each other forever. :meth:`UidPool.reserve` does so
for the runs inside it, which then take their uid with :meth:`UidPool.take_one`. Two runs joined
by a unix socket pair, outside any reservation, are paired by the kernel's word on which socket
is whose peer (:func:`partners`): the first of them takes two uids at once and keeps one for
the other.

>>> UidPool(range(64100, 64104))
UidPool(range(64100, 64104))
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import random
import socket
import stat
import struct
import tempfile
import threading
from collections.abc import AsyncIterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cascade.errors import ConfigError

__all__ = ["UID_POOL", "Lease", "UidPool"]

UID_POOL = range(64100, 64164)
"""The uids sandboxes run as by default, one per sandbox running at a time on the host."""

_FIRST_WAIT_S, _LONGEST_WAIT_S = 0.005, 0.1
_SOCK_DIAG, _BY_FAMILY, _REQUEST, _ERROR = 4, 20, 1, 2  # netlink protocol, types and flags
_SHOW_PEER, _PEER, _ANY = 4, 2, 0xFFFFFFFF  # UDIAG_SHOW_PEER, UNIX_DIAG_PEER; all states, no cookie


class _Owner(Protocol):
    def give_back(self, uids: tuple[int, ...]) -> None: ...


class Lease:
    """Uids taken from a pool, held until :meth:`release` (which may be called again)."""

    def __init__(self, owner: _Owner, uids: tuple[int, ...]) -> None:
        self.uids = uids
        self._owner = owner

    def __repr__(self) -> str:
        return f"Lease({list(self.uids)})"

    def release(self) -> None:
        """Give the uids back to the pool."""
        uids, self.uids = self.uids, ()
        self._owner.give_back(uids)


@dataclass(slots=True)
class _Reserved:
    """Uids :meth:`UidPool.reserve` holds for the runs inside it, and those of them free.

    Once the reservation ends, a run still holding one of its uids gives it to the pool.
    """

    pool: UidPool
    free: list[int] = field(default_factory=list)
    ended: bool = False

    def give_back(self, uids: tuple[int, ...]) -> None:
        if self.ended:
            self.pool.give_back(uids)
        else:
            self.free.extend(uids)


_RESERVED: ContextVar[_Reserved | None] = ContextVar("cascade_uids_reserved", default=None)


@dataclass(slots=True)
class _FirstOfPair:
    """The first of two partners: its spare uid, if the partner never took it, goes back too."""

    pool: UidPool
    pair: frozenset[int]

    def give_back(self, uids: tuple[int, ...]) -> None:
        self.pool.give_back((*uids, *self.pool.unclaimed(self.pair)))


class UidPool:
    """A host-wide pool of sandbox uids; :meth:`take` waits for free ones.

    ``folder`` holds the lock files (by default one in the system's temporary directory, the
    same for every cascade process). Uids that ``/etc/passwd`` names are never used.
    """

    def __init__(self, uids: range = UID_POOL, *, folder: Path | None = None) -> None:
        self._held: dict[int, int] = {}  # uid: the descriptor of its lock
        named = _host_uids()
        self.uids = uids
        self._usable = [uid for uid in uids if uid not in named]
        if not self._usable:
            raise ConfigError(f"no sandbox uid is free to use in {uids!r}")
        self._folder = folder or Path(tempfile.gettempdir()) / "cascade-sandbox-uids"
        self._guard = threading.RLock()  # callers may share a pool across threads
        self._spares: dict[frozenset[int], int] = {}  # a uid kept for a partner, by pair
        self._pid = os.getpid()

    def __repr__(self) -> str:
        return f"UidPool({self.uids!r})"

    @property
    def size(self) -> int:
        """How many sandboxes can hold a uid of the pool at once."""
        return len(self._usable)

    async def take(self, count: int = 1) -> Lease:
        """Wait until ``count`` uids are free, then hold them all (never only some)."""
        if not 0 < count <= self.size:
            raise ConfigError(f"cannot take {count} uids from a pool of {self.size}")
        wait = _FIRST_WAIT_S
        while (uids := self._try_take(count)) is None:
            # Lock files wake nobody: poll, with jitter so that waiters do not move in step.
            await asyncio.sleep(wait * random.uniform(0.5, 1.5))  # noqa: S311  # not a secret
            wait = min(wait * 1.5, _LONGEST_WAIT_S)
        return Lease(self, uids)

    def try_take(self, count: int = 1) -> Lease | None:
        """``count`` uids if they are free now, else ``None``: for work that must never wait."""
        uids = self._try_take(count)
        return None if uids is None else Lease(self, uids)

    @contextlib.asynccontextmanager
    async def reserve(self, count: int) -> AsyncIterator[None]:
        """Take ``count`` uids at once, for :meth:`take_one` inside (and in tasks started there)."""
        reserved = _Reserved(self, list((await self.take(count)).uids))
        token = _RESERVED.set(reserved)
        try:
            yield
        finally:
            _RESERVED.reset(token)
            reserved.ended = True
            self.give_back(tuple(reserved.free))

    async def take_one(self, pair: frozenset[int] | None = None) -> Lease:
        """One uid: a free one of the reservation in force here, if any, else the pool's.

        ``pair`` names the run's partner (see :func:`partners`): the first of the two takes two
        uids at once and keeps one, which the second takes.
        """
        reserved = _RESERVED.get()
        if reserved is not None and reserved.pool is self and reserved.free:
            return Lease(reserved, (reserved.free.pop(),))
        if pair is None:
            return await self.take()
        wait = _FIRST_WAIT_S
        while (lease := self._try_pair(pair)) is None:
            await asyncio.sleep(wait * random.uniform(0.5, 1.5))  # noqa: S311  # not a secret
            wait = min(wait * 1.5, _LONGEST_WAIT_S)
        return lease

    def unclaimed(self, pair: frozenset[int]) -> tuple[int, ...]:
        """The uid kept for ``pair``'s second run, which it has not taken (and now cannot)."""
        with self._guard:
            spare = self._spares.pop(pair, None)
        return () if spare is None else (spare,)

    def _try_pair(self, pair: frozenset[int]) -> Lease | None:
        with self._guard:  # the partner's spare is looked for, and kept, under one lock
            if (spare := self._spares.pop(pair, None)) is not None:
                return Lease(self, (spare,))
            if (uids := self._try_take(2)) is None:
                return None
            self._spares[pair] = uids[1]
            return Lease(_FirstOfPair(self, pair), uids[:1])

    def give_back(self, uids: tuple[int, ...]) -> None:
        """Unlock ``uids``, taken by :meth:`take`."""
        with self._guard:
            for uid in uids:
                if (fd := self._mine().pop(uid, None)) is not None:
                    _unlock(fd)

    def _mine(self) -> dict[int, int]:
        """The locks this process holds: none, in a forked child, whatever its parent held.

        A child shares its parent's open files, and so its locks: were it to unlock one, the
        parent's sandbox would lose its uid while it runs.
        """
        if self._pid != os.getpid():
            self._held, self._pid = {}, os.getpid()
        return self._held

    def _try_take(self, count: int) -> tuple[int, ...] | None:
        with self._guard:
            if len(self._mine()) + count > self.size:
                return None  # this process holds too many itself: no need to ask the host
            _own_folder(self._folder)
            taken: dict[int, int] = {}
            for uid in self._usable:
                if uid not in self._held and (fd := self._lock(uid)) is not None:
                    taken[uid] = fd
                    if len(taken) == count:
                        self._held.update(taken)
                        return tuple(taken)
            for fd in taken.values():  # all or none
                _unlock(fd)
            return None

    def _lock(self, uid: int) -> int | None:
        """A descriptor holding ``uid``'s lock, or ``None`` if anyone holds it (we included).

        A descriptor of its own each time: ``flock`` locks belong to an open file, so one opened
        again conflicts with every other holder, in this process as in any other.
        """
        path = self._folder / f"{uid}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    def __del__(self) -> None:
        if getattr(self, "_pid", None) == os.getpid():  # a forked child's are its parent's
            for fd in self._held.values():
                _unlock(fd)


def partners(fd: int) -> frozenset[int] | None:
    """The inodes of the unix socket ``fd`` and of its peer, as the kernel says, or ``None``.

    Both ends of one socket pair give the same answer: two runs handed them are partners. Asked
    with sock_diag (``NETLINK_SOCK_DIAG``, ``UDIAG_SHOW_PEER``), on the host's side only.
    """
    try:
        inode = os.fstat(fd).st_ino
        with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _SOCK_DIAG) as diag:
            ask = struct.pack("=BBxxIIIII", socket.AF_UNIX, 0, _ANY, inode, _SHOW_PEER, _ANY, _ANY)
            diag.send(struct.pack("=IHHII", 16 + len(ask), _BY_FAMILY, _REQUEST, 1, 0) + ask)
            answer = diag.recv(4096)
    except OSError:
        return None
    length, kind = struct.unpack_from("=IH", answer)
    at = 32  # the netlink header, then struct unix_diag_msg
    while kind != _ERROR and at + 4 <= min(length, len(answer)):  # an error: not a unix socket
        size, attribute = struct.unpack_from("=HH", answer, at)
        if attribute == _PEER and size >= 8:
            return frozenset({inode, struct.unpack_from("=I", answer, at + 4)[0]})
        at += max(4, (size + 3) & ~3)
    return None


def _own_folder(folder: Path) -> None:
    """Make ``folder``, or check it is ours alone: whoever can write there can hold every uid."""
    folder.mkdir(mode=0o700, exist_ok=True)
    found = os.lstat(folder)
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.geteuid() or found.st_mode & 0o022:
        raise ConfigError(
            f"the sandbox uid pool's folder {folder} must be a directory of ours that no one "
            "else can write to"
        )


def _unlock(fd: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _host_uids() -> set[int]:
    with contextlib.suppress(OSError):
        lines = Path("/etc/passwd").read_text(encoding="utf-8", errors="replace").splitlines()
        return {int(parts[2]) for parts in (line.split(":") for line in lines)
                if len(parts) > 2 and parts[2].isdigit()}  # fmt: skip
    return set()
