"""One task's clock and deadline: how long it has taken, and whether the next ask fits in time.

A task's time is its calls' latencies one after another (a hedge's overlap counted once); in a
live run, the wall clock since the task began when that is longer (validators, waits). A replay
runs on the recorded latencies alone, so that a replayed task is decided the same way however
fast the machine replays it.

Before each ask of a tier (its first call included), each re-ask and each escalation,
:meth:`Clock.fit` compares what is left of the deadline with that tier's expected latency (see
:mod:`cascade.latency`). An ask or re-ask that does not fit goes to the next tier instead when
that one fits (a faster tier may still answer in time); when nothing fits, the task stops and
ends ``deadline`` with its best answer so far. With no estimate, only a deadline already spent
stops it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from cascade.engine.call import Call
from cascade.engine.decide import Choice
from cascade.enums import Decision
from cascade.types import Tier

__all__ = ["Clock"]


class Clock:
    """A task's time so far, its deadline, and why the deadline stopped it."""

    def __init__(self, deadline_s: float | None) -> None:
        self.deadline_s = deadline_s
        self.calls_s = 0.0
        """Seconds of the task's calls so far, on its critical path."""
        self.late = ""
        """Why the deadline stopped the task, once it has."""
        self._started = time.monotonic()
        self._replayed = False

    def add(self, calls: list[Call]) -> None:
        """Count calls made one after another."""
        for call in calls:  # a plain loop: this runs for every call of every task
            self.calls_s += call.latency_s
            if call.replayed:
                self._replayed = True

    def elapsed_s(self) -> float:
        """Seconds the task has taken so far (see the module's doc)."""
        if self._replayed or not self.calls_s:
            return self.calls_s
        return max(time.monotonic() - self._started, self.calls_s)

    def fit(
        self,
        choice: Choice,
        tier: Tier,
        up: Tier | None,
        expected: Callable[[Tier], float | None],
        *,
        first: bool = False,
    ) -> Choice:
        """``choice``, or what fits in time instead: an escalation to ``up``, or a stop.

        ``choice`` asks ``tier`` (a re-ask, or with ``first`` its first ask) or escalates to
        ``up``; ``expected`` gives a tier's expected seconds.
        """
        if self.deadline_s is None:
            return choice
        if choice.decision is Decision.ESCALATE:
            return choice if up is None else self.in_time(choice, up, expected(up))
        if choice.decision is not Decision.REASK:
            return choice
        asked = self.in_time(choice, tier, expected(tier), first=first)
        if asked.decision is not Decision.STOP or up is None:
            return asked
        why = self.late
        climbed = self.in_time(Choice(Decision.ESCALATE, "escalate"), up, expected(up))
        if climbed.decision is Decision.STOP:
            self.late = f"{why}; {self.late.split(': ', 1)[1]}"
        return climbed

    def in_time(
        self, choice: Choice, nxt: Tier, expected: float | None, *, first: bool = False
    ) -> Choice:
        """``choice`` (an ask of, or an escalation to, ``nxt``), or a stop when too late.

        ``expected`` is the seconds ``nxt`` is expected to take.
        """
        if self.deadline_s is None:
            return choice
        left = self.deadline_s - self.elapsed_s()
        if left > (expected or 0.0):
            return choice
        what = "escalating to"
        if choice.decision is Decision.REASK:
            what = "asking" if first else "a re-ask of"
        ahead = "" if expected is None else f", and it takes {expected:.3g} s (p90)"
        self.late = (f"deadline {self.deadline_s:g} s: {what} {nxt.model} not started with "
                     f"{max(0.0, left):.3g} s left{ahead}")  # fmt: skip
        return Choice(Decision.STOP, "deadline")

    def waits_past(self, wait_s: float, model: str, error: object) -> bool:
        """Whether waiting ``wait_s`` for ``model`` to come back would pass the deadline."""
        if self.deadline_s is None or self.elapsed_s() + wait_s <= self.deadline_s:
            return False
        self.late = f"deadline {self.deadline_s:g} s: {model} could not answer in time: {error}"
        return True

    def hedge_after(self, tier: Tier, expected: float | None) -> float | None:
        """Seconds from now to start the next tier early, or ``None``: ``tier`` hedges not."""
        if not tier.hedge or self.deadline_s is None or expected is None:
            return None
        return max(0.0, self.deadline_s - self.elapsed_s() - expected)
