"""Turn a validated policy into the engine's parts: tiers, validators and the task router.

Each builder raises :class:`cascade.errors.ConfigError` with the field it concerns, so that the
loader can name the file and line.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cascade.audit.plan import AuditPlan
from cascade.errors import ConfigError
from cascade.policy.fields import Context, FieldError, price_of, relative
from cascade.policy.spec import AuditSpec, PolicySpec, TierSpec, ValidatorSpec
from cascade.store.verdicts import VerdictCache
from cascade.tokens import count_tokens
from cascade.types import Message, Task, Tier
from cascade.validators import Validator

__all__ = ["FieldError", "audit_plan", "build_tier", "build_validator", "router"]


def audit_plan(spec: AuditSpec) -> AuditPlan:
    """The audit a policy's ``[audit]`` asks for (its model or judge checked present)."""
    model = spec.judge or spec.model
    assert model is not None  # the loader refuses an audit with neither
    return AuditPlan(
        share=spec.share,
        model=model,
        judge=spec.judge is not None,
        rubric=spec.rubric,
        compare=spec.compare,
        max_cost_usd=spec.max_cost_usd,
        seed=spec.seed,
        params=dict(spec.params),
        price=price_of(spec.price),
    )


def build_tier(spec: TierSpec, base: Path) -> Tier:
    """The engine's tier for a tier table; a schema file resolves against ``base``."""
    params = dict(spec.params)
    if spec.temperature is not None:
        params["temperature"] = spec.temperature
    if spec.max_tokens is not None:
        params["max_tokens"] = spec.max_tokens
    if spec.response_schema is not None:
        params["response_format"] = _response_format(spec.response_schema, base)
    if spec.backend == "http":
        from cascade.backends.http_wire import model_problem, params_problem  # noqa: PLC0415

        for model in (spec.model, *spec.fallbacks):
            if (problem := model_problem(model)) is not None:
                raise FieldError("backend", problem)
            if (problem := params_problem(model, params)) is not None:
                raise FieldError("params", problem)
    return Tier(
        spec.model,
        reasks=spec.reasks,
        fallbacks=tuple(spec.fallbacks),
        timeout_s=spec.timeout_s,
        retries=spec.retries,
        params=params,
        price=price_of(spec.price),
        few_shot=spec.examples,
        trusted=spec.trusted,
        expected_latency_s=spec.expected_latency_s,
        hedge=spec.hedge,
        batch=spec.batching(),
        backend=spec.backend,
    )


def _response_format(schema: str | dict[str, Any], base: Path) -> dict[str, Any]:
    """OpenAI's structured-output ``response_format`` for a schema file or table."""
    if isinstance(schema, str):
        path = relative(base, schema, "response_schema")
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise FieldError("response_schema", f"cannot read {schema}: {exc}") from exc
        if not isinstance(schema, dict):
            raise FieldError("response_schema", f"{path.name} does not hold a JSON object")
    name = str(schema.get("title") or "answer")
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}


def build_validator(
    spec: ValidatorSpec, base: Path, *, cache: VerdictCache | None = None
) -> Validator:
    """The validator a ``[[validators]]`` entry describes; paths resolve against ``base``.

    ``cache`` keeps the verdicts of sandboxed tests (``cascade bench`` and ``optimize`` pass one).
    """
    try:
        return spec.build(Context(base, cache))
    except FieldError:
        raise
    except ConfigError as exc:
        raise FieldError("kind", str(exc)) from exc


def router(policy: PolicySpec) -> Callable[[Task, tuple[Message, ...]], Sequence[int]] | None:
    """Which tiers a task tries: from its start rules, minus tiers its prompt overflows."""
    windows = [tier.context_window for tier in policy.tiers]
    if not policy.start and all(window is None for window in windows):
        return None
    rules = policy.start
    counts_tokens = any(w is not None for w in windows) or any(r.min_input_tokens for r in rules)

    def route(task: Task, messages: tuple[Message, ...]) -> list[int]:
        tokens = count_tokens(messages) if counts_tokens else 0
        tags = set(_tags(task))
        start = 0
        for rule in rules:
            by_tag = bool(rule.tags) and bool(tags.intersection(rule.tags))
            by_size = rule.min_input_tokens is not None and tokens >= rule.min_input_tokens
            if by_tag or by_size:
                start = max(start, rule.tier)
        return [
            index
            for index in range(start, len(windows))
            if windows[index] is None or tokens <= (windows[index] or 0)
        ]

    return route


def _tags(task: Task) -> list[str]:
    found = task.extra.get("tags", task.meta.get("tags", []))
    if isinstance(found, str):
        return [found]
    return [tag for tag in found if isinstance(tag, str)] if isinstance(found, list) else []
