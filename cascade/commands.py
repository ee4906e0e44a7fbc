"""The ``policy check``, ``run`` and ``report`` commands. Each returns an exit status."""

from __future__ import annotations

import asyncio
import functools
import importlib
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from cascade.backends.base import Backend
from cascade.backends.routed import closing_backend
from cascade.engine import default_backend
from cascade.errors import ConfigError
from cascade.gold import load_gold, render_score, score_results
from cascade.guard import Limit
from cascade.policy import PolicyError, load_policies
from cascade.progress import Progress
from cascade.report import render, report
from cascade.review import import_reviews, results_paths, rewrite_results, write_review_queue
from cascade.runner import Runner, RunSettings
from cascade.steplog import StepLog
from cascade.store import Store
from cascade.tasks_file import count_tasks, read_lines

__all__ = [
    "RunOptions",
    "backend_from",
    "eval_command",
    "policy_check",
    "report_command",
    "review_import",
    "run_command",
]


def _say(text: str) -> None:
    print(text)  # noqa: T201  # a command's output


def policy_check(paths: Sequence[str]) -> int:
    """Check policy files or directories: ``file:line: problem`` per problem, 1 if any."""
    failed = False
    for path in paths:
        try:
            policies = load_policies(path)
        except PolicyError as exc:
            failed = True
            for problem in exc.problems:
                _say(str(problem))
            continue
        for policy in policies:
            tiers = " → ".join(tier.model for tier in policy.ladder)
            _say(f"{policy.path}: ok: {policy.task_type}: {tiers}; {policy.validate!r}")
    return 1 if failed else 0


@dataclass(frozen=True, slots=True)
class RunOptions:
    """The options of ``cascade run`` besides the tasks file and the policy."""

    out: str = "results.jsonl"
    store: str = "run.db"
    quarantine: str | None = None
    log: str | None = None
    review: str | None = None
    concurrency: int = 16
    workers: int | None = None
    budget_usd: float | None = None
    replay: str | None = None
    backend: str | None = None
    limits: Mapping[str, Limit] = field(default_factory=dict)
    lease_s: float = 300.0
    progress: bool = True
    record_all_tiers: float = 0.0


def run_command(tasks: str, policy: str, options: RunOptions) -> int:
    """Run a file of tasks, or resume the same job in the same store; print the summary.

    Exits 0 when every task was run, 3 when the budget stopped the run before that.
    """
    policies = load_policies(policy)
    source = Path(tasks)
    if not source.is_file():
        raise ConfigError(f"tasks file {tasks} not found")
    out_path = Path(options.out)
    quarantine_path = Path(options.quarantine or out_path.with_suffix(".quarantine.jsonl"))
    steps_path = Path(options.log or out_path.with_suffix(".steps.jsonl"))
    review_path = Path(options.review or out_path.with_suffix(".review.jsonl"))
    backend, factory = _backend(options)
    total = count_tasks(source)
    workers = options.workers or _auto_workers(total)
    job = {"tasks": str(source.resolve()), "policy": str(Path(policy).resolve())}
    with closing_backend(backend), Store(options.store) as store:
        run_id = store.find_run(**job)
        resumed = run_id is not None
        with (
            out_path.open("w", encoding="utf-8") as results,
            quarantine_path.open("w", encoding="utf-8") as bad,
            steps_path.open("a", encoding="utf-8", buffering=1 << 20) as steps,
        ):
            runner = Runner(
                policies,
                store=store,
                out=results,
                quarantine=bad,
                backend=backend,
                backend_factory=factory,
                log=StepLog(steps),
                log_path=str(steps_path),
                run_id=run_id,
                guard=policies.guard(options.limits),
                settings=RunSettings(
                    concurrency=options.concurrency,
                    workers=workers,
                    lease_s=options.lease_s,
                    budget_usd=options.budget_usd,
                    record_all_tiers=options.record_all_tiers,
                ),
                progress=Progress(total) if options.progress else None,
            )
            config = {
                **job,
                "replay": options.replay,
                "record_all_tiers": options.record_all_tiers,
                "backend": options.backend,
                "out": str(out_path.resolve()),
            }
            store.start_run(runner.run_id, config)
            counts = asyncio.run(runner.run(read_lines(source)))
        if counts.input_done and not counts.remaining:
            store.finish_run(runner.run_id)
        with review_path.open("w", encoding="utf-8") as queue:
            waiting = write_review_queue(store, runner.run_id, queue)
        summary = render(report(store, runner.run_id))
    verb = "resumed" if resumed else "started"
    _say(f"run {runner.run_id} ({verb}, {workers} worker{'s' * (workers > 1)}):")
    _say(f"  read        {counts.lines} lines ({counts.done_before} tasks were done before)")
    _say(f"  results     {out_path} ({counts.results} lines)")
    _say(f"  quarantine  {quarantine_path} ({counts.quarantined} lines)")
    if counts.duplicates:
        _say(f"  duplicates  {counts.duplicates} repeated task ids kept their first result")
    if counts.repeated:
        _say(f"  repeated    {counts.repeated} tasks were called again after a lost lease")
    _say(
        f"  review      {review_path} ({waiting} tasks wait for a person;"
        f" fill in their answer, then cascade review import {review_path} --store {options.store})"
    )
    _say(f"  step log    {steps_path}")
    _say(f"  store       {options.store}  (cascade report {options.store})")
    _say(f"  spent       ${counts.spent_usd:.6f}")
    _say(summary)
    if counts.budget_reached and (counts.remaining or not counts.input_done):
        unread = "" if counts.input_done else " and the rest of the input is unread"
        _say(
            f"budget reached: ${counts.spent_usd:.6f} of ${options.budget_usd:.6f} spent;"
            f" {counts.remaining} tasks not done{unread}."
            " Run the same command with a higher --budget to continue."
        )
        return 3
    return 0


