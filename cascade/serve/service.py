"""The work behind one request: keys, budgets, the ladder, the store, the reply.

A :class:`Service` is one worker process's half of ``cascade serve``: the HTTP side
(:mod:`cascade.serve.app`) hands it a checked :class:`~cascade.serve.chat.ChatRequest` and the
client's key, and it runs the request up its policy's ladder through the same engine,
guard, retries, breakers, cost caps, audits, drift alarms, step log, store and telemetry as
``cascade run``. Every request becomes one task of the server's run in the store (its id is the
completion's id), so ``cascade report STORE`` reports on what was served.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import sqlite3
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cascade.audit.auditor import Auditor
from cascade.engine import Settings
from cascade.outcome import Outcome, Step
from cascade.policy import PolicySet
from cascade.run.budget import JobBudget
from cascade.run.drifting import DriftDesk
from cascade.run.services import audit_budgets, auditor_for, audits_skipped
from cascade.serve.chat import ChatRequest
from cascade.serve.keys import ANONYMOUS, ClientKey
from cascade.serve.ladders import Ladders
from cascade.serve.prepared import Prepared, limit_key
from cascade.serve.replies import completion_of, error_body, headers_of, status_of
from cascade.serve.writer import GroupWriter
from cascade.steplog import StepLog
from cascade.store import Store
from cascade.store.alarms import Escalated
from cascade.store.ledger import Ledger
from cascade.store.served import ServedBook
from cascade.types import Task

if TYPE_CHECKING:
    from cascade.backends.base import Backend
    from cascade.telemetry import Telemetry

__all__ = ["Reply", "Service"]

_CUT_OFF = "cut off: the server shut down before the ladder finished"
_DRIFT_EVERY_S = 1.0


@dataclass(frozen=True, slots=True)
class Reply:
    """What to answer: the status, the JSON body, the headers, and whether to stream it."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str]
    stream: bool = False
    include_usage: bool = False


