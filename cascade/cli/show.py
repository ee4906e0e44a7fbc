"""``cascade show STORE TASK_ID``: one task's result, then every step: verdicts, costs, errors."""

from __future__ import annotations

import argparse
from pathlib import Path

from cascade.cli.say import say, say_json
from cascade.errors import ConfigError
from cascade.outcome import Outcome
from cascade.store import Store
from cascade.store.queries import runs_with_task

__all__ = ["command"]


def command(args: argparse.Namespace) -> int:
    """Print the task's result and steps (of the latest run that holds it, or of ``--run``)."""
    if not Path(args.store).is_file():
        raise ConfigError(f"store {args.store} not found")
    with Store(args.store) as store:
        runs = runs_with_task(store, args.task_id)
        if not runs or (args.run is not None and args.run not in runs):
            where = "" if args.run is None else f" in run {args.run}"
            raise ConfigError(f"store {args.store} holds no task {args.task_id!r}{where}")
        run = args.run or runs[0]
        outcome = store.outcome(run, args.task_id)
        steps = store.steps(run, args.task_id)
    if args.json:
        say_json({
            "run_id": run,
            "result": None if outcome is None else outcome.to_result(),
            "steps": [step.to_event() | {"output": step.output} for step in steps],
        })  # fmt: skip
        return 0
    say(
        f"task {args.task_id} in run {run}"
        + (f" ({len(runs)} runs hold it)" if len(runs) > 1 else "")
    )
    if outcome is None:
        say("  no result yet (pending, interrupted, or cut off)")
    else:
        say(_result_line(outcome, len(steps)))
        for reason in outcome.reasons:
            say(f"    reason: {reason}")
        if outcome.output is not None:
            say(f"    output: {_short(outcome.output)}")
    for step in steps:
        served = f" → {step.model_served}" if step.model_served else ""
        say(f"  step {step.step} tier {step.tier} {step.kind} {step.model_requested}{served}:"
            f" {step.decision}, {step.prompt_tokens}+{step.completion_tokens} tokens,"
            f" ${step.cost_usd:.6f}, {step.latency_s:.3f}s")  # fmt: skip
        if step.error:
            say(f"    error: {_short(step.error)}")
        if step.output is not None:
            say(f"    answer: {_short(step.output)}")
        for verdict in step.verdicts:
            mark = "pass" if verdict.passed else "fail"
            why = f": {_short(verdict.reason)}" if verdict.reason else ""
            say(f"    {mark} {verdict.validator}{why}")
    return 0


def _result_line(outcome: Outcome, steps: int) -> str:
    """The result's status, the tier that answered (if one did), its cost and steps."""
    if outcome.tier is None:  # quarantined, or ended before any tier answered
        where = "no tier answered" if steps else "no model was called"
    else:
        where = f"tier {outcome.tier} {outcome.model or ''}".rstrip()
    stored = "1 step" if steps == 1 else f"{steps} steps"
    return f"  {outcome.status}: {where}, ${outcome.cost_usd:.6f}, {stored} stored"


def _short(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
