r"""Load policy files and policy directories; every error names ``file:line`` and the field.

A policy loads into a :class:`~cascade.engine.Plan`: a value, which any command runs with its
own :class:`~cascade.engine.Settings`.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "labels.toml").write_text(
...     'task_type = "labels"\n[[tiers]]\nmodel = "small"\n'
...     '[[validators]]\nkind = "one_of"\nlabels = ["yes", "no"]\n')
>>> plan = load_policy(folder / "labels.toml").plan
>>> [tier.model for tier in plan.tiers], plan.validator
(['small'], one_of(['yes', 'no']))
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pydantic

from cascade.audit.drift import DriftPlan
from cascade.audit.plan import AuditPlan
from cascade.engine.plan import Plan, Route
from cascade.errors import ConfigError
from cascade.policy.build import FieldError, audit_plan, build_tier, build_validator, router
from cascade.policy.locate import TomlLines, dotted
from cascade.policy.spec import PolicySpec, TierSpec, ValidatorSpec
from cascade.route.router import learned_route
from cascade.store.verdicts import VerdictCache
from cascade.types import HUMAN, Message, Task, Tier
from cascade.validators import Validator, all_of

__all__ = ["Policy", "PolicyError", "PolicySet", "Problem", "load_policies", "load_policy"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong in a policy file, where it is."""

    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.field}: " if self.field else ""
        return f"{self.file}:{self.line}: {where}{self.message}"


class PolicyError(ConfigError):
    """One or more problems in policy files; ``str()`` gives one ``file:line: ...`` per line."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(map(str, problems)))
        self.problems = tuple(problems)


@dataclass(frozen=True, slots=True)
class Policy:
    """A loaded policy file: its spec, and the :class:`~cascade.engine.Plan` it describes."""

    path: Path
    spec: PolicySpec
    plan: Plan

    @property
    def task_type(self) -> str:
        """The task type this policy serves."""
        return self.spec.task_type

    @property
    def ladder(self) -> tuple[Tier, ...]:
        """The plan's tiers."""
        return self.plan.tiers

    @property
    def validate(self) -> Validator:
        """The policy-wide validator."""
        return self.plan.validator

    @property
    def drift(self) -> DriftPlan | None:
        """The policy's drift alarms, if it asks for them."""
        spec = self.spec.drift
        if spec is None:
            return None
        return DriftPlan(spec.window, spec.baseline, spec.check_every, spec.false_alarm,
                         spec.on_drift, tuple(spec.acceptance),
                         tuple(spec.disagreement), tuple(spec.disagreement_audits))  # fmt: skip

    @property
    def audit(self) -> AuditPlan | None:
        """The policy's shadow audit, if it asks for one."""
        return None if self.spec.audit is None else audit_plan(self.spec.audit)

    @property
    def examples(self) -> tuple[Message, ...]:
        """The worked examples, as chat turns."""
        return tuple(self.plan.examples)


def _pydantic_message(error: Mapping[str, Any]) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key (check its spelling; unknown keys are not ignored)"
    if error["type"] == "union_tag_invalid":
        found = error.get("ctx", {}).get("tag")
        expected = error.get("ctx", {}).get("expected_tags")
        return f"unknown validator kind {found!r}; the kinds are {expected}"
    return str(error["msg"])


def _loc(raw: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """A pydantic error location as the file's path: without union tags, with real names."""
    path: list[str | int] = []
    for index, part in enumerate(raw):
        if index >= 2 and raw[index - 2] == "validators" and isinstance(raw[index - 1], int):
            continue  # pydantic adds the union member's tag after the list index
        path.append("schema" if part == "schema_" else part)
    return tuple(path)


def load_policy(path: str | Path, *, cache: VerdictCache | None = None) -> Policy:
    """Load and check one policy file; raise :class:`PolicyError` naming every problem found.

    ``cache`` keeps the verdicts of its sandboxed tests (see :class:`VerdictCache`).
    """
    path = Path(path)
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError([Problem(name, 1, "", f"cannot read the file: {exc}")]) from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"at line (\d+)", str(exc))
        line = int(found.group(1)) if found else 1
        raise PolicyError([Problem(name, line, "", f"not valid TOML: {exc}")]) from exc
    lines = TomlLines(text)
    try:
        spec = PolicySpec.model_validate(data)
    except pydantic.ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            loc = _loc(tuple(error["loc"]))
            if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
                loc = (*loc, "kind")
            problems.append(
                Problem(name, lines.line_of(loc), dotted(loc), _pydantic_message(error))
            )
        raise PolicyError(problems) from exc
    return _build(path, spec, lines, cache)


