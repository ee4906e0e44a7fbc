"""Waiting out a provider outage: how long a task waits before asking a tier again.

When no model of a tier answers and the error is one time cures (a timeout, a 5xx, a 429, an
open breaker), the loop (:meth:`cascade.engine.loop.TaskRun.answer`) waits and asks again until
the plan's outage bound (``max_outage_s``) is spent. The wait is the task's own short backoff,
or longer when the guard says no model of the tier could take a call sooner.

>>> from cascade.retry import RetryPolicy
>>> outage_wait(RetryPolicy(base_s=0.1), left_s=600.0, waits=2, ready_in_s=lambda: 0.0)
0.4
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from cascade.retry import RetryPolicy

__all__ = ["OWN_FAULT_ROUNDS", "outage_wait", "unavailable"]

OWN_FAULT_ROUNDS = 3
"""Rounds of asks a task makes while the provider answers other tasks, before it fails."""
_MIN_WAIT_S = 0.05
"""Waits for a provider to come back start at least this long, however short the backoff."""
_MAX_OWN_WAIT_S = 1.0
"""A task's own backoff between asks stays below this: breakers and 429 pauses space the rest."""


def outage_wait(
    retry: RetryPolicy, left_s: float, waits: int, ready_in_s: Callable[[], float]
) -> float | None:
    """Seconds to wait before asking again; ``None`` once the outage bound is spent.

    ``left_s`` is what is left of the bound, ``waits`` how many waits the task made already,
    and ``ready_in_s`` asks (only when the bound is not spent) how soon a model could go.
    """
    if left_s <= 0:
        return None
    # The task's own backoff stays short: the breaker's cooldown and a 429's pause are what
    # space the calls to a provider in trouble, and a task should be ready when they end.
    backoff = retry.backoff_s(waits, floor_s=_MIN_WAIT_S, cap_s=_MAX_OWN_WAIT_S)
    return min(left_s, max(backoff, ready_in_s()))


def unavailable(since: float | None, waited_s: float) -> str:
    """Why a task failed once the bound was spent: since when, and how long it waited."""
    stamp = datetime.fromtimestamp(since or time.time(), UTC).isoformat(timespec="seconds")
    return f"provider unavailable since {stamp} ({waited_s:.0f} s)"
