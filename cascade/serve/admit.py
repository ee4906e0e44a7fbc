"""Whether a request may start: its idempotency key, its client's rate and budget, in that order.

A retried key whose request is done gets its stored reply first, whatever the client's rate or
budget now (it costs nothing). Otherwise the key is claimed, the client's requests per minute
are counted, and what the request may cost is held back from the client's (and the server's)
budget: its policy's ``budget_usd``, or where the policy sets none, what the client's
requests have cost on average. A request refused after its key was claimed gives the claim
back. Every store call runs in a thread: a store that is slow to answer (another process
writing) holds up the requests that need it, never the server.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

from cascade.run.guard import Guard
from cascade.serve.keys import ANONYMOUS, ClientKey
from cascade.serve.prepared import limit_key
from cascade.serve.replies import Reply, error_body
from cascade.store.served import ServedBook

__all__ = ["Admitted", "Gate"]


@dataclass(frozen=True, slots=True)
class Admitted:
    """A request that may run: who sent it, its claimed key, and what it holds back."""

    client: str
    idem_key: str | None
    reserved_usd: float


class Gate:
    """Admit or refuse requests for one server run."""

    def __init__(self, book: ServedBook, clients: Guard, budget_usd: float | None) -> None:
        self.book = book
        self.clients = clients
        self.budget_usd = budget_usd

    async def admit(
        self,
        client: ClientKey | None,
        idem_key: str | None,
        digest: str,
        task_id: str,
        cap_usd: float | None,
    ) -> Admitted | Reply:
        """Claim, count and reserve for a request whose policy caps a task at ``cap_usd``."""
        name = ANONYMOUS if client is None else client.name
        if idem_key is not None:
            claim = await asyncio.to_thread(self.book.claim, name, idem_key, digest, task_id)
            if claim.state == "done":
                assert claim.reply is not None  # a done claim has its reply
                headers = {**claim.reply["headers"], "idempotent-replayed": "true"}
                return Reply(claim.status or 200, claim.reply["body"], headers)
            if claim.state != "new":
                why = ("a request with this Idempotency-Key is still running"
                       if claim.state == "running"
                       else "this Idempotency-Key was used for a different request")  # fmt: skip
                body = error_body(why, "invalid_request_error", param="Idempotency-Key",
                                  code="idempotency_conflict")  # fmt: skip
                return Reply(409, body, {})
        refused = await self._refuse(client, name, cap_usd)
        if isinstance(refused, Reply):
            if idem_key is not None:
                await asyncio.to_thread(self.book.release, name, idem_key)
            return refused
        return Admitted(name, idem_key, refused)

    async def _refuse(
        self, client: ClientKey | None, name: str, cap_usd: float | None
    ) -> Reply | float:
        """A 429, or what the request holds back of the budgets."""
        if client is not None and client.rpm is not None:
            wait = self.clients.wait_s(limit_key(name), 0)
            if wait > 0:
                message = f"the key {name!r} is over its {client.rpm:g} requests per minute"
                return Reply(429, error_body(message, "requests", code="rate_limit_exceeded"),
                               {"retry-after": str(max(1, math.ceil(wait)))})  # fmt: skip
        key_budget = None if client is None else client.budget_usd
        if key_budget is None and self.budget_usd is None:
            return 0.0
        amount = cap_usd
        if amount is None:
            amount = await asyncio.to_thread(self.book.average_cost, name)
        over = await asyncio.to_thread(self.book.reserve, name, amount, key_budget,
                                       self.budget_usd)  # fmt: skip
        if over is None:
            return amount
        who, spent, held = over
        budget = key_budget if who == "key" else self.budget_usd
        whose = f"the key {name!r}" if who == "key" else "the server"
        message = (f"{whose} has spent ${spent:.6f} and holds back ${held:.6f} for requests "
                   f"in flight, of its ${budget:.6f} budget")  # fmt: skip
        return Reply(429, error_body(message, "insufficient_quota", code="insufficient_quota"),
                       {})  # fmt: skip
