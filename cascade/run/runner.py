"""Run a file of tasks through the policies: streamed in, streamed out, nothing lost.

Each line of the input becomes exactly one of: a result line (accepted, exhausted,
budget_exhausted, failed, or quarantined when the task is malformed or no policy serves its
type), or, when it is not even an object with an id, an entry in the quarantine file. Every bad
line is also written to the quarantine file, with its line number and the reason.

The :class:`Runner` coordinates. It feeds the input into the store's ledger in batches, a
bounded window ahead of the workers, so memory stays flat however long the input. It starts the
workers: one in this process, or ``workers`` processes sharing the store and the guard. And it
writes the results and quarantine files from the store. Those files are projections of the
store, rewritten from it on every run, so a resumed run's files hold each result exactly once,
whatever happened to the run before.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from typing import IO, Any

from cascade.backends.base import Backend
from cascade.backends.routed import closing_backend
from cascade.budget import JobBudget
from cascade.engine import Settings
from cascade.errors import CascadeError, ConfigError
from cascade.jsonable import to_jsonable
from cascade.outcome import Outcome
from cascade.policy import PolicySet
from cascade.run import heap
from cascade.run.counts import Counts
from cascade.run.drifting import DriftDesk
from cascade.run.guard import guard_for
from cascade.run.job import Job
from cascade.run.outages import OutageWatch
from cascade.run.progress import Progress
from cascade.run.services import (
    audit_budgets,
    auditor_for,
    audits_skipped,
    batcher_for,
    refuse_on_ray,
)
from cascade.run.spawning import worker_context
from cascade.run.tasks_file import Line, input_bytes, read_lines
from cascade.run.worker import Cascades, Worker, new_owner
from cascade.run.worker_process import LOG_FAILED, Shared, work
from cascade.run.writes import Writes
from cascade.steplog import StepLog
from cascade.store import Store
from cascade.store.alarms import Escalated
from cascade.store.ledger import Entry, Ledger
from cascade.store.unsaved import read_kept, restore_unsaved

__all__ = ["Counts", "Line", "Runner", "read_lines"]

_INGEST_BATCH = 500
_RECLAIM_EVERY_S = 10.0


class Runner:
    """Drive the lines of a task file through the policies, as the :class:`Job` says.

    ``backend`` serves this process (by default, the job's factory builds one); worker
    processes build their own from the job. ``log`` is this process's step log; worker
    processes append to the job's log file.
    """

    def __init__(
        self,
        job: Job,
        policies: PolicySet,
        store: Store,
        *,
        backend: Backend | None = None,
        log: StepLog | None = None,
        run_id: str | None = None,
        progress: Progress | None = None,
    ) -> None:
        if not len(policies):
            raise ConfigError("no policies to run")
        self.job = job
        self.workers = job.worker_count(None)
        if (self.workers > 1 or job.executor == "ray") and policies.source is None:
            raise ConfigError("worker processes and Ray actors need policies loaded from a path")
        refuse_on_ray(job, policies)
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self._policies = policies
        self._store = store
        self._ledger = Ledger(store, self.run_id)
        self._backend = backend
        self._log = log
        self._guard = guard_for(policies, job.limits)
        self._progress = progress
        self._stop: Any = multiprocessing.get_context("spawn").Event()
        self._interrupted: Any = multiprocessing.get_context("spawn").Event()
        self._writes = Writes(store.path, self._stop)
        self._budget = JobBudget(job.budget_usd)
        self._audit_spent = audit_budgets(policies, store, self.run_id)
        note = progress.note if progress is not None else None
        self._drift = DriftDesk(policies, store, self.run_id, log=log, say=note)
        self._outages = OutageWatch(self._guard, job.max_outage_s, log=log, say=note)
        self._reclaimed_at = time.monotonic()
        self._ray_trips = 0
        self._cursors = [0, 0, 0]  # results rowid, quarantine rowid, attempts seq
        self._earlier_rows = True  # the first tail reads the results of earlier runs
        self.counts = Counts()

    def interrupt(self, signum: int) -> None:
        """Stop the run soon (a signal came): read no more, start no task, cut off the rest.

        Tasks in flight get the job's grace period; the results and the summary are written
        as usual, and a rerun of the same command resumes.
        """
        self.counts.interrupted = self.counts.interrupted or signum
        self._interrupted.set()
        self._stop.set()

    async def run(self, lines: Iterator[Line], out: IO[str], quarantine: IO[str]) -> Counts:
        """Run every line not yet run for this job; return what was done and what is left.

        Results and quarantined lines are written to ``out`` and ``quarantine`` from the store.
        """
        self._files = (out, quarantine)
        with self._writes.guard(self._store.path):  # a failure here stops the run before a lease
            self._store.start_run(self.run_id)
            self.counts.restored = restore_unsaved(self._store)  # before a lease, or run twice
            self._ledger.reclaim()  # no worker is alive yet: every lease left is a crash's
            if self.job.retry_failed:
                self.counts.retried = self._ledger.retry_failed()
        self.counts.done_before = self._ledger.count_results()
        self.counts.tally.done_before = self.counts.done_before
        self._tail()  # the files start over from the store; the budget counts what was spent
        self._earlier_rows = False
        self._budget.add(self.counts.spent_usd)
        feeder = asyncio.ensure_future(self._feed(lines))
        try:
            if self.job.executor == "ray":
                await self._run_ray(feeder)
            elif self.workers == 1:
                await self._run_here(feeder)
            else:
                await self._run_processes(feeder)
        finally:
            self._stop.set()
            if not feeder.done():
                feeder.cancel()
            self._tail()
            with self._writes.guard(self._store.path):
                self._ledger.add_breaker_trips(self._trips)
                self._ledger.add_audits_skipped(audits_skipped(self._audit_spent))
        await asyncio.gather(feeder, return_exceptions=True)
        self.counts.write_failed = self._writes.failure
        if (kept := read_kept(self._store.path)) is not None:  # paid for, counted in "spent"
            self.counts.kept, self.counts.spent_usd = kept, self.counts.spent_usd + kept.cost_usd
        if not feeder.cancelled():
            feeder.result()  # a failure to read the input is the run's failure
        position = self._ledger.position()
        self.counts.duplicates = position.duplicates
        self.counts.input_done = position.input_done
        self.counts.remaining = self._ledger.unfinished()
        if self._progress is not None:
            self._progress.update(self.counts.tally, final=True)
        return self.counts

    async def _run_here(self, feeder: asyncio.Future[None]) -> None:
        if self._backend is None:  # built here, so closed here
            with closing_backend(self.job.backend_factory()()) as backend:
                await self._work_here(feeder, backend)
        else:
            await self._work_here(feeder, self._backend)

    async def _work_here(self, feeder: asyncio.Future[None], backend: Backend) -> None:
        batcher = batcher_for(self._policies, backend, self._store, self.run_id, self._log)
        settings = Settings(
            backend=backend,
            log=self._log or False,
            guard=self._guard,
            run_id=self.run_id,
            record_all_tiers=self.job.record_all_tiers,
            max_outage_s=self.job.max_outage_s,
            batcher=batcher,
        )
        cascades = Cascades(self._policies, settings, Escalated(self._store))
        telemetry = self.job.telemetry()
        worker = Worker(
            self.job,
            cascades,
            self._ledger,
            stop=self._stop,
            budget=self._budget,
            interrupted=self._interrupted,
            telemetry=telemetry,
            auditor=auditor_for(
                self._policies, settings, self._store, self._budget, self._audit_spent
            ),
        )
        task = asyncio.ensure_future(worker.run_then_close(batcher))
        try:
            while not task.done():
                await asyncio.wait([task], timeout=self.job.tail_s)
                if worker.write_failed is not None:
                    self._writes.failed(worker.write_failed)
                self._tail()
                self._watch(feeder, [worker.owner])
            task.result()
        finally:
            if telemetry is not None:
                await asyncio.to_thread(telemetry.shutdown)  # flushing may wait on the network

    @property
    def _trips(self) -> int:
        """How many times a breaker opened in this run, in every process or actor."""
        return self._ray_trips if self.job.executor == "ray" else self._guard.trips()

    async def _run_ray(self, feeder: asyncio.Future[None]) -> None:
        """Run on Ray actors (see :mod:`cascade.run.ray_pool`), recording here."""
        from cascade.run.ray_pool import RayPool  # noqa: PLC0415  # the ray extra

        telemetry = self.job.telemetry()
        pool = RayPool(
            self.job,
            self._policies,
            self._ledger,
            self._guard,
            log=self._log,
            stop=self._stop,
            budget=self._budget,
            interrupted=self._interrupted,
            telemetry=telemetry,
        )

        def tick(alive: list[str]) -> None:
            self._tail()
            self._watch(feeder, alive)

        try:
            await pool.run(tick)
        finally:
            self.counts.actors_lost, self._ray_trips = pool.lost, pool.trips
            if telemetry is not None:
                await asyncio.to_thread(telemetry.shutdown)

    async def _run_processes(self, feeder: asyncio.Future[None]) -> None:
        context = worker_context(litellm=self.job.preloads_litellm())
        owners = [new_owner() for _ in range(self.workers)]
        alive, held = context.Pipe(duplex=False)  # held unwritten: ends with us, however we end
        shared = Shared(self.run_id, self._guard, self._stop, self._budget, self._interrupted,
                        self._audit_spent, dict(os.environ), alive)  # fmt: skip
        processes = []
        # Started with SIGINT ignored (kept across exec), so that a Ctrl-C on the terminal, sent
        # to every process of the group, reaches only this one, even while a worker starts up.
        main = threading.current_thread() is threading.main_thread()
        handler = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
        try:
            for owner in owners:
                process = context.Process(target=work, args=(self.job, shared, owner))
                process.start()
                processes.append(process)
        finally:
            if main:
                signal.signal(signal.SIGINT, handler)
        if self.job.settle_heap:  # while the workers start: this process only tails and feeds
            heap.settle()
        failed: list[str] = []
        released: set[str] = set()
        while any(p.exitcode is None for p in processes):
            await asyncio.sleep(self.job.tail_s)
            self._tail()
            self._watch(feeder, [o for o, p in zip(owners, processes, strict=True) if p.is_alive()])
            for owner, process in zip(owners, processes, strict=True):
                if process.exitcode is not None and owner not in released:
                    released.add(owner)
                    self._ledger.release(owner)  # a dead worker's tasks go to the others
                    if process.exitcode == LOG_FAILED:  # it said why on standard error
                        self._writes.failed(f"could not write {self.job.log_path} (see above)")
                    elif process.exitcode != 0:
                        failed.append(f"{process.pid} exited with {process.exitcode}")
        held.close()  # the workers are done: nobody reads `alive` any more
        alive.close()
        if failed and self._ledger.unfinished():
            raise CascadeError(
                f"worker processes failed ({'; '.join(failed)}); run the same command to resume"
            )

    def _watch(self, feeder: asyncio.Future[None], alive: list[str]) -> None:
        """Stop the workers if the input cannot be read; reclaim stalled workers' leases."""
        if feeder.done() and not feeder.cancelled() and feeder.exception() is not None:
            self._stop.set()  # the workers finish what they hold; the error is raised after
        now = time.monotonic()
        if now - self._reclaimed_at > _RECLAIM_EVERY_S:
            self._reclaimed_at = now
            with self._writes.guard(self._store.path):
                self._ledger.reclaim(alive=alive)

    async def _feed(self, lines: Iterator[Line]) -> None:
        """Read the input into the ledger, a window ahead of the workers, from where it stopped."""
        skip = self.counts.read_before = self._ledger.position().lines_read
        batch: list[Entry] = []
        if self._stop.is_set():
            return
        for line in lines:
            if line.number <= skip:
                continue
            self.counts.lines += 1
            batch.append(self._entry(line))
            if len(batch) < _INGEST_BATCH:
                continue
            # The workers may be other processes: only the store can say how far they are.
            while self._ledger.unfinished() > self.job.window and not self._stop.is_set():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            if self._stop.is_set():
                return  # the budget is spent: read no further, so a resume reads on from here
            with self._writes.guard(self._store.path):
                self._ledger.ingest(batch)
            batch = []
            await asyncio.sleep(0)
        with self._writes.guard(self._store.path):
            self._ledger.ingest(batch, finished=True)

    def _entry(self, line: Line) -> Entry:
        if line.task is None:
            return self._quarantined(line, line.problem or "not a task")
        serving = self._policies.serving(line.task)  # an untyped task takes its policy's type
        if serving is None:
            served = ", ".join(self._policies.task_types())
            return self._quarantined(
                line, f"no policy serves task type {line.task.type!r} ({served})"
            )
        policy, task = serving
        limit = policy.spec.max_input_bytes
        if limit is not None and (size := input_bytes(line.task)) > limit:
            return self._quarantined(
                line, f"input is {size} bytes, over max_input_bytes = {limit} in {policy.path}"
            )
        return Entry(line.number, task=task)

    def _quarantined(self, line: Line, reason: str) -> Entry:
        task_id = line.raw.get("id") if isinstance(line.raw, dict) else None
        outcome = None
        if isinstance(task_id, str) and task_id:
            outcome = Outcome.quarantined(self.run_id, line.raw, f"line {line.number}: {reason}")
        return Entry(line.number, reason=reason, raw=line.raw, outcome=outcome)

    def _tail(self) -> None:
        """Append new results and quarantined lines to the files; count them; watch the budget."""
        tally = self.counts.tally
        out, quarantine = self._files
        while rows := self._ledger.results_after(self._cursors[0]):
            self._write(out, "".join(_json_line(row.line) for row in rows))
            self._cursors[0] = rows[-1].rowid
            for row in rows:
                tally.done += 1
                tally.accepted += row.status == "accepted"
                self.counts.failed += row.status == "failed"
                tally.escalated += row.escalated
                self.counts.repeated += row.executions > 1 and not self._earlier_rows
            self.counts.results += len(rows)
            with self._writes.guard(self._store.path):
                self._drift.results(rows)
        while entries := list(self._ledger.quarantine_after(self._cursors[1])):
            self._write(quarantine, "".join(text + "\n" for _, text in entries))
            self._cursors[1] = entries[-1][0]
            self.counts.quarantined += len(entries)
        with self._writes.guard(self._store.path):
            self._drift.steps()
        self._writes.watch()
        spent, self._cursors[2] = self._ledger.spent(self._cursors[2])
        self.counts.spent_usd += spent
        tally.cost_usd, tally.trouble = self.counts.spent_usd, self._outages.check()
        self._check_budget()
        if self._progress is not None:
            self._progress.update(tally)

    def _write(self, file: IO[str], text: str) -> None:
        """Write to the results or quarantine file, unless a write to it failed (see writes.py)."""
        if file.name not in self._writes.broken:
            with self._writes.guard(file.name):
                file.write(text)
                file.flush()

    def _check_budget(self) -> None:
        """Stop reading input once the budget is spent (the workers stop leasing on their own)."""
        budget = self.job.budget_usd
        spent = max(self.counts.spent_usd, self._budget.spent_usd)
        if budget is not None and spent >= budget and not self._stop.is_set():
            self.counts.budget_reached = True
            self._stop.set()


def _json_line(line: dict[str, Any]) -> str:
    return json.dumps(line, default=to_jsonable) + "\n"