def _auto_workers(total: int | None) -> int:
    """Worker processes by default: one per core, and one per thousand tasks at most.

    A process takes seconds to start (litellm's import alone is 3 s), so small jobs stay in one.
    """
    cores = os.cpu_count() or 1
    return max(1, min(cores, (total or 0) // 1000))


def _backend(options: RunOptions) -> tuple[Backend, Callable[[], Backend]]:
    """The backend for this process and the factory worker processes build theirs with.

    Replay, a named factory, or litellm. The backend is built here, so that a bad option fails
    before anything starts.
    """
    if options.replay is not None and options.backend is not None:
        raise ConfigError("--replay and --backend cannot be used together")
    factory: Callable[[], Backend] = default_backend
    if options.replay is not None:
        from cascade.backends import ReplayBackend  # noqa: PLC0415

        factory = functools.partial(ReplayBackend.from_dataset, options.replay)
    elif options.backend is not None:
        factory = functools.partial(backend_from, options.backend)
    return factory(), factory


def backend_from(spec: str) -> Backend:
    """Build a backend from ``module:factory`` (the factory takes no arguments)."""
    module_name, _, name = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(f"--backend {spec}: cannot import it ({exc})") from exc
    if not callable(factory):
        raise ConfigError(f"--backend {spec}: not callable")
    return cast(Backend, factory())


def review_import(path: str, store_path: str) -> int:
    """Record the answers of a review file as accepted results; rewrite the results files."""
    if not Path(store_path).is_file():
        raise ConfigError(f"store {store_path} not found")
    with Store(store_path) as store:
        done = import_reviews(store, path)
        _say(
            f"imported {done.imported} reviewed answers into {store_path}"
            f" ({done.already} were imported before, {done.unanswered} lines have no answer yet)"
        )
        for run_id, out in results_paths(store, done.runs):
            lines = rewrite_results(store, run_id, out)
            _say(f"  results of run {run_id} written again: {out} ({lines} lines)")
    return 0


def eval_command(results: str, gold: str, *, as_json: bool) -> int:
    """Score a results file against gold answers."""
    score = score_results(results, load_gold(gold))
    if as_json:
        json.dump(score.to_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _say(render_score(score))
    return 0


def report_command(store_path: str, *, as_json: bool, run_id: str | None) -> int:
    """Print the summary of a store, as text or one JSON object."""
    if not Path(store_path).is_file():
        raise ConfigError(f"store {store_path} not found")
    with Store(store_path) as store:
        summary = report(store, run_id)
    if as_json:
        json.dump(summary.to_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _say(render(summary))
    return 0
