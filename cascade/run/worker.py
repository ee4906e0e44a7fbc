"""A worker: lease tasks from the ledger, run each up its policy's ladder, record the outcomes.

Several workers, in one process or many, share one store: each leases its own tasks, so none
is run twice unless a lease was lost (the worker died or stalled past its deadline), and then
the second execution is logged as a ``cascade.repeat`` event and counted in the result.

Outcomes are recorded in small batches (one transaction per batch, each outcome whole), so a
crash loses at most the last few tens of milliseconds of outcomes, whose tasks are leased again.
When the store cannot take a batch (a full disk), its outcomes go to the store's side file
(:mod:`cascade.store.unsaved`), and the worker leases no more: the tasks in flight finish.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from cascade.backends.batcher import Batcher
from cascade.budget import JobBudget
from cascade.engine import Cascade, Settings
from cascade.outcome import Outcome, Step
from cascade.policy import PolicySet
from cascade.run import heap
from cascade.run.job import Job
from cascade.steplog import StepLog
from cascade.store.ledger import Leased, Ledger
from cascade.store.unsaved import Failure, SideFile, write_failure
from cascade.types import Task, Tier

if TYPE_CHECKING:
    from cascade.audit.auditor import Auditor
    from cascade.telemetry import Telemetry

__all__ = ["Cascades", "StopFlag", "TaskCascades", "Worker", "new_owner"]


class StopFlag(Protocol):
    """Set when no new task may start (the job's budget is spent): a ``multiprocessing.Event``."""

    def is_set(self) -> bool:
        """Whether to stop leasing."""
        ...


class Runs(Protocol):
    """Runs a task to its outcome: a :class:`Cascade`, or a task actor on a Ray cluster."""

    async def arun(self, task: Task, *, steps: list[Step]) -> Outcome:
        """The task's outcome; ``steps`` receives each call as it is made."""
        ...


class TaskCascades(Protocol):
    """What a worker runs its tasks with: here, :class:`Cascades`; on Ray, the task actors."""

    log: StepLog | None
    """Where the worker logs its own events (a task run again after a lost lease)."""

    def for_task(self, task: Task) -> Runs | None:
        """What runs ``task``, or ``None`` when no policy serves it."""
        ...

    def tiers_for(self, task: Task) -> tuple[Tier, ...]:
        """The ladder of the policy that serves ``task`` (empty when none does)."""
        ...

    def parked(self) -> int:
        """Tasks waiting for a provider batch: they do not count against the concurrency."""
        ...

    def took_up(self, task_id: str) -> bool:
        """Whether the task took up a provider batch an earlier run submitted and waited for."""
        ...


class _Never:
    def is_set(self) -> bool:
        return False


_NEVER = _Never()

_FLUSH_S = 0.05
"""How long finished outcomes wait to be written together, at most."""
_BATCH = 200
_PARKING_S = 0.002
_MAX_PARKED = 5_000
"""Tasks parked for provider batches at once, per worker: ten batches of 500."""
_IDLE_S = 0.02


def new_owner() -> str:
    """A lease owner name unique to this worker: host, process and a nonce."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Worker:
    """Lease, run and record until the input is done and no task is left, or until stopped."""

    def __init__(
        self,
        job: Job,
        cascades: TaskCascades,
        ledger: Ledger,
        *,
        stop: StopFlag,
        budget: JobBudget | None = None,
        owner: str | None = None,
        interrupted: StopFlag | None = None,
        telemetry: Telemetry | None = None,
        auditor: Auditor | None = None,
    ) -> None:
        self.job = job
        self.auditor = auditor
        self.cascades = cascades
        self.ledger = ledger
        self.stop = stop
        self.budget = budget or JobBudget(None)
        self.owner = owner or new_owner()
        self.interrupted = interrupted or _NEVER
        self.telemetry = telemetry
        self.tasks_run = 0
        self.repeated = 0
        self.cut_off = 0
        """Tasks cut off by an interrupt, given back to the ledger with their calls so far."""
        self._done: list[tuple[Outcome, Task, int]] = []
        self._flushed_at = time.monotonic()
        self.write_failed: Failure | None = None
        """The first write to the store that failed: no task is leased after it."""
        self._side = SideFile(ledger.store.path)
        self._settled = False

    async def run(self) -> None:
        """Work until there is nothing left to do (or the stop flag is set).

        When interrupted, no task starts; those in flight get ``job.grace_s`` to finish, then
        are cut off: their calls so far are stored and they go back to the ledger.
        """
        renewer = asyncio.ensure_future(self._renew())
        running: dict[asyncio.Future[Outcome], tuple[Leased, list[Step]]] = {}
        cut_at: float | None = None
        parked_before = 0
        try:
            while True:
                interrupted = self.interrupted.is_set()
                self._log_failed()
                stopping = interrupted or self.stop.is_set() or self.budget.exhausted()
                stopping = stopping or self.write_failed is not None
                # A task waiting for a provider batch is parked: it leaves its place to another
                # (up to _MAX_PARKED of them, which bounds the memory they hold).
                parked = self.cascades.parked()
                room = self.job.concurrency + min(parked, _MAX_PARKED) - len(running)
                if room > 0 and not stopping:
                    for leased in self._lease(room):
                        steps: list[Step] = []
                        running[asyncio.ensure_future(self._run(leased, steps))] = leased, steps
                if not running:
                    self._flush()
                    if stopping or self._finished():
                        return
                    await asyncio.sleep(_IDLE_S)
                    continue
                if interrupted:
                    cut_at = cut_at if cut_at is not None else time.monotonic() + self.job.grace_s
                    if time.monotonic() >= cut_at:
                        await self._cut_off(running)
                        continue
                # While tasks park, look again soon: a batch fills with what is leased meanwhile.
                wait_s = _FLUSH_S if parked == parked_before else _PARKING_S
                parked_before = parked
                finished, _ = await asyncio.wait(
                    running, timeout=wait_s, return_when=asyncio.FIRST_COMPLETED
                )
                for future in finished:
                    (leased, _), outcome = running.pop(future), future.result()
                    self._finish(leased, outcome)
                if len(self._done) >= _BATCH or self._due():
                    self._flush()
        finally:
            for future in running:
                future.cancel()
            renewer.cancel()
            self._flush()

    async def run_then_close(self, batcher: Batcher | None) -> None:
        """:meth:`run`, then wait for the audits in flight and stop ``batcher``.

        The batches it followed stay in the ledger, for a resumed run.
        """
        try:
            await self.run()
            if self.auditor is not None:  # interrupted: the audits get the tasks' grace
                await self.auditor.drain(self.job.grace_s if self.interrupted.is_set() else None)
        finally:
            if batcher is not None:
                await batcher.aclose()

    def _finish(self, leased: Leased, outcome: Outcome) -> None:
        if self.job.settle_heap and not self._settled:
            self._settled = True
            heap.settle()  # a first task is done: start-up (litellm's import) is over
        self.budget.add(outcome.cost_usd)
        times = leased.execution if self._repeated(leased, outcome) else 1
        self._done.append((outcome, leased.task, times))
        if self.telemetry is not None:
            self.telemetry.record(outcome, self.cascades.tiers_for(leased.task), leased.task)

    async def _cut_off(
        self, running: dict[asyncio.Future[Outcome], tuple[Leased, list[Step]]]
    ) -> None:
        """Cancel the tasks still in flight; store their calls so far and give them back."""
        for future in running:
            future.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        partial = []
        for future, (leased, steps) in running.items():
            if future.cancelled() or future.exception() is not None:
                self.budget.add(sum(step.cost_usd for step in steps))
                partial.append((leased.task.id, list(steps)))
            else:
                self._finish(leased, future.result())
        running.clear()
        self._flush()
        self.ledger.abandon(self.owner, partial)
        self.cut_off += len(partial)

    def _repeated(self, leased: Leased, outcome: Outcome) -> bool:
        """Whether a task leased again made again calls its lost execution had made.

        Not when its first call took up the provider batch that execution had submitted and was
        waiting for: that call is answered once, and the calls after it were never made.
        """
        if leased.execution <= 1:
            return False
        took_up = self.cascades.took_up(leased.task.id)
        if took_up and outcome.steps and outcome.steps[0].batch:
            return False
        self.repeated += 1
        if self.cascades.log is not None:
            # The earlier execution's calls were made and paid for; they are in the step log.
            event = self.cascades.log.event
            event("cascade.repeat", task_id=leased.task.id, execution=leased.execution)
        return True

    async def _run(self, leased: Leased, steps: list[Step]) -> Outcome:
        task = leased.task
        cascade = self.cascades.for_task(task)
        if cascade is None:
            reason = f"no policy serves task type {task.type!r} any more"
            return Outcome.quarantined(self.ledger.run_id, {"id": task.id}, reason)
        return await cascade.arun(task, steps=steps)

    def _due(self) -> bool:
        return time.monotonic() - self._flushed_at >= _FLUSH_S

    def _flush(self) -> None:
        self._flushed_at = time.monotonic()
        if not self._done:
            return
        done, self._done = self._done, []
        self.tasks_run += len(done)
        if not self._record([(outcome, times) for outcome, _, times in done]):
            return  # kept aside: audits start once their results are in the store
        if self.auditor is not None and not self.interrupted.is_set():
            for outcome, task, _ in done:  # audits start once their results are written
                self.auditor.consider(task, outcome)

    def _record(self, done: list[tuple[Outcome, int]]) -> bool:
        """Record outcomes in the store, or keep them in its side file when it cannot take them.

        The ledger holds each task already: its payload need not be written again.
        """
        try:
            self.ledger.record(done)
        except Exception as exc:
            if (failure := self._failed(exc)) is None:
                raise
            self._side.keep_outcomes(done, failure)
            return False
        return True

    def _lease(self, room: int) -> list[Leased]:
        """Up to ``room`` tasks; none once a write to the store has failed."""
        try:
            return self.ledger.lease(self.owner, room, ttl_s=self.job.lease_s)
        except Exception as exc:
            if self._failed(exc) is None:
                raise
            return []

    def _log_failed(self) -> None:
        """A step log that could not be written stops the leasing, as a failed store does."""
        log = self.cascades.log
        if log is not None and log.failure is not None and self.write_failed is None:
            self.write_failed = write_failure(log.failure, log.path)

    def _failed(self, exc: Exception) -> Failure | None:
        """The failed write ``exc`` is (the first one is kept), or ``None`` for another fault."""
        failure = write_failure(exc, self.ledger.store.path)
        self.write_failed = self.write_failed or failure
        return failure

    def _finished(self) -> bool:
        return self.ledger.position().input_done and self.ledger.unfinished() == 0

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.job.lease_s / 3)
            try:
                self.ledger.renew(self.owner, ttl_s=self.job.lease_s)
            except Exception as exc:
                if self._failed(exc) is None:
                    raise


class Cascades:
    """One cascade per policy of a run, sharing one :class:`Settings` (backend, log, guard).

    ``escalated`` says which task types a drift alarm starts one tier higher (see
    :class:`~cascade.store.alarms.Escalated`).
    """

    def __init__(
        self,
        policies: PolicySet,
        settings: Settings,
        escalated: Callable[[], set[str]] | None = None,
    ) -> None:
        self.policies = policies
        self.settings = settings
        self._cascades = {p.task_type: Cascade(p.plan, settings=settings) for p in policies}
        self._higher = {
            p.task_type: Cascade(p.plan.one_tier_higher(), settings=settings)
            for p in policies
            if p.drift is not None and p.drift.on_drift == "escalate"
        }
        self._escalated = escalated if self._higher else None
        self.log = settings.log if isinstance(settings.log, StepLog) else None

    def for_task(self, task: Task) -> Cascade | None:
        """The cascade of the policy that serves ``task``, if one does."""
        policy = self.policies.for_task(task)
        if policy is None:
            return None
        kind = policy.task_type
        if self._escalated is not None and kind in self._higher and kind in self._escalated():
            return self._higher[kind]
        return self._cascades[kind]

    def tiers_for(self, task: Task) -> tuple[Tier, ...]:
        """The ladder of the policy that serves ``task`` (empty when none does)."""
        policy = self.policies.for_task(task)
        return () if policy is None else policy.ladder

    def parked(self) -> int:
        """Tasks waiting for a provider batch: they do not count against the concurrency."""
        batcher = self.settings.batcher
        return 0 if batcher is None else batcher.waiting

    def took_up(self, task_id: str) -> bool:
        """Whether the task took up a provider batch an earlier run submitted and waited for."""
        batcher = self.settings.batcher
        return isinstance(batcher, Batcher) and batcher.took_up(task_id)
