"""Turn a validated policy into the engine's parts: tiers, validators and the task router.

Each builder raises :class:`cascade.errors.ConfigError` with the field it concerns, so that the
loader can name the file and line.
"""

from __future__ import annotations

import importlib
import inspect
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pydantic

from cascade.audit.plan import AuditPlan
from cascade.errors import ConfigError
from cascade.policy.spec import (
    AgreementSpec,
    AuditSpec,
    CompilesSpec,
    ConfidenceSpec,
    FunctionCallSpec,
    GroundedSpec,
    JsonSchemaSpec,
    JudgeSpec,
    MatchesSpec,
    MypySpec,
    NotMissingSpec,
    OneOfSpec,
    PolicySpec,
    PriceSpec,
    PydanticSpec,
    PythonSpec,
    SelfConsistencySpec,
    TestsSpec,
    TierSpec,
    ValidatorSpec,
    VoteSpec,
)
from cascade.store.verdicts import VerdictCache
from cascade.tokens import count_tokens
from cascade.types import Message, Price, Task, Tier
from cascade.validators import (
    Limits,
    Validator,
    agreement,
    compiles,
    confidence,
    function_call,
    grounded,
    json_schema,
    judge,
    matches,
    mypy_clean,
    not_missing,
    one_of,
    passes_tests,
    pydantic_model,
    self_consistency,
    vote,
)

__all__ = ["FieldError", "audit_plan", "build_tier", "build_validator", "router"]


class FieldError(ConfigError):
    """A configuration error in one field of a policy entry."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _price(spec: PriceSpec | None) -> Price | None:
    return None if spec is None else Price(spec.input_usd_per_mtok, spec.output_usd_per_mtok)


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
        price=_price(spec.price),
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
        price=_price(spec.price),
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
        path = _relative(base, schema, "response_schema")
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise FieldError("response_schema", f"cannot read {schema}: {exc}") from exc
        if not isinstance(schema, dict):
            raise FieldError("response_schema", f"{path.name} does not hold a JSON object")
    name = str(schema.get("title") or "answer")
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}


def _import(target: str, field: str) -> Any:
    module_name, _, attribute = target.partition(":")
    try:
        found: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as exc:
        raise FieldError(field, f"cannot import {target}: {exc}") from exc
    return found


def _relative(base: Path, name: str, field: str) -> Path:
    path = (base / name).resolve()
    if not path.is_file():
        raise FieldError(field, f"file {name} not found (looked for {path})")
    return path


def _schema(spec: JsonSchemaSpec, base: Path) -> Validator:
    schema = spec.schema_
    try:
        found = _relative(base, schema, "schema") if isinstance(schema, str) else schema
        return json_schema(found)
    except FieldError:
        raise
    except ConfigError as exc:
        raise FieldError("schema", str(exc)) from exc


def _tests(spec: TestsSpec, base: Path, cache: VerdictCache | None = None) -> Validator:
    limits = Limits(wall_s=spec.wall_s, cpu_s=spec.cpu_s, memory_mb=spec.memory_mb)
    if spec.file is not None and spec.snippets is not None:
        raise FieldError("file", "give tests as a file or as snippets, not both")
    tests: Path | list[str] | None = spec.snippets
    if spec.file is not None:
        tests = _relative(base, spec.file, "file")
    return passes_tests(
        tests,
        setup=spec.setup,
        limits=limits,
        missing=spec.missing,
        cache=cache,
        isolated_only=spec.isolated_tests_only,
        isolation=spec.isolation,
    )


def _python(spec: PythonSpec) -> Validator:
    factory = _import(spec.factory, "factory")
    if not callable(factory):
        raise FieldError("factory", f"{spec.factory} is not callable")
    try:
        made = factory(**spec.args)
    except (TypeError, ValueError, ConfigError) as exc:
        raise FieldError("args", f"{spec.factory}(**args) failed: {exc}") from exc
    if not callable(made):
        raise FieldError(
            "factory", f"{spec.factory} returned {type(made).__name__}, not a validator"
        )
    return made  # type: ignore[no-any-return]  # checked callable; verdicts are checked at run time


def _pydantic(spec: PydanticSpec) -> Validator:
    model = _import(spec.model, "model")
    if not (inspect.isclass(model) and issubclass(model, pydantic.BaseModel)):
        raise FieldError("model", f"{spec.model} is not a pydantic model class")
    try:
        return pydantic_model(model)
    except ConfigError as exc:
        raise FieldError("model", str(exc)) from exc


_SIMPLE: dict[type[Any], Callable[[Any], Validator]] = {
    GroundedSpec: lambda s: grounded(
        s.fields,
        source=s.source,
        ignore_case=s.ignore_case,
        collapse_whitespace=s.collapse_whitespace,
        numbers=s.numbers,
        dates=s.dates,
    ),
    CompilesSpec: lambda s: compiles(max_chars=s.max_chars),
    MypySpec: lambda s: mypy_clean(strict=s.strict, allow_ignores=s.allow_ignores),
    JudgeSpec: lambda s: judge(
        s.rubric,
        model=s.model,
        reference_field=s.reference_field,
        threshold=s.threshold,
        price=_price(s.price),
    ),
    OneOfSpec: lambda s: one_of(s.labels, ignore_case=s.ignore_case),
    FunctionCallSpec: lambda s: function_call(),
    ConfidenceSpec: lambda s: confidence(s.threshold),
    NotMissingSpec: lambda s: not_missing(s.fields),
    MatchesSpec: lambda s: matches(s.pattern, hint=s.hint, ignore_case=s.ignore_case),
    AgreementSpec: lambda s: agreement(
        s.model, compare=s.compare, params=s.params, price=_price(s.price)
    ),
    VoteSpec: lambda s: vote(
        s.models,
        k=s.k,
        compare=s.compare,
        params=s.params,
        voter_params=s.voter_params,
        voter_prices={m: p for m, v in s.voter_prices.items() if (p := _price(v)) is not None},
    ),
    SelfConsistencySpec: lambda s: self_consistency(s.samples, k=s.k, compare=s.compare),
    PydanticSpec: _pydantic,
    PythonSpec: _python,
}


def build_validator(
    spec: ValidatorSpec, base: Path, *, cache: VerdictCache | None = None
) -> Validator:
    """The validator a ``[[validators]]`` entry describes; paths resolve against ``base``.

    ``cache`` keeps the verdicts of sandboxed tests (``cascade bench`` and ``optimize`` pass one).
    """
    if isinstance(spec, JsonSchemaSpec):
        return _schema(spec, base)
    if isinstance(spec, TestsSpec):
        return _tests(spec, base, cache)
    try:
        return _SIMPLE[type(spec)](spec)
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
