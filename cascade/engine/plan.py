"""The two values a :class:`~cascade.Cascade` is made of: what to do, and how to run it.

A :class:`Plan` says what to do with a task: the ladder, the validators, the prompt, the worked
examples, the per-task budget and the start rules. A policy file loads into one; code can build
one by hand. :class:`Settings` say how tasks are run: the backend, the store, the step log, the
retry policy, the guard, the run id and the calibration share. A command builds them once and
every cascade of the command shares them.

>>> [tier.model for tier in Plan(["small", "big"], budget_usd=0.01).tiers]
['small', 'big']
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cascade.engine.calls import BatchSender, GuardHooks
from cascade.errors import ConfigError
from cascade.retry import RetryPolicy
from cascade.steplog import StepLog
from cascade.types import Message, Task, Tier
from cascade.validators.base import Validator
from cascade.validators.combine import all_of

if TYPE_CHECKING:
    from cascade.backends.base import Backend
    from cascade.store import Store

__all__ = ["Plan", "Route", "Settings"]

Route = Callable[[Task, tuple[Message, ...]], Sequence[int]]
"""Which tiers to try for a task, as ladder indices in order: start rules, context windows."""


@dataclass(frozen=True, slots=True, init=False)
class Plan:
    """What to do with a task: a value, with no runtime in it.

    ``ladder`` is tried cheapest first (a model's name stands for a default :class:`Tier`).
    ``validate`` is one validator, or a sequence that must all pass (run cheapest first); with
    none, the first answer is accepted. ``prompt`` builds the user message for tasks that carry
    ``input`` (``{input}`` and any extra task field may be named); tasks with ``messages`` are
    sent as they are. ``examples`` are chat turns (worked examples, say) sent before every
    task's own messages. ``budget_usd`` caps the cost of one task; it is checked before every
    call that could pass it. ``route`` picks the tiers to try per task (see :data:`Route`); by
    default, all in order. A provider that cannot answer is not a reason to pay for a dearer
    tier: the task waits for it (see :class:`Settings`), unless ``escalate_on_provider_error``.
    """

    ladder: tuple[Tier, ...]
    validate: Validator
    """The plan's validators as one (an empty :func:`~cascade.all_of` when none was given)."""
    prompt: str
    examples: tuple[Message, ...]
    budget_usd: float | None
    deadline_s: float | None
    """Seconds a task may take: no re-ask or tier is started that could not answer within it
    (a task's own ``deadline_s`` overrides this); a task stopped so ends ``deadline``."""
    route: Route | None = field(compare=False)
    escalate_on_provider_error: bool
    """Whether a tier no model of which could answer escalates (else the task waits it out)."""

    def __init__(
        self,
        ladder: Sequence[Tier | str],
        validate: Validator | Sequence[Validator] | None = None,
        prompt: str = "{input}",
        examples: Sequence[Message] = (),
        budget_usd: float | None = None,
        deadline_s: float | None = None,
        route: Route | None = None,
        escalate_on_provider_error: bool = False,
    ) -> None:
        tiers = tuple(Tier(t) if isinstance(t, str) else t for t in ladder)
        if not tiers:
            raise ConfigError("a ladder needs at least one tier")
        if budget_usd is not None and not budget_usd > 0:
            raise ConfigError(f"budget_usd must be > 0, got {budget_usd!r}")
        if deadline_s is not None and not deadline_s > 0:
            raise ConfigError(f"deadline_s must be > 0, got {deadline_s!r}")
        setting = object.__setattr__  # frozen: the one place the fields are set
        setting(self, "ladder", tiers)
        setting(self, "validate", _as_validator(validate))
        setting(self, "prompt", prompt)
        setting(self, "examples", tuple(examples))
        setting(self, "budget_usd", budget_usd)
        setting(self, "deadline_s", deadline_s)
        setting(self, "route", route)
        setting(self, "escalate_on_provider_error", escalate_on_provider_error)

    @property
    def tiers(self) -> tuple[Tier, ...]:
        """The ladder (the same tuple: kept for the code that reads it by this name)."""
        return self.ladder

    @property
    def validator(self) -> Validator:
        """The plan's validator, as one callable (the same as ``validate``)."""
        return self.validate

    def one_tier_higher(self) -> Plan:
        """The same plan, each task starting one tier above where it would (never past its last).

        What a drift alarm with ``on_drift = "escalate"`` runs.
        """
        route, count = self.route, len(self.tiers)

        def higher(task: Task, messages: tuple[Message, ...]) -> Sequence[int]:
            order = list(route(task, messages)) if route is not None else list(range(count))
            return order[1:] if len(order) > 1 else order

        return dataclasses.replace(self, route=higher)


@dataclass(frozen=True, slots=True)
class Settings:
    """How tasks are run, shared by every cascade of one command.

    ``backend`` serves the calls (by default, litellm for every model and llama.cpp for
    ``local/...``, imported on first use). With a ``store``, every outcome and its steps are
    written through it. ``log`` is a :class:`StepLog`, ``None`` for JSON lines on standard
    error, or ``False`` for no log. ``guard`` holds the rate limits and circuit breakers the
    calls go through. ``record_all_tiers`` is the share of tasks (drawn by id) whose every model
    tier is asked, even those the ladder did not need, for calibration; those calls are paid,
    kept as steps of kind ``calibration``, and never change the outcome. ``max_outage_s``
    bounds how long, in all, a task waits for providers that cannot answer (a 5xx, a timeout,
    a 429, an open breaker) before it ends ``failed``. ``batcher`` sends batch tiers' calls
    (a :class:`~cascade.Batcher`); without one, a cascade with a batch tier makes its own when
    the backend has a batch API, and otherwise calls batch tiers like the others.
    """

    backend: Backend | None = None
    store: Store | None = None
    log: StepLog | bool | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    guard: GuardHooks | None = None
    run_id: str | None = None
    record_all_tiers: float = 0.0
    max_outage_s: float = 600.0
    """How long a task waits, in all, for providers that cannot answer, before it fails."""
    batcher: BatchSender | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.record_all_tiers <= 1.0:
            raise ConfigError(
                f"record_all_tiers must be between 0 and 1, got {self.record_all_tiers!r}"
            )
        if not self.max_outage_s >= 0:
            raise ConfigError(f"max_outage_s must be >= 0, got {self.max_outage_s!r}")


def _as_validator(validate: Validator | Sequence[Validator] | None) -> Validator:
    if validate is None:
        return all_of()
    if isinstance(validate, Sequence):
        return validate[0] if len(validate) == 1 else all_of(*validate)
    if not callable(validate):
        raise ConfigError(f"a validator must be callable, got {type(validate).__name__}")
    return validate
