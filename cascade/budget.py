"""A job's budget, shared by every worker and the audits: what is spent, and whether to stop.

Each worker adds the cost of every task it finishes and checks the budget before it leases
more, so no new task starts once the budget is spent. Tasks already in flight finish (their own
per-task cap still holds), so a run overshoots by at most what is in flight.

A cap that must hold even with calls in flight (an audit's ``max_cost_usd``) reserves each
call's worst cost before it is made, and settles it once the call's real cost is known: a
reservation that does not fit is refused, so the spend never passes the limit.

>>> budget = JobBudget(1.0, spent_usd=0.75)
>>> budget.add(0.25)
>>> budget.exhausted()
True
>>> cap = JobBudget(1.0)
>>> cap.reserve(0.75), cap.reserve(0.5), cap.could_fit(0.5)
(True, False, True)
>>> cap.settle(0.75, 0.25)
>>> cap.reserve(0.5), cap.spent_usd
(True, 0.25)
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
        self._reserved: Any = context.RawValue("d", 0.0)
        self._refused: Any = context.RawValue("i", 0)

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

    def reserve(self, cost_usd: float) -> bool:
        """Hold ``cost_usd`` (a call's worst cost) if it fits beside the spend and the holds.

        With no limit every reservation fits. Settle each with :meth:`settle`.
        """
        with self._lock:
            if self.limit_usd is not None:
                held = self._spent.value + self._reserved.value
                if held + cost_usd > self.limit_usd or self._spent.value >= self.limit_usd:
                    return False
            self._reserved.value += cost_usd
            return True

    def could_fit(self, cost_usd: float) -> bool:
        """Whether ``cost_usd`` would fit once every reservation in flight is settled."""
        spent = self.spent_usd
        return self.limit_usd is None or (spent + cost_usd <= self.limit_usd
                                          and spent < self.limit_usd)  # fmt: skip

    def settle(self, reserved_usd: float, cost_usd: float) -> None:
        """Release a reservation of ``reserved_usd``, and count what the call really cost."""
        with self._lock:
            self._reserved.value = max(0.0, self._reserved.value - reserved_usd)
            self._spent.value += cost_usd

    def refuse(self) -> None:
        """Count a call skipped because its worst cost would pass the limit."""
        with self._lock:
            self._refused.value += 1

    @property
    def refused(self) -> int:
        """Calls skipped for the limit, by every worker."""
        with self._lock:
            return int(self._refused.value)
