"""cascade: run LLM work cheapest-model-first; pay for a bigger model only when a check fails.

>>> from cascade import Cascade, Tier, json_schema
"""

from cascade.backends.base import Backend
from cascade.backends.batcher import Batcher
from cascade.engine import Cascade, Plan, Settings
from cascade.enums import CallKind, Decision, Status
from cascade.errors import (
    CascadeError,
    ConfigError,
    PermanentProviderError,
    ProviderError,
    TaskError,
    TransientProviderError,
)
from cascade.outcome import Outcome, Step
from cascade.retry import RetryPolicy
from cascade.run.guard import BreakerSettings, Guard, Limit
from cascade.steplog import StepLog, capture_steps
from cascade.store import Store
from cascade.types import (
    Attempt,
    Batching,
    Price,
    Request,
    Response,
    Task,
    Tier,
    Usage,
    Verdict,
)
from cascade.validators import (
    CostClass,
    Validator,
    all_of,
    any_of,
    compiles,
    confidence,
    function_call,
    grounded,
    json_schema,
    judge,
    matches,
    mypy_clean,
    not_,
    one_of,
    passes_tests,
    pydantic_model,
    self_consistency,
    vote,
    weighted,
)

__version__ = "0.1.0"

__all__ = [
    "Attempt",
    "Backend",
    "Batcher",
    "Batching",
    "BreakerSettings",
    "CallKind",
    "Cascade",
    "CascadeError",
    "ConfigError",
    "CostClass",
    "Decision",
    "Guard",
    "Limit",
    "Outcome",
    "PermanentProviderError",
    "Plan",
    "Price",
    "ProviderError",
    "Request",
    "Response",
    "RetryPolicy",
    "Settings",
    "Status",
    "Step",
    "StepLog",
    "Store",
    "Task",
    "TaskError",
    "Tier",
    "TransientProviderError",
    "Usage",
    "Validator",
    "Verdict",
    "__version__",
    "all_of",
    "any_of",
    "capture_steps",
    "compiles",
    "confidence",
    "function_call",
    "grounded",
    "json_schema",
    "judge",
    "matches",
    "mypy_clean",
    "not_",
    "one_of",
    "passes_tests",
    "pydantic_model",
    "self_consistency",
    "vote",
    "weighted",
]