class Service:
    """Serve requests for one worker process (see the module docstring)."""

    def __init__(
        self,
        policies: PolicySet,
        store: Store,
        backend: Backend,
        prepared: Prepared,
        *,
        log: StepLog | None = None,
        telemetry: Telemetry | None = None,
        watch_drift: bool = True,
    ) -> None:
        run_id, budget_usd = prepared.run_id, prepared.config.budget_usd
        self.policies = policies
        self.task_types = frozenset(policy.task_type for policy in policies)
        self.store = store
        self.run_id = run_id
        self.book = ServedBook(store, run_id)
        self.log = log
        self.budget_usd = budget_usd
        self.clients = prepared.clients
        self.telemetry = telemetry
        settings = Settings(backend=backend, log=log or False, guard=prepared.guard,
                            run_id=run_id, max_outage_s=prepared.config.max_outage_s)  # fmt: skip
        self.ladders = Ladders(policies, settings, Escalated(store))
        self._audit_spent = audit_budgets(policies, store, run_id)
        self.auditor: Auditor | None = auditor_for(
            policies, settings, store, JobBudget(budget_usd), self._audit_spent
        )
        self._drift = DriftDesk(policies, store, run_id, log=log) if watch_drift else None
        self._ledger = Ledger(store, run_id)
        self._writer = GroupWriter(store)
        self._seen = 0
        self.in_flight = 0

    def refuse(self, client: ClientKey | None) -> Reply | None:
        """A 429 when the client (or the server) is over its budget or its rate; else ``None``."""
        name = ANONYMOUS if client is None else client.name
        if client is not None and client.budget_usd is not None:
            spent = self.book.spent(name)
            if spent >= client.budget_usd:
                message = (f"the key {name!r} has spent ${spent:.4f} of its "
                           f"${client.budget_usd:.4f} budget")  # fmt: skip
                return Reply(429, error_body(message, "insufficient_quota",
                                             code="insufficient_quota"), {})  # fmt: skip
        if self.budget_usd is not None and (spent := self.book.spent()) >= self.budget_usd:
            message = f"the server has spent ${spent:.4f} of its ${self.budget_usd:.4f} budget"
            return Reply(429, error_body(message, "insufficient_quota",
                                         code="insufficient_quota"), {})  # fmt: skip
        if client is not None and client.rpm is not None:
            wait = self.clients.wait_s(limit_key(name), 0)
            if wait > 0:
                message = f"the key {name!r} is over its {client.rpm:g} requests per minute"
                return Reply(429, error_body(message, "requests", code="rate_limit_exceeded"),
                             {"retry-after": str(max(1, math.ceil(wait)))})  # fmt: skip
        return None

    async def serve(
        self, request: ChatRequest, client: ClientKey | None, idem_key: str | None, digest: str
    ) -> Reply:
        """Run ``request`` to its reply; a retried ``idem_key`` gets the stored reply."""
        name = ANONYMOUS if client is None else client.name
        task_id = f"chatcmpl-{uuid.uuid4().hex}"
        if idem_key is not None:
            claim = self.book.claim(name, idem_key, digest, task_id)
            if claim.state == "done":
                assert claim.reply is not None  # a done claim has its reply
                body, headers = claim.reply["body"], claim.reply["headers"]
                headers = {**headers, "idempotent-replayed": "true"}
                return Reply(
                    claim.status or 200, body, headers, request.stream, request.include_usage
                )
            if claim.state != "new":
                why = ("a request with this Idempotency-Key is still running"
                       if claim.state == "running"
                       else "this Idempotency-Key was used for a different request")  # fmt: skip
                return Reply(409, error_body(why, "invalid_request_error",
                                             param="Idempotency-Key", code="idempotency_conflict"),
                             {})  # fmt: skip
        task = Task(task_id, messages=request.messages, type=request.task_type,
                    extra=_extra(request))  # fmt: skip
        cascade = self.ladders.for_request(request)
        steps: list[Step] = []
        self.in_flight += 1
        try:
            outcome = await cascade.arun(task, steps=steps)
        except asyncio.CancelledError:
            self._cut_off(task, steps, name, idem_key)
            raise
        finally:
            self.in_flight -= 1
        return await self._finish(task, request, outcome, name, idem_key)

    async def _finish(
        self,
        task: Task,
        request: ChatRequest,
        outcome: Outcome,
        client: str,
        idem_key: str | None,
    ) -> Reply:
        status = status_of(outcome)
        body = completion_of(outcome, int(time.time()), tools=request.tools is not None)
        headers = headers_of(outcome)
        stored = {"body": body, "headers": headers}
        write = self.book.finish(client, idem_key, outcome.cost_usd, status, stored)
        try:
            await self._writer.write(outcome, task, write)
        except (sqlite3.Error, OSError) as exc:
            # Not an answer the server can stand by: a retry would not find it, and its cost
            # would not count against the key. The calls it made are in the step log.
            if self.log is not None:
                self.log.event("cascade.serve.unstored", task_id=task.id, error=str(exc))
            message = f"the result could not be stored ({exc}); the step log has its calls"
            return Reply(500, error_body(message, "server_error", code="store_failed",
                                         task_id=task.id), headers)  # fmt: skip
        if self.telemetry is not None:
            self.telemetry.record(outcome, self.ladders.policies[task.type].ladder, task)
        if self.auditor is not None:
            self.auditor.consider(task, outcome)
        return Reply(status, body, headers, request.stream, request.include_usage)

    def _cut_off(self, task: Task, steps: list[Step], client: str, idem_key: str | None) -> None:
        """Record what a request cut off by shutdown paid for.

        Its idempotency key stays claimed by this run: a retry to the next run takes it over.
        """
        paid = tuple(steps)
        outcome = dataclasses.replace(Outcome.failed(self.run_id, task, _CUT_OFF), steps=paid,
                                      cost_usd=sum(step.cost_usd for step in paid))  # fmt: skip
        write = self.book.finish(client, idem_key, outcome.cost_usd, 503, None)
        try:
            self.store.record_many([(outcome, task)], also=write)
        except Exception:  # the store is gone: the step log still has every call
            logging.getLogger("cascade").exception("could not record a request cut off")

    async def watch(self) -> None:
        """Feed the drift alarms the results and audits stored, every second, until cancelled."""
        if self._drift is None:
            return
        while True:
            await asyncio.sleep(_DRIFT_EVERY_S)
            self.look()

    def look(self) -> None:
        """Hand the drift alarms what was stored since the last look."""
        if self._drift is None:
            return
        while rows := self._ledger.results_after(self._seen):
            self._seen = rows[-1].rowid
            self._drift.results(rows)
        self._drift.steps()

    async def close(self, grace_s: float) -> None:
        """Let the audits in flight finish (within ``grace_s``), then count those skipped."""
        if self.auditor is not None:
            await self.auditor.drain(grace_s)
        self.look()
        self._ledger.add_audits_skipped(audits_skipped(self._audit_spent))
        if self.telemetry is not None:
            await asyncio.to_thread(self.telemetry.shutdown)


def _extra(request: ChatRequest) -> dict[str, Any]:
    """What the validators read beside the messages: the schema and the offered functions."""
    extra: dict[str, Any] = {}
    if request.schema is not None:
        extra["schema"] = request.schema
    if request.tools is not None:
        extra["functions"] = request.functions()
    return extra
