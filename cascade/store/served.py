"""What ``cascade serve`` keeps beside a run's results: replies by idempotency key, and spend.

A request that carries an ``Idempotency-Key`` *claims* it first (:meth:`ServedBook.claim`): the
first claim runs the request; a retry while it runs is told so; a retry after it finished gets
the stored reply, and nothing is called or billed again. The reply is written in the same
transaction as the task's result and steps (:meth:`ServedBook.finish`, through
:meth:`~cascade.store.Store.record_many`'s ``also``), so a crash leaves either both or neither.
A claim left ``running`` by another run of the server is taken over once that run has ended
(it records its end at shutdown), or :data:`STALE_S` after it was made (a server killed
outright records nothing): so a rolling restart never runs one request twice.

Budgets: a request *reserves* what it may cost before it starts (:meth:`ServedBook.reserve`),
and gives the reservation back for what it did cost when it ends, in that same transaction.
A key's (and the server's) spend plus what its requests in flight hold back is checked
against its budget at once, so many requests sent together cannot all slip under it.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from cascade.store.db import Store

__all__ = ["KEEP_REPLIES_S", "STALE_S", "Claim", "ServedBook"]

STALE_S = 600.0
"""After this long, a claim of a run that never said it ended is taken to be a dead server's."""
KEEP_REPLIES_S = 7 * 86_400.0
"""How long a stored reply answers a retried key (a server start forgets older ones)."""


@dataclass(frozen=True, slots=True)
class Claim:
    """What a claim on an idempotency key found.

    ``state`` is ``new`` (run the request), ``running`` (another request holds the key),
    ``done`` (``status`` and ``reply`` are the stored answer) or ``mismatch`` (the key was used
    for a different request body).
    """

    state: str
    status: int | None = None
    reply: dict[str, Any] | None = None


