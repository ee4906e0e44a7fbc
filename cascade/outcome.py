"""What the engine keeps of a task: a :class:`Step` per call, and how the task ended.

>>> Outcome.failed("r1", Task("t1", input="x"), "no tier can take it").status
<Status.FAILED: 'failed'>
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cascade.enums import CallKind, Decision, Status
from cascade.types import Task, Verdict

__all__ = ["Outcome", "Step"]


@dataclass(frozen=True, slots=True)
class Step:
    """The record of one backend call and what the engine decided after it."""

    run_id: str
    task_id: str
    task_type: str
    step: int
    tier: int
    model_requested: str
    model_served: str | None
    kind: CallKind
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    latency_s: float
    verdicts: tuple[Verdict, ...]
    decision: Decision
    error: str | None
    ts: float
    output: str | None = None
    compute_s: float = 0.0
    """Seconds of local compute the call took (a model run on this machine costs no dollars)."""
    confidence: float | None = None
    """The model's own confidence in the answer, where the backend reports one."""
    batch: bool = False
    """Whether the call went through the provider's batch API (priced at its batch price)."""

    def to_event(self) -> dict[str, Any]:
        """The step as the fields of a ``cascade.step`` log event (output left out)."""
        return {
            "run_id": self.run_id,
            "task_id": self.task_id,
            "task_type": self.task_type,
            "step": self.step,
            "tier": self.tier,
            "model_requested": self.model_requested,
            "model_served": self.model_served,
            "kind": str(self.kind),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_usd": self.cost_usd,
            "latency_s": self.latency_s,
            "compute_s": self.compute_s,
            **({"batch": True} if self.batch else {}),
            "verdicts": [
                {"validator": v.validator, "passed": v.passed, "reason": v.reason}
                for v in self.verdicts
            ],
            "decision": str(self.decision),
            "error": self.error,
            "ts": datetime.fromtimestamp(self.ts, UTC).isoformat(),
        }


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a task ended, with every step it took.

    For an ``accepted`` task, ``best_step`` is the accepted step. For an ``exhausted`` or
    ``budget_exhausted`` one it is the best rejected step, whose output is kept as ``output``.
    """

    run_id: str
    task_id: str
    task_type: str
    status: Status
    output: str | None
    parsed: Any
    tier: int | None
    model: str | None
    steps: tuple[Step, ...]
    cost_usd: float
    latency_s: float
    reasons: tuple[str, ...] = ()
    best_step: int | None = None
    compute_s: float = 0.0
    waited_s: float = 0.0
    """Seconds the task waited for providers that could not answer."""

    @property
    def accepted(self) -> bool:
        """Whether a tier's answer passed every validator."""
        return self.status is Status.ACCEPTED

    @classmethod
    def failed(cls, run_id: str, task: Task, reason: str) -> Outcome:
        """The outcome of a well-formed task that could not be run at all."""
        return cls._not_run(run_id, task.id, task.type, Status.FAILED, reason)

    @classmethod
    def quarantined(cls, run_id: str, raw: Task | Mapping[str, Any] | Any, reason: str) -> Outcome:
        """The outcome of a task too malformed to run: named by its id, or a digest of it."""
        task_id = raw.get("id") if isinstance(raw, Mapping) else None
        if task_id in (None, ""):
            digest = hashlib.sha256(repr(raw).encode()).hexdigest()[:12]
            task_id = f"<malformed:{digest}>"
        task_type = raw.get("type", "default") if isinstance(raw, Mapping) else "default"
        return cls._not_run(run_id, str(task_id), str(task_type), Status.QUARANTINED, reason)

    @classmethod
    def _not_run(
        cls, run_id: str, task_id: str, task_type: str, status: Status, reason: str
    ) -> Outcome:
        """An outcome with no steps: the task ended before any call was made."""
        return cls(
            run_id=run_id,
            task_id=task_id,
            task_type=task_type,
            status=status,
            output=None,
            parsed=None,
            tier=None,
            model=None,
            steps=(),
            cost_usd=0.0,
            latency_s=0.0,
            reasons=(reason,),
        )

    def to_result(self) -> dict[str, Any]:
        """The outcome as one line of the results file."""
        return {
            "id": self.task_id,
            "status": str(self.status),
            "output": self.output,
            "parsed": self.parsed,
            "tier": self.tier,
            "model": self.model,
            "attempts": len(self.steps),
            "cost_usd": self.cost_usd,
            "latency_s": self.latency_s,
            "compute_s": self.compute_s,
            "waited_s": self.waited_s,
            "reasons": list(self.reasons),
            "best_rejected": self.status is not Status.ACCEPTED and self.best_step is not None,
        }
