"""A worker: lease tasks from the ledger, run each up its policy's ladder, record the outcomes.

Several workers, in one process or many, share one store: each leases its own tasks, so none
is run twice unless a lease was lost (the worker died or stalled past its deadline), and then
the second execution is logged as a ``cascade.repeat`` event and counted in the result.

Outcomes are recorded in small batches (one transaction per batch, each outcome whole), so a
crash loses at most the outcomes of the last ``flush_s``; those tasks are leased again later.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import IO, Protocol

from cascade._task_run import quarantined_outcome
from cascade.backends.base import Backend
from cascade.backends.routed import closing_backend
from cascade.budget import JobBudget
from cascade.engine import Cascade
from cascade.errors import ConfigError
from cascade.guard import Guard
from cascade.ledger import Leased, Ledger
from cascade.policy import PolicySet, load_policies
from cascade.steplog import StepLog
from cascade.store import Store
from cascade.types import Outcome, Task

__all__ = ["StopFlag", "Worker", "WorkerJob", "WorkerSettings", "new_owner", "work"]


class StopFlag(Protocol):
    """Set when no new task may start (the job's budget is spent): a ``multiprocessing.Event``."""

    def is_set(self) -> bool:
        """Whether to stop leasing."""
        ...


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """How a worker paces itself."""

    concurrency: int = 16
    lease_s: float = 300.0
    flush_s: float = 0.05
    batch: int = 200
    idle_s: float = 0.02
    record_all_tiers: float = 0.0
    """The share of tasks asked of every tier, for calibration (see :class:`Cascade`)."""

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ConfigError(f"concurrency must be >= 1, got {self.concurrency}")
        if not self.lease_s > 0:
            raise ConfigError(f"the lease must be > 0 s, got {self.lease_s}")


def new_owner() -> str:
    """A lease owner name unique to this worker: host, process and a nonce."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Worker:
    """Lease, run and record until the input is done and no task is left, or until stopped."""

    def __init__(
        self,
        policies: PolicySet,
        cascades: dict[str, Cascade],
        ledger: Ledger,
        *,
        stop: StopFlag,
        budget: JobBudget | None = None,
        settings: WorkerSettings | None = None,
        log: StepLog | None = None,
        owner: str | None = None,
    ) -> None:
        self.policies = policies
        self.cascades = cascades
        self.ledger = ledger
        self.stop = stop
        self.budget = budget or JobBudget(None)
        self.settings = settings or WorkerSettings()
        self.log = log
        self.owner = owner or new_owner()
        self.tasks_run = 0
        self.repeated = 0
        self._done: list[tuple[Outcome, Task, int]] = []
        self._flushed_at = time.monotonic()

    async def run(self) -> None:
        """Work until there is nothing left to do (or the stop flag is set)."""
        renewer = asyncio.ensure_future(self._renew())
        running: dict[asyncio.Future[Outcome], Leased] = {}
        try:
            while True:
                room = self.settings.concurrency - len(running)
                stopping = self.stop.is_set() or self.budget.exhausted()
                if room > 0 and not stopping:
                    for leased in self.ledger.lease(self.owner, room, ttl_s=self.settings.lease_s):
                        running[asyncio.ensure_future(self._run(leased))] = leased
                if not running:
                    self._flush()
                    if stopping or self._finished():
                        return
                    await asyncio.sleep(self.settings.idle_s)
                    continue
                finished, _ = await asyncio.wait(
                    running, timeout=self.settings.flush_s, return_when=asyncio.FIRST_COMPLETED
                )
                for future in finished:
                    leased, outcome = running.pop(future), future.result()
                    self.budget.add(outcome.cost_usd)
                    self._done.append((outcome, leased.task, leased.execution))
                if len(self._done) >= self.settings.batch or self._due():
                    self._flush()
        finally:
            for future in running:
                future.cancel()
            renewer.cancel()
            self._flush()

    async def _run(self, leased: Leased) -> Outcome:
        task = leased.task
        if leased.execution > 1:
            self.repeated += 1
            if self.log is not None:
                # The earlier execution's calls were made and paid for; they are in the step log.
                self.log.event("cascade.repeat", task_id=task.id, execution=leased.execution)
        policy = self.policies.for_task(task)
        if policy is None:
            reason = f"no policy serves task type {task.type!r} any more"
            return quarantined_outcome(self.ledger.run_id, {"id": task.id}, reason)
        return await self.cascades[policy.task_type].arun(task)

    def _due(self) -> bool:
        return time.monotonic() - self._flushed_at >= self.settings.flush_s

    def _flush(self) -> None:
        self._flushed_at = time.monotonic()
        if not self._done:
            return
        done, self._done = self._done, []
        # The ledger holds each task already: its payload need not be written again.
        self.ledger.store.record_many(
            [(outcome, None) for outcome, _, _ in done], [times for _, _, times in done]
        )
        self.tasks_run += len(done)

    def _finished(self) -> bool:
        return self.ledger.position().input_done and self.ledger.unfinished() == 0

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.settings.lease_s / 3)
            self.ledger.renew(self.owner, ttl_s=self.settings.lease_s)


@dataclass(frozen=True, slots=True)
class WorkerJob:
    """What a worker process needs to join a run; it must pickle (``spawn`` start method)."""

    policy: str
    store: str
    run_id: str
    owner: str
    settings: WorkerSettings
    log_path: str | None
    backend: Callable[[], Backend]


def build_cascades(
    policies: PolicySet,
    *,
    backend: Backend,
    log: StepLog | bool | None,
    run_id: str,
    guard: Guard | None,
    record_all_tiers: float = 0.0,
) -> dict[str, Cascade]:
    """One cascade per policy, sharing one backend (its connections) and one guard."""
    return {
        p.task_type: p.cascade(
            backend=backend,
            log=log,
            run_id=run_id,
            guard=guard,
            record_all_tiers=record_all_tiers,
        )
        for p in policies
    }


class _StopOrOrphaned:
    """The run's stop flag, also set when the coordinator died (this process was orphaned)."""

    def __init__(self, stop: StopFlag) -> None:
        self._stop = stop
        self._parent = os.getppid()

    def is_set(self) -> bool:
        return self._stop.is_set() or os.getppid() != self._parent


def work(job: WorkerJob, guard: Guard, stop: StopFlag, budget: JobBudget) -> None:
    """A worker process's body: open the store and the log, then work until done.

    If the coordinator dies, the worker finishes and records the tasks it has in flight, and
    exits; the next run of the job leases the rest.
    """
    policies = load_policies(job.policy)
    backend = job.backend()
    with (
        closing_backend(backend),
        Store(job.store) as store,
        _log_file(job.log_path) as file,
    ):
        log = StepLog(file) if file is not None else None
        cascades = build_cascades(
            policies,
            backend=backend,
            log=log or False,
            run_id=job.run_id,
            guard=guard,
            record_all_tiers=job.settings.record_all_tiers,
        )
        worker = Worker(
            policies,
            cascades,
            Ledger(store, job.run_id),
            stop=_StopOrOrphaned(stop),
            budget=budget,
            settings=job.settings,
            log=log,
            owner=job.owner,
        )
        asyncio.run(worker.run())


def _log_file(path: str | None) -> AbstractContextManager[IO[str] | None]:
    """The step log opened for appending, with a buffer big enough that a line is one write."""
    if path is None:
        return nullcontext(None)
    return open(path, "a", encoding="utf-8", buffering=1 << 20)