class ServedBook:
    """The ``served``, ``client_spend`` and ``client_reserved`` tables, for one server run."""

    def __init__(self, store: Store, run_id: str) -> None:
        self.store = store
        self.run_id = run_id

    def claim(self, client: str, key: str, digest: str, task_id: str) -> Claim:
        """Claim ``key`` for a request whose body hashes to ``digest``, to run as ``task_id``."""
        now = time.time()
        with self.store.writing() as db:
            row = db.execute(
                "SELECT served.digest, served.run_id, served.state, served.status, served.reply,"
                " served.updated_at, runs.finished_at FROM served LEFT JOIN runs"
                " ON runs.run_id = served.run_id WHERE client = ? AND idem_key = ?",
                (client, key),
            ).fetchone()
            if row is None or (row[2] == "running" and _abandoned(row, self.run_id, now)):
                db.execute(
                    "INSERT INTO served (client, idem_key, digest, run_id, task_id, state,"
                    " updated_at) VALUES (?, ?, ?, ?, ?, 'running', ?) ON CONFLICT"
                    " (client, idem_key) DO UPDATE SET digest = excluded.digest,"
                    " run_id = excluded.run_id, task_id = excluded.task_id,"
                    " state = 'running', updated_at = excluded.updated_at",
                    (client, key, digest, self.run_id, task_id, now),
                )
                return Claim("new")
        if row[0] != digest:
            return Claim("mismatch")
        if row[2] == "running":
            return Claim("running")
        return Claim("done", row[3], json.loads(row[4]))

    def release(self, client: str, key: str) -> None:
        """Give back this run's claim on ``key`` (its request was refused, or not stored)."""
        with self.store.writing() as db:
            db.execute(
                "DELETE FROM served WHERE client = ? AND idem_key = ? AND run_id = ?"
                " AND state = 'running'",
                (client, key, self.run_id),
            )

    def reserve(
        self, client: str, amount: float, key_budget: float | None, server_budget: float | None
    ) -> tuple[str, float, float] | None:
        """Hold back ``amount`` for a request of ``client``, or say whose budget is spent.

        Refused (``("key" or "server", spent, held back)``) when the spend plus what requests
        in flight of this run hold back has reached the budget; otherwise ``None``, with
        ``amount`` held back until :meth:`finish`.
        """
        with self.store.writing() as db:
            for who, budget, where, args in (
                ("key", key_budget, " WHERE client = ?", (client,)),
                ("server", server_budget, "", ()),
            ):
                if budget is None:
                    continue
                spent = db.execute(
                    f"SELECT total(spent_usd) FROM client_spend{where}",  # noqa: S608  # constant
                    args,
                ).fetchone()[0]
                held = db.execute(
                    "SELECT total(reserved_usd) FROM client_reserved"  # noqa: S608  # constant
                    f" WHERE run_id = ?{where.replace('WHERE', 'AND')}",
                    (self.run_id, *args),
                ).fetchone()[0]
                if spent + held >= budget:
                    return who, float(spent), float(held)
            if amount > 0:
                db.execute(
                    "INSERT INTO client_reserved (run_id, client, reserved_usd) VALUES (?, ?, ?)"
                    " ON CONFLICT (run_id, client) DO UPDATE"
                    " SET reserved_usd = reserved_usd + excluded.reserved_usd",
                    (self.run_id, client, amount),
                )
        return None

    def finish(
        self,
        client: str,
        key: str | None,
        cost_usd: float,
        reserved_usd: float,
        reply: tuple[int, dict[str, Any]] | None,
    ) -> Any:
        """What to write, inside the result's transaction, when a request ends.

        The client's spend grows by ``cost_usd`` and its reservation shrinks by
        ``reserved_usd``. With a ``reply`` (status and body), the claim on ``key`` is done and
        keeps it; without one (a request cut off by shutdown), the claim stays ``running``
        under this run's id, for the next run of the server to take over.
        """

        def write(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO client_spend (client, spent_usd, requests) VALUES (?, ?, 1)"
                " ON CONFLICT (client) DO UPDATE SET spent_usd = spent_usd + excluded.spent_usd,"
                " requests = requests + 1",
                (client, cost_usd),
            )
            if reserved_usd > 0:
                db.execute(
                    "UPDATE client_reserved SET reserved_usd = max(0, reserved_usd - ?)"
                    " WHERE run_id = ? AND client = ?",
                    (reserved_usd, self.run_id, client),
                )
            if key is None or reply is None:
                return
            db.execute(
                "UPDATE served SET state = 'done', status = ?, reply = ?, updated_at = ?"
                " WHERE client = ? AND idem_key = ?",
                (reply[0], json.dumps(reply[1]), time.time(), client, key),
            )

        return write

    def unreserve(self, client: str, amount: float) -> None:
        """Give back what a request held back, when its result could not be stored."""
        if amount <= 0:
            return
        with self.store.writing() as db:
            db.execute(
                "UPDATE client_reserved SET reserved_usd = max(0, reserved_usd - ?)"
                " WHERE run_id = ? AND client = ?",
                (amount, self.run_id, client),
            )

    def average_cost(self, client: str) -> float:
        """What a request of ``client`` has cost on average (every client's, before its first)."""
        with self.store.reading() as db:
            row = db.execute(
                "SELECT total(spent_usd), total(requests) FROM client_spend WHERE client = ?",
                (client,),
            ).fetchone()
            if not row[1]:
                row = db.execute(
                    "SELECT total(spent_usd), total(requests) FROM client_spend"
                ).fetchone()
        return float(row[0]) / float(row[1]) if row[1] else 0.0

    def spent(self, client: str | None = None) -> float:
        """What ``client`` has spent (every client's total when ``None``), in USD, ever."""
        with self.store.reading() as db:
            if client is None:
                row = db.execute("SELECT total(spent_usd) FROM client_spend").fetchone()
            else:
                row = db.execute(
                    "SELECT total(spent_usd) FROM client_spend WHERE client = ?", (client,)
                ).fetchone()
        return float(row[0])

    def forget_old(self, now: float | None = None) -> int:
        """Drop the stored replies older than :data:`KEEP_REPLIES_S`; how many were dropped."""
        cutoff = (time.time() if now is None else now) - KEEP_REPLIES_S
        with self.store.writing() as db:
            return db.execute(
                "DELETE FROM served WHERE state = 'done' AND updated_at < ?", (cutoff,)
            ).rowcount


def _abandoned(row: tuple[Any, ...], run_id: str, now: float) -> bool:
    """Whether a ``running`` claim was left by a server run that is over."""
    if row[1] == run_id:
        return False  # this run's own request is running
    return row[6] is not None or now - row[5] >= STALE_S