def _build(path: Path, spec: PolicySpec, lines: TomlLines, cache: VerdictCache | None) -> Policy:
    problems: list[Problem] = []

    def problem(loc: tuple[str | int, ...], message: str) -> None:
        problems.append(Problem(str(path), lines.line_of(loc), dotted(loc), message))

    for index, rule in enumerate(spec.start):
        if rule.tier >= len(spec.tiers):
            problem(("start", index, "tier"), f"there are only {len(spec.tiers)} tiers")
        if not rule.tags and rule.min_input_tokens is None:
            problem(("start", index), "a start rule needs tags or min_input_tokens")
    _placed(spec, problem)
    ladder: list[Tier] = []
    for index, tier_spec in enumerate(spec.tiers):
        try:
            ladder.append(build_tier(tier_spec, path.parent))
        except FieldError as exc:
            problem(("tiers", index, exc.field), str(exc))
        except ConfigError as exc:
            problem(("tiers", index), str(exc))
    validators = _validators(spec.validators, ("validators",), path.parent, problem, cache)
    for index, tier_spec in enumerate(spec.tiers):
        if not tier_spec.validators:
            continue
        where = ("tiers", index, "validators")
        own = _validators(tier_spec.validators, where, path.parent, problem, cache)
        if tier_spec.trusted:
            problem(("tiers", index, "trusted"), "a trusted tier runs no validators; drop one")
        elif index < len(ladder) and not problems:
            ladder[index] = replace(ladder[index], validate=_all([*validators, *own]))
    examples = _examples(spec, problem)
    route = _route(spec, path, ladder, problem) if not problems else None
    if problems:
        raise PolicyError(problems)
    plan = Plan(
        tuple(ladder),
        _all(validators),
        prompt=spec.prompt,
        examples=examples,
        budget_usd=spec.budget.max_cost_per_task_usd,
        deadline_s=spec.budget.deadline_s,
        route=route,
        escalate_on_provider_error=spec.escalate_on_provider_error,
    )
    return Policy(path, spec, plan)


def _route(
    spec: PolicySpec,
    path: Path,
    ladder: list[Tier],
    problem: Callable[[tuple[str | int, ...], str], None],
) -> Route | None:
    """The tiers each task tries: its start rules, less the tiers a ``[route]`` router skips."""
    route = router(spec)
    if spec.route is None:
        return route
    try:
        return learned_route(path.parent / spec.route.file, spec.route.threshold,
                             [tier.model for tier in ladder], route)  # fmt: skip
    except ConfigError as exc:
        problem(("route", "file"), str(exc))
        return None


def _placed(spec: PolicySpec, problem: Callable[[tuple[str | int, ...], str], None]) -> None:
    """Checks across fields: the human tier last, a hedge before a model, batch, audit."""
    for index, tier_spec in enumerate(spec.tiers):
        if tier_spec.model == HUMAN and index != len(spec.tiers) - 1:
            problem(("tiers", index, "model"), "the human tier must be the last tier")
        following = spec.tiers[index + 1] if index + 1 < len(spec.tiers) else None
        if tier_spec.hedge and (following is None or following.model == HUMAN):
            problem(("tiers", index, "hedge"), "a hedge starts the next model tier early; "
                    "this tier has none after it")  # fmt: skip
        elif tier_spec.hedge and following is not None and following.mode == "batch":
            problem(("tiers", index, "hedge"), "a hedge cannot start a batch tier early")
        _batch_fields(tier_spec, ("tiers", index), problem)
    audit = spec.audit
    if audit is not None and (audit.model is None) == (audit.judge is None):
        problem(("audit", "model"), "an audit names a model to answer again, or a judge")


def _batch_fields(
    tier: TierSpec,
    where: tuple[str | int, ...],
    problem: Callable[[tuple[str | int, ...], str], None],
) -> None:
    """A batch tier's fields: only on a batch tier, and a batch tier only of a provider's model."""
    if tier.mode != "batch":
        for name in ("batch_size", "batch_wait_s", "batch_deadline_s", "batch_discount"):
            if getattr(tier, name) is not None:
                problem((*where, name), f'{name} needs mode = "batch" on the tier')
        return
    if tier.model == HUMAN or tier.model.startswith("local/"):
        problem((*where, "mode"), f"{tier.model} takes no batches: only a provider's model does")
    if tier.hedge:
        problem((*where, "mode"), "a batch tier cannot hedge: a batch takes minutes to hours")


