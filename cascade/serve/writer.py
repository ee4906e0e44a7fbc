"""Group commit: the outcomes of requests that finish together go to the store in one transaction.

A request's reply waits until its outcome is stored (its idempotency key's reply with it), so
a retry after the reply always finds it. Requests that finish in the same turn of the event
loop share one transaction: under load that is one commit for many, and alone it costs no wait.
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
        self.groups = 0
        """Transactions written, for tests and benchmarks."""

    async def write(self, outcome: Outcome, task: Task, also: Also) -> None:
        """Store ``outcome`` with ``also``; return once it is committed (raise if it failed)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)  # after the callbacks ready now: they may finish too
        self._pending.append((outcome, task, also, done))
        await asyncio.shield(done)  # a request cancelled now is still written, then cut off

    def _flush(self) -> None:
        pending, self._pending = self._pending, []

        def also(db: sqlite3.Connection) -> None:
            for _, _, write, _ in pending:
                write(db)

        try:
            self.store.record_many([(outcome, task) for outcome, task, _, _ in pending], also=also)
        except Exception as exc:  # noqa: BLE001  # handed to every request of the group
            for *_, done in pending:
                if not done.done():
                    done.set_exception(exc)
            return
        self.groups += 1
        for *_, done in pending:
            if not done.done():
                done.set_result(None)
