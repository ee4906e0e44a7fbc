"""``cascade bench``: replay a recorded dataset through ladders and print cost against pass rate."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from typing import Any

from cascade.bench.dataset import Dataset, load_dataset
from cascade.bench.evaluate import score_ladder, score_models, score_oracle
from cascade.engine import Cascade
from cascade.errors import ConfigError
from cascade.retry import RetryPolicy
from cascade.types import Attempt, Tier, Verdict
from cascade.validators.base import Validator, run_validator
from cascade.validators.calls import function_call

__all__ = ["ByKind", "bench", "default_validators"]


class ByKind:
    """Run the validator registered for each task's kind; kinds without one pass unchecked."""

    def __init__(self, validators: Mapping[str, Validator]) -> None:
        self._validators = dict(validators)

    def __repr__(self) -> str:
        return f"by_kind({', '.join(f'{k}={v!r}' for k, v in self._validators.items())})"

    async def __call__(self, attempt: Attempt) -> Verdict:
        """Judge ``attempt`` with its kind's validator."""
        validator = self._validators.get(attempt.task.type)
        if validator is None:
            return Verdict(True, reason=f"no validator for kind {attempt.task.type!r}")
        return await run_validator(validator, attempt)


def default_validators() -> dict[str, Validator]:
    """The built-in checks each task kind gets in a benchmark."""
    return {"function_call": function_call()}


def _parse_ladder(text: str, data: Dataset) -> tuple[Tier, ...]:
    models = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in models if data.backend.resolve(m) is None]
    if not models or unknown:
        raise ConfigError(
            f"--ladder {text!r}: unknown model(s) {', '.join(unknown) or '(none given)'}; "
            f"{data.name} has {', '.join(data.models)}"
        )
    # Replays never fail transiently, so there is nothing to wait for between retries.
    return tuple(Tier(m, retries=0) for m in models)


def bench(dataset: str, ladders: Sequence[str], *, as_json: bool, concurrency: int) -> int:
    """Score every model, the oracle and each ladder on ``dataset``; print a table or JSON."""
    data = load_dataset(dataset)
    validate = ByKind(default_validators())
    results: dict[str, Any] = {
        "dataset": data.name,
        "tasks": len(data.tasks),
        "models": {m: s.to_json() for m, s in score_models(data).items()},
        "oracle": score_oracle(data).to_json(),
        "ladders": {},
    }
    for text in ladders:
        cascade = Cascade(
            _parse_ladder(text, data),
            validate,
            backend=data.backend,
            log=False,
            retry=RetryPolicy(base_s=0.0, jitter=0.0),
        )
        score = asyncio.run(score_ladder(data, cascade, concurrency=concurrency))
        results["ladders"][" → ".join(t.model for t in cascade.ladder)] = score.to_json()
    print(json.dumps(results, indent=2) if as_json else _table(results, data))  # noqa: T201  # the report
    return 0


def _table(results: dict[str, Any], data: Dataset) -> str:
    validators = default_validators()
    kinds = sorted({task.type for task in data.tasks})
    lines = [
        f"{data.name}: {results['tasks']} tasks, replayed (no model calls)",
        f"validators: {', '.join(f'{k}: {v!r}' for k, v in validators.items())}",
    ]
    unchecked = [k for k in kinds if k not in validators]
    if unchecked:
        lines.append(f"no built-in validator yet for: {', '.join(unchecked)} (accepted unchecked)")
    rows = [(f"model  {n}", s) for n, s in sorted(results["models"].items(), key=_by_cost)]
    rows.append(("oracle (cheapest correct model per task)", results["oracle"]))
    width = max(len(label) for label, _ in rows + [(f"ladder {n}", 0) for n in results["ladders"]])
    lines += ["", f"{'':{width}} {'pass rate':>9} {'$/task':>10} {'total $':>9}"]
    lines += [_row(label, score, width) for label, score in rows]
    for name, score in results["ladders"].items():
        lines.append(_row(f"ladder {name}", score, width))
        lines.append(
            f"{'':9}accepted by tier {score['accepted_by_tier']}, escalated "
            f"{score['escalation_rate']:.1%}, false accepts {score['false_accept_rate']:.1%}, "
            f"false rejects {score['false_reject_rate']:.1%}, statuses {score['statuses']}"
        )
    return "\n".join(lines)


def _by_cost(item: tuple[str, Mapping[str, Any]]) -> float:
    return float(item[1]["cost_usd"])


def _row(label: str, score: Mapping[str, Any], width: int) -> str:
    return (
        f"{label:{width}} {score['pass_rate']:>9.1%} {score['cost_per_task_usd']:>10.6f} "
        f"{score['cost_usd']:>9.4f}"
    )
