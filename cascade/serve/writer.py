"""Group commit: the outcomes of requests that finish together go to the store in one transaction.

A request's reply waits until its outcome is stored (its idempotency key's reply with it), so
a retry after the reply always finds it. The requests that finish while a group is being
written form the next group, one transaction each: under load that is one commit for many, and
alone it costs no wait. The writing happens in a thread, so a store that is slow to take it
(another process holding the file) holds up these replies, never the server.

A request that finishes alone (none other in flight, no group being written) is written on the
event loop instead, if the store is free that instant: the thread's hand-off costs about as
much as the commit, and with nothing else in flight nobody waits for the loop meanwhile.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable

from cascade.outcome import Outcome
from cascade.store import Store
from cascade.types import Task

__all__ = ["GroupWriter"]

Also = Callable[[sqlite3.Connection], object]
"""What else a request writes in its outcome's transaction (its client's spend, its reply)."""


class GroupWriter:
    """Write outcomes to ``store`` in groups (see the module docstring)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._pending: list[tuple[Outcome, Task, Also, asyncio.Future[None]]] = []
        self._writing: asyncio.Future[None] | None = None
        self.groups = 0
        """Transactions written, for tests and benchmarks."""

    async def write(self, outcome: Outcome, task: Task, also: Also, *, alone: bool = False) -> None:
        """Store ``outcome`` with ``also``; return once it is committed (raise if it failed).

        ``alone``: no other request is in flight, so it may be written on the loop.
        """
        free = alone and self._writing is None and not self._pending
        if free and self.store.record_now([(outcome, task)], also=also) is not None:
            self.groups += 1
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((outcome, task, also, done))
        if self._writing is None:
            # Started on the loop's next turn: the requests that finish on this one join it.
            self._writing = asyncio.ensure_future(self._drain())
        await asyncio.shield(done)  # a request cancelled now is still written, then cut off

    async def _drain(self) -> None:
        """Write groups, one transaction each, in a thread, until none is waiting."""
        try:
            while self._pending:
                group, self._pending = self._pending, []
                try:
                    await asyncio.to_thread(self._commit, group)
                except Exception as exc:  # noqa: BLE001  # handed to every request of the group
                    for *_, done in group:
                        if not done.done():
                            done.set_exception(exc)
                    continue
                self.groups += 1
                for *_, done in group:
                    if not done.done():
                        done.set_result(None)
        finally:
            self._writing = None

    def _commit(self, group: list[tuple[Outcome, Task, Also, asyncio.Future[None]]]) -> None:
        def also(db: sqlite3.Connection) -> None:
            for _, _, write, _ in group:
                write(db)

        self.store.record_many([(outcome, task) for outcome, task, _, _ in group], also=also)
