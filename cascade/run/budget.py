"""A job's budget, shared by every worker process: what has been spent, and whether to stop.

Each worker adds the cost of every task it finishes and checks the budget before it leases
more, so no new task starts once the budget is spent. Tasks already in flight finish (their own
per-task cap still holds), so a run overshoots by at most what is in flight.

>>> budget = JobBudget(1.0, spent_usd=0.75)
>>> budget.add(0.25)
>>> budget.exhausted()
True
"""

from __future__ import annotations

import multiprocessing
from typing import Any

__all__ = ["JobBudget"]


class JobBudget:
    """Dollars spent by a job so far, against an optional limit, in shared memory."""

    def __init__(self, limit_usd: float | None, *, spent_usd: float = 0.0) -> None:
        context = multiprocessing.get_context("spawn")
        self.limit_usd = limit_usd
        self._lock: Any = context.Lock()
        self._spent: Any = context.RawValue("d", spent_usd)

    def __repr__(self) -> str:
        return f"JobBudget(limit_usd={self.limit_usd}, spent_usd={self.spent_usd:.6f})"

    @property
    def spent_usd(self) -> float:
        """Dollars spent so far, by every worker."""
        with self._lock:
            return float(self._spent.value)

    def add(self, cost_usd: float) -> None:
        """Count a finished task's cost."""
        with self._lock:
            self._spent.value += cost_usd

    def exhausted(self) -> bool:
        """Whether the limit is reached, so that no new task may start."""
        return self.limit_usd is not None and self.spent_usd >= self.limit_usd
