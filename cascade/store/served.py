"""What ``cascade serve`` keeps beside a run's results: replies by idempotency key, and spend.

A request that carries an ``Idempotency-Key`` *claims* it first (:meth:`ServedBook.claim`): the
first claim runs the request; a retry while it runs is told so; a retry after it finished gets
the stored reply, and nothing is called or billed again. The reply is written in the same
transaction as the task's result and steps (:meth:`ServedBook.finish`, through
:meth:`~cascade.store.Store.record_many`'s ``also``), so a crash leaves either both or neither.
A claim left ``running`` by a server that died (another run id) is taken over by the next retry.

Every request's cost is added to its client key's total in that same transaction, so a key's
budget holds across worker processes and restarts.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from cascade.store.db import Store

__all__ = ["Claim", "ServedBook"]


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
    """The ``served`` and ``client_spend`` tables of one store, for one server run."""

    def __init__(self, store: Store, run_id: str) -> None:
        self.store = store
        self.run_id = run_id

    def claim(self, client: str, key: str, digest: str, task_id: str) -> Claim:
        """Claim ``key`` for a request whose body hashes to ``digest``, to run as ``task_id``."""
        now = time.time()
        with self.store.writing() as db:
            row = db.execute(
                "SELECT digest, run_id, state, status, reply FROM served"
                " WHERE client = ? AND idem_key = ?",
                (client, key),
            ).fetchone()
            if row is None or (row[2] == "running" and row[1] != self.run_id):
                db.execute(
                    "INSERT INTO served (client, idem_key, digest, run_id, task_id, state,"
                    " updated_at) VALUES (?, ?, ?, ?, ?, 'running', ?) ON CONFLICT"
                    " (client, idem_key) DO UPDATE SET digest = excluded.digest,"
                    " run_id = excluded.run_id, task_id = excluded.task_id,"
                    " updated_at = excluded.updated_at",
                    (client, key, digest, self.run_id, task_id, now),
                )
                return Claim("new")
        if row[0] != digest:
            return Claim("mismatch")
        if row[2] == "running":
            return Claim("running")
        return Claim("done", row[3], json.loads(row[4]))

    def finish(
        self,
        client: str,
        key: str | None,
        cost_usd: float,
        status: int,
        reply: dict[str, Any] | None,
    ) -> Any:
        """What to write, inside the result's transaction, when a request ends.

        The client's spend grows by ``cost_usd``. With a ``reply``, the claim on ``key`` is
        done and keeps it; without one (a request cut off by shutdown), the claim stays
        ``running`` under this run's id, so a retry to the next run of the server runs it again.
        """

        def write(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO client_spend (client, spent_usd, requests) VALUES (?, ?, 1)"
                " ON CONFLICT (client) DO UPDATE SET spent_usd = spent_usd + excluded.spent_usd,"
                " requests = requests + 1",
                (client, cost_usd),
            )
            if key is None or reply is None:
                return  # a request cut off keeps its claim "running": the next run takes it over
            db.execute(
                "UPDATE served SET state = 'done', status = ?, reply = ?, updated_at = ?"
                " WHERE client = ? AND idem_key = ?",
                (status, json.dumps(reply), time.time(), client, key),
            )

        return write

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
