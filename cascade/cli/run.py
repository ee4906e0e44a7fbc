"""``cascade run``: run a file of tasks, or resume the same job in the same store."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import errno
import os
import signal
import sqlite3
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from cascade.backends.base import Backend
from cascade.backends.routed import close_backend, closing_backend
from cascade.cli.say import say
from cascade.cli.tables import show_summary
from cascade.errors import CascadeError, ConfigError
from cascade.policy import PolicyError, PolicySet, load_policies
from cascade.policy.digest import policy_digest
from cascade.policy.pricing import unpriced_tiers, unrecorded_tiers
from cascade.run.estimate import estimate_cost
from cascade.run.job import Job
from cascade.run.limits import limits_from_flags
from cascade.run.progress import Progress
from cascade.run.review import write_review_queue
from cascade.run.runner import Counts, Runner
from cascade.run.spawning import start_early
from cascade.run.summary import summarize
from cascade.run.tasks_file import count_tasks, read_lines
from cascade.steplog import StepLog, appending
from cascade.store import Store
from cascade.store.holder import holding
from cascade.store.unsaved import side_paths, write_failure

__all__ = ["command", "job_of"]

_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS}
_FREE_SPACE = "Free some space, then run the same command to resume"


def job_of(args: argparse.Namespace) -> Job:
    """The :class:`Job` the command line asks for."""
    return Job(
        tasks=args.tasks,
        policy=args.policy,
        out=args.out,
        store=args.store,
        quarantine=args.quarantine,
        log=args.log,
        review=args.review,
        concurrency=args.concurrency,
        workers=args.workers,
        executor=args.executor,
        ray_address=args.ray_address,
        lease_s=args.lease,
        budget_usd=args.budget,
        record_all_tiers=args.record_all_tiers,
        replay=args.replay,
        backend=args.backend,
        limits=limits_from_flags(args.rpm, args.tpm),
        progress=not args.no_progress,
        max_outage_s=args.max_outage_s,
        retry_failed=args.retry_failed,
        dry_run=args.dry_run,
        grace_s=args.grace,
        otel=args.otel if args.otel is not None else _otel_from_environment(),
        otel_content=args.otel_content,
        settle_heap=bool(getattr(args, "own_process", False)),  # not a caller's of main([...])
    )


def _otel_from_environment() -> str | None:
    """``""`` (export to the standard endpoint) when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set."""
    return "" if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") else None


def command(args: argparse.Namespace) -> int:
    """Run the job; print the summary.

    Exits 0 when every task ran, 2 when a write failed mid-run (a full disk: see
    :mod:`cascade.run.writes`), 3 when the budget stopped the run, 4 when tasks ended
    ``failed`` (a provider unavailable past ``--max-outage-s``, a key refused, a bad backend),
    130 or 143 when SIGINT or SIGTERM interrupted it (rerun to resume).
    """
    try:
        return _command(args)
    except (OSError, sqlite3.OperationalError) as exc:  # a full disk before or after the run
        failure = write_failure(exc, args.store)
        if failure is None or (isinstance(exc, OSError) and exc.errno not in _WRITE_ERRNOS):
            raise
        raise CascadeError(f"{failure}. {_FREE_SPACE}") from exc


def _command(args: argparse.Namespace) -> int:
    """:func:`command`, whose failed writes are told in one line."""
    job = job_of(args)
    policies = load_policies(job.policy)
    source = Path(job.tasks)
    if not source.is_file():
        raise ConfigError(f"tasks file {job.tasks} not found")
    if job.dry_run:
        return _dry_run(job, policies, source)
    total = count_tasks(source)
    job = dataclasses.replace(job, workers=job.worker_count(total))
    if job.workers and job.workers > 1 and job.executor == "processes":
        start_early(litellm=job.preloads_litellm())  # while we check prices
    backend = _checked_backend(job, policies)
    key = {"tasks": str(source.resolve()), "policy": str(Path(job.policy).resolve())}
    # One run per store: a second would reclaim this one's leases, and its results file.
    with closing_backend(backend), holding(job.store), Store(job.store) as store:
        run_id = store.find_run(**key)
        digest = policy_digest(job.policy)
        if run_id is not None:
            _same_policy(store, run_id, digest, job.policy, changed_ok=args.policy_changed == "ok")
        with (
            Path(job.out).open("w", encoding="utf-8") as out,
            job.quarantine_path.open("w", encoding="utf-8") as bad,
            appending(job.log_path) as steps,
        ):
            progress = Progress(total) if job.progress else None
            runner = Runner(job, policies, store, backend=backend, log=StepLog(steps),
                            run_id=run_id, progress=progress)  # fmt: skip
            config = key | {
                "policy_sha256": digest,
                "replay": job.replay,
                "record_all_tiers": job.record_all_tiers,
                "backend": job.backend,
                "out": str(Path(job.out).resolve()),
            }
            store.start_run(runner.run_id, config)
            counts = asyncio.run(_interruptible(runner, runner.run(read_lines(source), out, bad)))
        if counts.input_done and not counts.remaining and counts.write_failed is None:
            store.finish_run(runner.run_id)
        waiting = _review_queue(job, store, runner.run_id, counts)
        summary = summarize(store, runner.run_id)
    _report(job, runner, counts, waiting, resumed=run_id is not None)
    show_summary(summary)
    return _how_it_ended(job, counts)


def _checked_backend(job: Job, policies: PolicySet) -> Backend:
    """The run's backend, once every path is writable and every tier can be priced.

    Built here, so that a bad option fails before anything is read or called.
    """
    if job.executor == "ray":
        from cascade.run.ray_pool import require_ray  # noqa: PLC0415  # the ray extra

        require_ray()
    for path, what in ((job.out, "results file"), (job.quarantine_path, "quarantine file"),
                       (job.log_path, "step log"), (job.review_path, "review queue")):  # fmt: skip
        _writable(Path(path), what)
    backend = job.backend_factory()()
    quote = getattr(backend, "quote", None)
    default = job.replay is None and job.backend is None
    if default and callable(quote) and (unpriced := unpriced_tiers(policies, quote)):
        close_backend(backend)
        raise PolicyError(unpriced)  # every call to such a tier would be refused
    if job.replay is not None:
        from cascade.backends.replay import ReplayBackend  # noqa: PLC0415  # only with --replay

        known = sorted(backend.models) if isinstance(backend, ReplayBackend) else []
        if isinstance(backend, ReplayBackend) and (
            missing := unrecorded_tiers(policies, backend.resolve, backend.name, known)
        ):
            close_backend(backend)
            raise PolicyError(missing)  # every task would fail, one by one
    return backend


def _same_policy(store: Store, run_id: str, digest: str, policy: str, *, changed_ok: bool) -> None:
    """Refuse to resume under policy files edited since the run started, unless told it is ok."""
    started = store.run_config(run_id).get("policy_sha256")
    if started is None or started == digest:
        return
    if not changed_ok:
        raise ConfigError(
            f"{policy} changed since run {run_id} started (sha256 {started[:12]} -> "
            f"{digest[:12]}): rerun with --policy-changed ok to go on under the edited policy "
            "(the tasks done stay as they are), or give a new --store to start over"
        )
    store.amend_run(run_id, policy_sha256=digest)
    say(f"note: {policy} changed since run {run_id} started; the rest runs under the new one")


def _review_queue(job: Job, store: Store, run_id: str, counts: Counts) -> int:
    """Write the review queue; how many tasks wait in it (a failed write is told, after)."""
    try:
        with job.review_path.open("w", encoding="utf-8") as queue:
            return write_review_queue(store, run_id, queue)
    except OSError as exc:
        if counts.write_failed is None:
            counts.write_failed = str(write_failure(exc, str(job.review_path)))
        return 0


def _write_failed(job: Job, counts: Counts) -> str:
    """The one error of a run a failed write stopped: the path, the side file, what to do."""
    kept, failed = counts.kept, str(counts.write_failed)
    if kept is not None:
        where = (f"the {kept.calls} paid calls the store could not take are kept in {kept.path},"
                 " and the next run reads them back into the store")  # fmt: skip
    elif failed.startswith(f"could not write {job.log_path} "):
        where = "the store holds every call and result; the step log lacks the calls since"
    elif failed.startswith(f"could not write {job.store} "):
        sides = " or ".join(str(path) for path in side_paths(job.store))
        where = f"{sides} could not be written either: the calls since are in {job.log_path}"
    else:
        where = "the store holds every result, and the next run writes the results files again"
    return f"{failed}: the run stopped leasing tasks; {where}. {_FREE_SPACE}"


def _how_it_ended(job: Job, counts: Counts) -> int:
    """Say what is left to do, if anything; the exit status (see :func:`command`)."""
    if counts.write_failed is not None:
        raise CascadeError(_write_failed(job, counts))  # one line, and exit status 2
    if counts.interrupted:
        say(f"interrupted ({signal.Signals(counts.interrupted).name}): {counts.remaining} tasks not"
            " done. Rerun the same command to resume.")  # fmt: skip
        return 128 + counts.interrupted
    if counts.budget_reached and (counts.remaining or not counts.input_done):
        unread = "" if counts.input_done else " and the rest of the input is unread"
        say(
            f"budget reached: ${counts.spent_usd:.6f} of ${job.budget_usd:.6f} spent;"
            f" {counts.remaining} tasks not done{unread}."
            " Run the same command with a higher --budget to continue."
        )
        return 3
    if counts.failed:
        say(
            f"{counts.failed} tasks failed (see their reason in {job.out} and the provider health"
            " above). Run the same command with --retry-failed to run them again."
        )
        return 4
    return 0


def _writable(path: Path, what: str) -> None:
    """Fail before any call when ``path`` cannot be written, naming it."""
    try:
        with path.open("a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise ConfigError(f"cannot write the {what} {path}: {exc.strerror or exc}") from exc


def _dry_run(job: Job, policies: PolicySet, source: Path) -> int:
    """Print what the tasks would cost under the policies, calling no model."""
    backend = job.backend_factory()()
    with closing_backend(backend):
        quote = getattr(backend, "quote", None)
        estimate = estimate_cost(read_lines(source), policies, quote if callable(quote) else None)
    for line in estimate.lines():
        say(line)
    return 0


async def _interruptible(runner: Runner, run: Coroutine[Any, Any, Counts]) -> Counts:
    """Run with SIGINT and SIGTERM stopping the run cleanly (see :meth:`Runner.interrupt`)."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, runner.interrupt, signum)
    try:
        return await run
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def _report(job: Job, runner: Runner, counts: Counts, waiting: int, *, resumed: bool) -> None:
    """Where everything went, and what the run did."""
    workers = runner.workers
    kind = "Ray actor" if job.executor == "ray" else "worker"
    say(f"run {runner.run_id} ({'resumed' if resumed else 'started'}, {workers} {kind}"
        f"{'s' * (workers > 1)}):")  # fmt: skip
    before = f" after the {counts.read_before} read before" if counts.read_before else ""
    say(f"  read        {counts.lines} lines{before} ({counts.done_before} tasks were done before)")
    if not counts.lines and not counts.read_before:
        say(f"  warning     {job.tasks} holds no tasks")
    say(f"  results     {job.out} ({counts.results} lines)")
    say(f"  quarantine  {job.quarantine_path} ({counts.quarantined} lines)")
    if counts.duplicates:
        say(f"  duplicates  {counts.duplicates} repeated task ids kept their first result"
            " (each named with its lines in the quarantine file)")  # fmt: skip
    if counts.restored:
        say(f"  restored    {counts.restored} tasks' and audits' calls an earlier run kept aside"
            " (the store could not take them) are in the store now")  # fmt: skip
    if counts.retried:
        say(f"  retried     {counts.retried} tasks that had failed were run again")
    if counts.actors_lost:
        say(f"  lost        {counts.actors_lost} Ray actors died and were replaced")
    if counts.repeated:
        say(f"  repeated    {counts.repeated} tasks were called again after a lost lease")
    say(
        f"  review      {job.review_path} ({waiting} tasks wait for a person; fill in their"
        f" answer, then cascade review import {job.review_path} --store {job.store})"
    )
    say(f"  step log    {job.log_path}")
    say(f"  store       {job.store}  (cascade report {job.store})")
    kept = counts.kept
    aside = "" if kept is None else f" (${kept.cost_usd:.6f} of it in {kept.path})"
    say(f"  spent       ${counts.spent_usd:.6f}{aside}")
