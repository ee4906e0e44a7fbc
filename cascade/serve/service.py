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
import contextlib
import dataclasses
import logging
import sqlite3
import time
import uuid
from typing import TYPE_CHECKING, Any

from cascade.audit.auditor import Auditor
from cascade.budget import JobBudget
from cascade.engine import Settings
from cascade.outcome import Outcome, Step
from cascade.policy import PolicySet
from cascade.run import heap
from cascade.run.drifting import DriftDesk
from cascade.run.services import audit_budgets, auditor_for, audits_skipped
from cascade.serve.admit import Admitted, Gate
from cascade.serve.chat import ChatRequest
from cascade.serve.keys import ClientKey
from cascade.serve.ladders import Ladders
from cascade.serve.prepared import Prepared
from cascade.serve.replies import Reply, completion_of, error_body, headers_of, status_of
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
        self._settle_heap = prepared.config.settle_heap
        self._settled = False
        self.gate = Gate(self.book, prepared.clients, budget_usd)
        self._seen = 0
        self.in_flight = 0

    async def serve(
        self, request: ChatRequest, client: ClientKey | None, idem_key: str | None, digest: str
    ) -> Reply:
        """Run ``request`` to its reply; a retried ``idem_key`` gets the stored reply."""
        task_id = f"chatcmpl-{uuid.uuid4().hex}"
        cap = self.ladders.policies[request.task_type].plan.budget_usd
        admitted = await self.gate.admit(client, idem_key, digest, task_id, cap)
        if isinstance(admitted, Reply):  # a stored reply is streamed as it was asked for
            replayed = "idempotent-replayed" in admitted.headers and admitted.status == 200
            return dataclasses.replace(admitted, stream=request.stream and replayed,
                                       include_usage=request.include_usage)  # fmt: skip
        task = Task(task_id, messages=request.messages, type=request.task_type,
                    extra=_extra(request))  # fmt: skip
        cascade = self.ladders.for_request(request)
        steps: list[Step] = []
        self.in_flight += 1
        try:
            outcome = await cascade.arun(task, steps=steps)
        except asyncio.CancelledError:
            self._cut_off(task, steps, admitted)
            raise
        finally:
            self.in_flight -= 1
        return await self._finish(task, request, outcome, admitted)

    async def _finish(
        self, task: Task, request: ChatRequest, outcome: Outcome, admitted: Admitted
    ) -> Reply:
        status, headers = status_of(outcome), headers_of(outcome)
        try:
            offered = [tool["function"]["name"] for tool in request.tools or ()]
            body = completion_of(outcome, int(time.time()), offered=offered)
        except Exception as exc:  # noqa: BLE001  # an answer that makes no reply is still paid for
            status = 500
            body = error_body(f"the answer could not be made a reply: {exc}", "server_error",
                              code="reply_failed", task_id=task.id)  # fmt: skip
        stored = (status, {"body": body, "headers": headers})
        write = self.book.finish(admitted.client, admitted.idem_key, outcome.cost_usd,
                                 admitted.reserved_usd, stored)  # fmt: skip
        try:
            await self._writer.write(outcome, task, write, alone=self.in_flight == 0)
        except (sqlite3.Error, OSError) as exc:
            return await self._unstored(task, outcome, admitted, headers, exc)
        if not self._settled:
            self._settled = True
            if self._settle_heap:
                heap.settle()  # start-up (litellm's import, the first HTTP clients) is over
        if self.telemetry is not None:
            self.telemetry.record(outcome, self.ladders.policies[task.type].ladder, task)
        if self.auditor is not None:
            self.auditor.consider(task, outcome)
        return Reply(status, body, headers, request.stream and status == 200,
                     request.include_usage)  # fmt: skip

    async def _unstored(
        self,
        task: Task,
        outcome: Outcome,
        admitted: Admitted,
        headers: dict[str, str],
        exc: Exception,
    ) -> Reply:
        """A result the store would not take: not an answer the server can stand by.

        A retry would not find it, and its cost is not in the client's spend: the step log has
        its calls, and the event says what it cost. What it held back of the budgets and the
        key's claim are given back (if the store takes that), so a retry can run.
        """
        if self.log is not None:
            self.log.event("cascade.serve.unstored", task_id=task.id, client=admitted.client,
                           cost_usd=outcome.cost_usd, error=str(exc))  # fmt: skip
        with contextlib.suppress(sqlite3.Error, OSError):  # if the store takes that much
            await asyncio.to_thread(self.book.unreserve, admitted.client, admitted.reserved_usd)
            if admitted.idem_key is not None:
                await asyncio.to_thread(self.book.release, admitted.client, admitted.idem_key)
        message = f"the result could not be stored ({exc}); the step log has its calls"
        return Reply(500, error_body(message, "server_error", code="store_failed",
                                     task_id=task.id), headers)  # fmt: skip

    def _cut_off(self, task: Task, steps: list[Step], admitted: Admitted) -> None:
        """Record what a request cut off by shutdown paid for.

        Its idempotency key stays claimed by this run: a retry to the next run takes it over.
        """
        paid = tuple(steps)
        outcome = dataclasses.replace(Outcome.failed(self.run_id, task, _CUT_OFF), steps=paid,
                                      cost_usd=sum(step.cost_usd for step in paid))  # fmt: skip
        write = self.book.finish(admitted.client, admitted.idem_key, outcome.cost_usd,
                                 admitted.reserved_usd, None)  # fmt: skip
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
