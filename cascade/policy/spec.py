"""What a policy file may say, as pydantic models. Unknown keys are errors, never ignored.

The ``[[validators]]`` entries, a union tagged by ``kind``, are in
:mod:`cascade.policy.spec_validators` (each with the ``build`` that makes its validator); the
``[audit]``, ``[drift]`` and ``[route]`` tables are in :mod:`cascade.policy.spec_watch`. Both are
re-exported here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, NonNegativeInt, PositiveInt

from cascade.policy.spec_base import STRICT, PriceSpec
from cascade.policy.spec_validators import ValidatorSpec
from cascade.policy.spec_watch import AuditSpec, DriftSpec, RouteSpec
from cascade.types import Batching

__all__ = [
    "AuditSpec",
    "BreakerSpec",
    "BudgetSpec",
    "DriftSpec",
    "ExampleSpec",
    "LimitSpec",
    "PolicySpec",
    "PriceSpec",
    "RouteSpec",
    "StartRule",
    "TierSpec",
    "ValidatorSpec",
]


class _Strict(BaseModel):
    model_config = STRICT


class TierSpec(_Strict):
    """One rung: the model, how to call it, and how often to re-ask it."""

    model: Annotated[str, Field(min_length=1)]
    reasks: NonNegativeInt = 0
    retries: NonNegativeInt = 2
    timeout_s: Annotated[float, Field(gt=0)] = 60.0
    fallbacks: list[Annotated[str, Field(min_length=1)]] = []
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    max_tokens: PositiveInt | None = None
    params: dict[str, Any] = {}
    price: PriceSpec | None = None
    context_window: PositiveInt | None = None
    """Prompt tokens this model accepts; a task whose prompt is longer skips the tier."""
    examples: bool = True
    """Whether the policy's worked examples are sent to this tier."""
    trusted: bool = False
    """Accept this tier's answers without running the validators."""
    response_schema: str | dict[str, Any] | None = None
    """Constrain decoding to this JSON Schema (a file relative to the policy, or a table): sent as
    OpenAI's ``response_format``; a local model turns it into a grammar."""
    validators: list[ValidatorSpec] = []
    """Checks for this tier only, on top of the policy's ``[[validators]]``."""
    expected_latency_s: Annotated[float, Field(gt=0)] | None = None
    """The p90 seconds of an answer, for deadlines, until the run has measured it."""
    hedge: bool = False
    """Start the next tier early when a task's deadline draws near."""
    backend: Literal["litellm", "http"] | None = None
    """``http``: call this tier's models (``openai/...``, ``azure/...``) over the lean HTTP path,
    not litellm; for any server of the Chat Completions API. Not for a batch tier."""
    mode: Literal["sync", "batch"] = "sync"
    """``batch``: send this tier's calls through the provider's batch API, at its batch price."""
    batch_size: PositiveInt | None = None
    """Requests per batch at most (500)."""
    batch_wait_s: Annotated[float, Field(gt=0)] | None = None
    """Seconds a batch gathers after its first request before it goes anyway (5)."""
    batch_deadline_s: Annotated[float, Field(gt=0)] | None = None
    """Seconds a request waits for its batch before it is cancelled and called at once (86400)."""
    batch_discount: Annotated[float, Field(gt=0, le=1)] | None = None
    """The share of the price a batch call pays where litellm knows no batch price (0.5)."""

    def batching(self) -> Batching | None:
        """The tier's batch settings, when it is a batch tier."""
        if self.mode != "batch":
            return None
        default = Batching()
        return Batching(
            size=self.batch_size or default.size,
            wait_s=self.batch_wait_s or default.wait_s,
            deadline_s=self.batch_deadline_s or default.deadline_s,
            discount=self.batch_discount or default.discount,
        )


class StartRule(_Strict):
    """Start a task at a higher tier: by one of its tags, or by the size of its prompt."""

    tier: NonNegativeInt
    tags: list[str] = []
    min_input_tokens: PositiveInt | None = None


class ExampleSpec(_Strict):
    """A worked example: ``input`` goes through the prompt like a task's, ``output`` answers it."""

    input: str
    output: str


class LimitSpec(_Strict):
    """Requests and tokens per minute for one model (``openai/gpt-4o``) or provider (``openai``).

    Shared by every task and worker of a run; when two policies name the same key, the
    stricter limit holds.
    """

    rpm: Annotated[float, Field(gt=0)] | None = None
    tpm: Annotated[float, Field(gt=0)] | None = None


class BreakerSpec(_Strict):
    """The circuit breaker of each model: open after ``failures`` in a row, probe after a pause."""

    failures: PositiveInt = 5
    cooldown_s: Annotated[float, Field(gt=0)] = 30.0
    first_probe_s: Annotated[float, Field(gt=0)] = 1.0
    """The first probe after the breaker opens; each failed probe doubles it, to cooldown_s."""


class BudgetSpec(_Strict):
    """Spending caps."""

    max_cost_per_task_usd: Annotated[float, Field(gt=0)] | None = None
    deadline_s: Annotated[float, Field(gt=0)] | None = None
    """Seconds a task may take (a task's own ``deadline_s`` overrides it)."""


TierSpec.model_rebuild()  # its validators are declared after it


class PolicySpec(_Strict):
    """One task type's policy: the prompt, the ladder, the validators and the budget."""

    task_type: Annotated[str, Field(min_length=1)]
    prompt: str = "{input}"
    examples: list[ExampleSpec] = []
    tiers: Annotated[list[TierSpec], Field(min_length=1)]
    validators: list[ValidatorSpec] = []
    budget: BudgetSpec = BudgetSpec()
    start: list[StartRule] = []
    limits: dict[str, LimitSpec] = {}
    breaker: BreakerSpec | None = None
    escalate_on_provider_error: bool = False
    """Whether a tier none of whose models can answer escalates; by default the task waits."""
    max_input_bytes: PositiveInt | None = None
    """Tasks whose input is longer than this are quarantined, never sent."""
    audit: AuditSpec | None = None
    drift: DriftSpec | None = None
    route: RouteSpec | None = None