def _validators(
    specs: list[ValidatorSpec],
    where: tuple[str | int, ...],
    base: Path,
    problem: Callable[[tuple[str | int, ...], str], None],
    cache: VerdictCache | None,
) -> list[Validator]:
    built: list[Validator] = []
    for index, validator_spec in enumerate(specs):
        try:
            built.append(build_validator(validator_spec, base, cache=cache))
        except FieldError as exc:
            problem((*where, index, exc.field), str(exc))
        except ConfigError as exc:
            problem((*where, index), str(exc))
    return built


def _all(validators: list[Validator]) -> Validator:
    return validators[0] if len(validators) == 1 else all_of(*validators)


def _examples(
    spec: PolicySpec, problem: Callable[[tuple[str | int, ...], str], None]
) -> tuple[Message, ...]:
    """The worked examples as chat turns: each input through the prompt, then its answer."""
    turns: list[Message] = []
    for index, example in enumerate(spec.examples):
        try:
            content = spec.prompt.format_map({"input": example.input, "id": f"example-{index}"})
        except (KeyError, IndexError, ValueError) as exc:
            problem(("examples", index, "input"), f"the prompt cannot be filled in: {exc}")
            continue
        turns.append({"role": "user", "content": content})
        turns.append({"role": "assistant", "content": example.output})
    return tuple(turns)


class PolicySet:
    """Policies by task type, from one file or a directory of ``*.toml`` files.

    A single policy file also serves tasks that carry no type.
    """

    def __init__(
        self, policies: Mapping[str, Policy], default: Policy | None, source: Path | None = None
    ) -> None:
        self._policies = dict(policies)
        self._default = default
        self.source = source
        """The file or directory the policies were loaded from, for worker processes."""

    def __iter__(self) -> Iterator[Policy]:
        return iter(self._policies.values())

    def __len__(self) -> int:
        return len(self._policies)

    def for_task(self, task: Task) -> Policy | None:
        """The policy for ``task``'s type; an untyped task gets the default, if there is one."""
        found = self._policies.get(task.type)
        if found is None and task.type == "default":
            return self._default
        return found

    def serving(self, task: Task) -> tuple[Policy, Task] | None:
        """The policy that serves ``task``, and the task as of that policy's type; or ``None``.

        An untyped task served by the default policy *is* of that policy's task type: so its
        audits, drift alarms, store rows, reports and exports all name that type.
        """
        policy = self.for_task(task)
        if policy is None:
            return None
        if task.type != policy.task_type:
            task = replace(task, type=policy.task_type)
        return policy, task

    def task_types(self) -> list[str]:
        """The task types covered."""
        return sorted(self._policies)


def load_policies(path: str | Path, *, cache: VerdictCache | None = None) -> PolicySet:
    """Load a policy file, or every ``*.toml`` in a directory; report all problems at once.

    A name without its suffix finds ``NAME.toml`` when there is no ``NAME`` itself (so
    ``policies/ladders/optimized/NAME`` works for the files there as for the folders).
    """
    path = Path(path)
    if not path.exists() and path.with_name(path.name + ".toml").is_file():
        path = path.with_name(path.name + ".toml")
    if path.is_dir():
        files = sorted(path.glob("*.toml"))
        if not files:
            raise PolicyError([Problem(str(path), 1, "", "no *.toml policy files here")])
    elif path.exists():
        files = [path]
    else:
        raise PolicyError([Problem(str(path), 1, "", "no such policy file or directory")])
    problems: list[Problem] = []
    policies: dict[str, Policy] = {}
    for file in files:
        try:
            policy = load_policy(file, cache=cache)
        except PolicyError as exc:
            problems.extend(exc.problems)
            continue
        if (seen := policies.get(policy.task_type)) is not None:
            message = f"task_type {policy.task_type!r} is already served by {seen.path}"
            problems.append(Problem(str(file), 1, "task_type", message))
        policies[policy.task_type] = policy
    if problems:
        raise PolicyError(problems)
    default = policies.get("default") or (
        next(iter(policies.values())) if len(files) == 1 else None
    )
    return PolicySet(policies, default, path.resolve())
