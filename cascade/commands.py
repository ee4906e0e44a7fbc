"""The ``policy check``, ``run`` and ``report`` commands. Each returns an exit status."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from cascade.errors import ConfigError
from cascade.policy import PolicyError, load_policies
from cascade.report import render, report
from cascade.runner import Runner, read_lines
from cascade.steplog import StepLog
from cascade.store import Store

__all__ = ["policy_check", "report_command", "run_command"]


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


def run_command(
    tasks: str,
    policy: str,
    *,
    out: str,
    store_path: str,
    quarantine: str | None,
    log_path: str | None,
    concurrency: int,
    replay: str | None,
) -> int:
    """Run a file of tasks; print where everything went and the run's summary."""
    policies = load_policies(policy)
    source = Path(tasks)
    if not source.is_file():
        raise ConfigError(f"tasks file {tasks} not found")
    out_path = Path(out)
    quarantine_path = Path(quarantine or out_path.with_suffix(".quarantine.jsonl"))
    steps_path = Path(log_path or out_path.with_suffix(".steps.jsonl"))
    backend = None
    if replay is not None:
        from cascade.backends import ReplayBackend  # noqa: PLC0415

        backend = ReplayBackend.from_dataset(replay)
    with (
        Store(store_path) as store,
        out_path.open("w", encoding="utf-8") as results,
        quarantine_path.open("w", encoding="utf-8") as bad,
        steps_path.open("a", encoding="utf-8") as steps,
    ):
        runner = Runner(
            policies, store=store, out=results, quarantine=bad, backend=backend, log=StepLog(steps)
        )
        store.start_run(runner.run_id, {"tasks": tasks, "policy": policy, "replay": replay})
        counts = asyncio.run(runner.run(read_lines(source), concurrency))
        store.finish_run(runner.run_id)
        summary = render(report(store, runner.run_id))
    _say(f"run {runner.run_id}: {counts.lines} lines read")
    _say(f"  results     {out_path} ({counts.results} lines)")
    _say(f"  quarantine  {quarantine_path} ({counts.quarantined} lines)")
    if counts.duplicates:
        _say(f"  duplicates  {counts.duplicates} repeated task ids kept their first result")
    _say(f"  step log    {steps_path}")
    _say(f"  store       {store_path}  (cascade report {store_path})")
    _say(summary)
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
