"""``cascade truth --by policy``: an answer is correct when it passes the user's own validators.

The policy (a file, or a folder with one per task type) is loaded as every command loads it,
and each task is judged by the policy that serves its kind, as ``cascade optimize --policy``
pairs them: a task of a kind no policy serves is an error naming the kinds. An answer is
correct when it passes every policy-wide ``[[validators]]`` entry of its task's policy, built
by the policy loader's own builder and run on the recorded answer as a replay runs them, with
sandboxed verdicts kept in the :class:`~cascade.store.verdicts.VerdictCache`. Entries that call
a model (``judge``, ``agreement``, ``vote``, ``self_consistency``) or read a score the recorded
answer may lack (``confidence``) are not run, and are named; a tier's own validators judge only
that tier's answers in a run, so they do not define "correct" either.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from dataclasses import dataclass

from cascade.backends.replay import alt_rows
from cascade.errors import ConfigError
from cascade.policy import PolicySet, load_policies
from cascade.policy.build import build_validator
from cascade.store.verdicts import VerdictCache
from cascade.traffic.truth import Judge, Row, Truth
from cascade.types import Attempt, Task, Tier, Usage
from cascade.validators import Validator, run_validator
from cascade.validators.combine import all_of

__all__ = ["PolicyTruth", "policy_truth"]

_NOT_RUN = {
    "judge": "calls a model",
    "agreement": "calls a model",
    "vote": "calls a model",
    "self_consistency": "calls a model",
    "confidence": "reads a score a recorded answer may not have",
}


@dataclass(frozen=True, slots=True)
class PolicyTruth:
    """The judge of every row by a policy's validators, and the definition it states."""

    judge: Judge
    truth: Truth


def policy_truth(
    path: str, tasks: Sequence[Task], rows: Sequence[tuple[str, Row]], *, cache: bool = True
) -> PolicyTruth:
    """Run the policy's validators on every answer of ``rows``; nothing is written."""
    verdicts = VerdictCache() if cache else None
    policies = load_policies(path, cache=verdicts)
    by_id = {task.id: task for task in tasks}
    unserved = sorted({t.type for t in tasks if policies.for_task(t) is None})
    if unserved:
        raise ConfigError(
            f"--policy {path}: it serves task_type {', '.join(policies.task_types())}, and the "
            f"dataset's tasks of kind {', '.join(unserved)} have no policy (give a folder with "
            "one policy per kind)"
        )
    checks, run, left_out = _checks(policies, verdicts)
    answers: list[tuple[Validator, Attempt]] = []
    keys: list[tuple[str, int]] = []
    for where, row in rows:
        served = policies.serving(by_id[str(row["task_id"])]) if row["task_id"] in by_id else None
        if served is None:
            raise ConfigError(f"{where}: task {row['task_id']} is not in tasks.jsonl")
        policy, task = served
        model = str(row["model"])
        texts = [row["output"], *(a["output"] for a in alt_rows(row, where))]
        for index, text in enumerate(texts):
            attempt = Attempt(task, 0, Tier(model), model, model, text, Usage(0, 0), 0.0, 0.0)
            answers.append((checks[policy.task_type], attempt))
            keys.append((where, index))
    found = dict(zip(keys, asyncio.run(_judge_all(answers)), strict=True))
    truth = Truth("policy", policy=path, validators=tuple(run), left_out=tuple(left_out))
    return PolicyTruth(lambda where, _row, index: found[(where, index)], truth)


def _checks(
    policies: PolicySet, verdicts: VerdictCache | None
) -> tuple[dict[str, Validator], list[str], list[str]]:
    """Each policy's runnable validators as one, by task type; their reprs; those left out."""
    checks: dict[str, Validator] = {}
    run: list[str] = []
    left_out: list[str] = []
    for policy in policies:
        built = []
        for entry in policy.spec.validators:
            why = _NOT_RUN.get(entry.kind)
            if why is not None:
                left_out.append(f"{policy.path.name}: {entry.kind} ({why})")
                continue
            built.append(build_validator(entry, policy.path.parent, cache=verdicts))
        if not built:
            raise ConfigError(
                f"--policy {policy.path}: it has no [[validators]] that truth can run on recorded "
                "answers" + (f" ({'; '.join(left_out)})" if left_out else "")
            )
        checks[policy.task_type] = built[0] if len(built) == 1 else all_of(*built)
        run += [repr(v) for v in built]
    return checks, run, left_out


async def _judge_all(answers: Sequence[tuple[Validator, Attempt]]) -> list[bool]:
    # Sandboxed checks start processes: as many at once as there are cores.
    limit = asyncio.Semaphore(max(1, os.cpu_count() or 1))

    async def one(validator: Validator, attempt: Attempt) -> bool:
        async with limit:
            return (await run_validator(validator, attempt)).passed

    return list(await asyncio.gather(*(one(v, a) for v, a in answers)))
