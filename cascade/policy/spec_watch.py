"""Tables a policy file may add around its ladder: ``[audit]``, ``[drift]`` and ``[route]``.

:class:`cascade.policy.spec.PolicySpec` holds them, and :mod:`cascade.policy.spec` re-exports them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, PositiveInt

from cascade.policy.spec_base import STRICT, PriceSpec

__all__ = ["AuditSpec", "DriftSpec", "RouteSpec"]


class _Strict(BaseModel):
    model_config = STRICT


class AuditSpec(_Strict):
    """Shadow audits: a share of the accepted answers of the tiers below the top, asked again.

    The top tier's too, when the audit asks another model. The audit model answers the same
    task and its answer is compared with the accepted one (as the agreement validator
    compares), or a ``judge`` model grades the accepted answer
    against ``rubric``. Audits change no result; they are priced, stored and counted in the
    job's budget, and stop at ``max_cost_usd`` per run.
    """

    share: Annotated[float, Field(ge=0, le=1)]
    model: Annotated[str, Field(min_length=1)] | None = None
    judge: Annotated[str, Field(min_length=1)] | None = None
    rubric: str = "The answer is a correct and complete answer to the task."
    compare: Literal["auto", "call", "json", "text", "number"] = "auto"
    max_cost_usd: Annotated[float, Field(gt=0)] | None = None
    seed: int = 0
    """Which tasks are sampled: the same seed samples the same tasks of a task type and tier."""
    params: dict[str, Any] = {}
    price: PriceSpec | None = None


def _run_rate(value: float) -> float:
    """A drift alarm's ``false_alarm``: a chance per run, said so when it is out of range."""
    if not 0 < value < 0.5:
        raise ValueError(
            f"{value} is out of range: false_alarm is the chance of any false alarm on a"
            " stream over the whole run (not per check), above 0 and below 0.5"
        )
    return value


class DriftSpec(_Strict):
    """Drift alarms on each tier's acceptance rate and its audits' disagreement rate.

    See :mod:`cascade.audit.drift` for the test and how ``false_alarm`` is spent.
    """

    window: Annotated[int, Field(ge=10)] = 100
    """Each check compares the last ``window`` observations with the baseline."""
    baseline: Annotated[int, Field(ge=10)] = 200
    """Observations that measure the baseline, when ``acceptance`` gives none."""
    check_every: PositiveInt = 10
    """Observations between checks; ``false_alarm`` is shared among a run's checks."""
    false_alarm: Annotated[float, AfterValidator(_run_rate)] = 0.001
    """The chance of any false alarm on a stream over the whole run (not per check)."""
    on_drift: Literal["warn", "escalate"] = "warn"
    acceptance: list[Annotated[float, Field(gt=0, lt=1)]] = []
    """The calibrated acceptance rate of each tier, from the first; else measured on the run."""
    disagreement: list[Annotated[float, Field(gt=0, lt=1)]] = []
    """The calibrated rate at which each tier's audits disagree, from the first; else measured."""
    disagreement_audits: list[PositiveInt] = []
    """How many audits each ``disagreement`` rate was measured on: the run then tests against
    that sample (Fisher's exact test), not against the rate as if it were known."""


class RouteSpec(_Strict):
    """The start-tier router (``cascade route fit``).

    Each task starts at the first tier whose predicted chance of passing its gates reaches
    ``threshold``.
    """

    file: Annotated[str, Field(min_length=1)]
    """The router's JSON file, relative to the policy file."""
    threshold: Annotated[float, Field(ge=0, lt=1)]
