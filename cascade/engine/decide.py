"""What to do after an answer (or a failure to get one): one pure function over one state record.

In the manner of tenacity's strategies, :func:`decide` takes a :class:`Moment` (what the tier
just did, where the ladder stands, what the task has spent) and returns a :class:`Choice`:
accept, re-ask the same tier with the validators' feedback, escalate to the next tier, or stop.
It calls nothing and remembers nothing, so tests can drive every branch without a backend.

>>> from cascade.types import Verdict
>>> decide(Moment(Verdict(False), asked=1, reasks=1, at_top=False)).decision
<Decision.REASK: 'reask'>
>>> decide(Moment(Verdict(False), asked=2, reasks=1, at_top=True)).why
'top'
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from cascade.enums import Decision
from cascade.types import Verdict

__all__ = ["Choice", "Moment", "decide"]

Why = Literal["accepted", "fault", "reask", "escalate", "top", "budget", "deadline"]


class Moment(NamedTuple):
    """Where a task stands after one ask of a tier (a named tuple: made once per ask, cheaply).

    ``verdict`` is ``None`` when the tier gave no answer (its calls ended in a provider error).
    ``asked`` counts the asks of this tier so far, this one included; ``reasks`` is its re-ask
    budget. ``spent`` is what the task spent before this step, ``pending`` what this step cost
    (the answer and any judge's calls), against ``budget_usd``.
    """

    verdict: Verdict | None
    asked: int
    reasks: int
    at_top: bool
    spent: float = 0.0
    pending: float = 0.0
    budget_usd: float | None = None


class Choice(NamedTuple):
    """The decision, and why: ``budget``, ``deadline`` and ``top`` are the reasons to stop early.

    :func:`decide` never says ``deadline``: the loop does, knowing the next tier's latency.
    """

    decision: Decision
    why: Why


def decide(moment: Moment) -> Choice:
    """Accept, re-ask, escalate or stop (see the module's doc).

    A re-ask is expected to cost what this ask did, so the budget is checked against both; an
    escalation's cost cannot be known before it is asked.
    """
    verdict = moment.verdict
    if verdict is not None and verdict.fault:
        return Choice(Decision.STOP, "fault")
    if verdict is not None and verdict.passed:
        return Choice(Decision.ACCEPT, "accepted")
    wanted = Decision.REASK if verdict is not None and moment.asked <= moment.reasks else None
    if wanted is None and moment.at_top:
        return Choice(Decision.STOP, "top")
    estimate = moment.pending if wanted is Decision.REASK else 0.0
    budget = moment.budget_usd
    if budget is not None and moment.spent + moment.pending + estimate >= budget:
        return Choice(Decision.STOP, "budget")
    if wanted is Decision.REASK:
        return Choice(Decision.REASK, "reask")
    return Choice(Decision.ESCALATE, "escalate")
