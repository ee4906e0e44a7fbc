"""A worker process's body: open the store and the step log, then work until done.

The coordinator (:class:`cascade.run.runner.Runner`) starts one process per worker with
:func:`work`, sharing with each what :class:`Shared` holds.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import sys
from dataclasses import dataclass
from multiprocessing.connection import Connection

from cascade.backends.routed import closing_backend
from cascade.budget import JobBudget
from cascade.engine import Settings
from cascade.policy import load_policies
from cascade.run.guard import Guard
from cascade.run.job import Job
from cascade.run.services import auditor_for, batcher_for
from cascade.run.spawning import adopt_environment
from cascade.run.worker import Cascades, StopFlag, Worker
from cascade.steplog import StepLog, appending
from cascade.store import Store
from cascade.store.alarms import Escalated
from cascade.store.ledger import Ledger
from cascade.store.unsaved import write_failure

__all__ = ["LOG_FAILED", "Shared", "work"]

LOG_FAILED = 75
"""A worker's exit status when its step log could not be written (a full disk)."""


class _InterruptedOrOrphaned:
    """Set when the run is interrupted, this process got SIGTERM, or the coordinator died.

    The coordinator is not this process's parent (the fork server is), so its death is read
    from ``alive``: the reading end of a pipe whose writing end only the coordinator holds,
    which reads as ended once it is gone, however it died. A parent that dies (the fork server,
    or the coordinator of a spawned worker) counts too.
    """

    def __init__(self, interrupted: StopFlag, alive: Connection) -> None:
        self._interrupted = interrupted
        self._alive = alive
        self._parent = os.getppid()
        self.terminated = False

    def is_set(self) -> bool:
        if self.terminated or self._interrupted.is_set() or os.getppid() != self._parent:
            return True
        return self._alive.poll()  # the coordinator writes nothing: readable means it is gone


@dataclass(frozen=True, slots=True)
class Shared:
    """What the coordinator shares with its worker processes, beside the job: all pickle."""

    run_id: str
    guard: Guard
    stop: StopFlag
    budget: JobBudget
    interrupted: StopFlag
    audit_spent: dict[str, JobBudget]
    environ: dict[str, str]
    """The coordinator's environment when it started the workers (API keys among it)."""
    alive: Connection
    """Reads as ended once the coordinator is gone (see ``_InterruptedOrOrphaned``)."""


def work(job: Job, shared: Shared, owner: str) -> None:
    """A worker process's body: open the store and the log, then work until done.

    If the run is interrupted, this process is sent SIGTERM, or the coordinator dies, the
    worker stops as :meth:`Worker.run` says and exits; the next run of the job leases the rest.
    Ctrl-C is the coordinator's to handle: this process ignores SIGINT.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    adopt_environment(shared.environ)  # a fork server's own may be older
    interrupted = _InterruptedOrOrphaned(shared.interrupted, shared.alive)
    job = dataclasses.replace(job, settle_heap=True)  # this process is the run's own

    def terminated(_signum: int, _frame: object) -> None:
        interrupted.terminated = True

    signal.signal(signal.SIGTERM, terminated)
    policies = load_policies(job.policy)
    backend = job.backend_factory()()
    with (
        closing_backend(backend),
        Store(job.store) as store,
        appending(job.log_path) as file,
    ):
        log = StepLog(file)
        batcher = batcher_for(policies, backend, store, shared.run_id, log)
        settings = Settings(
            backend=backend,
            log=log,
            guard=shared.guard,
            run_id=shared.run_id,
            record_all_tiers=job.record_all_tiers,
            max_outage_s=job.max_outage_s,
            batcher=batcher,
        )
        telemetry = job.telemetry()
        worker = Worker(
            job,
            Cascades(policies, settings, Escalated(store)),
            Ledger(store, shared.run_id),
            stop=shared.stop,
            budget=shared.budget,
            owner=owner,
            interrupted=interrupted,
            telemetry=telemetry,
            auditor=auditor_for(policies, settings, store, shared.budget, shared.audit_spent),
        )
        try:
            asyncio.run(worker.run_then_close(batcher))
        finally:
            if telemetry is not None:
                telemetry.shutdown()
        if log.failure is not None:  # the store has every call; the coordinator stops the run
            sys.stderr.write(f"cascade: error: {write_failure(log.failure, log.path)}\n")
            raise SystemExit(LOG_FAILED)
