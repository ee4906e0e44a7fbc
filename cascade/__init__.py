"""cascade: run LLM work cheapest-model-first; pay for a bigger model only when a check fails.

>>> from cascade import Cascade, Tier, json_schema
"""

from cascade.backends.base import Backend, Request, Response
from cascade.engine import Cascade
from cascade.errors import (
    CascadeError,
    ConfigError,
    PermanentProviderError,
    ProviderError,
    TaskError,
    TransientProviderError,
)
from cascade.guard import BreakerSettings, Guard, Limit
from cascade.retry import RetryPolicy
from cascade.steplog import StepLog, capture_steps
from cascade.store import Store
from cascade.types import (
    Attempt,
    CallKind,
    Decision,
    Outcome,
    Price,
    Status,
    Step,
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
    "Price",
    "ProviderError",
    "Request",
    "Response",
    "RetryPolicy",
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
