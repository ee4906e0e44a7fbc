"""Calls a task has made that no step records yet: what a task cut off must not lose.

Every call the engine makes for a task (an answer, a retry, a fallback, a validator's second
opinion) ends in a :class:`~cascade.engine.call.Call`, and a step records it once its attempt
is judged. A task cut off by an interrupt never gets there: the calls of the attempt in
progress (failed retries, an answer whose validators were still running, a call in flight)
were paid for and would never be stored. :class:`Unrecorded` holds them: the caller adds each
call as it ends (a call cancelled in flight too, priced at its prompt tokens, since providers
bill what they were sent), a step takes its call out, and a task cut off records what is left
as steps of decision ``cancel`` (:meth:`cascade.engine.record.Record.cut_off`).

It travels in a context variable set for the task's climb, so every call made within it is
seen, whichever part of the engine makes it. A hedge's legs each get a branch of their own
(:func:`branch_task`), closed once the race has recorded them in its own way.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from cascade.engine.call import Call

__all__ = ["Unrecorded", "at_tier", "branch_task", "made", "tracking"]

_CURRENT: contextvars.ContextVar[Unrecorded | None] = contextvars.ContextVar(
    "cascade_unrecorded", default=None
)
T = TypeVar("T")


@dataclass(eq=False)
class Unrecorded:
    """The calls of one task (or one hedge leg) that no step records yet, and at which tier."""

    tier: int = 0
    """The tier the task is at: a step of a call left here is recorded at it."""
    calls: list[Call] = field(default_factory=list)
    branches: list[Unrecorded] = field(default_factory=list)

    def left(self) -> list[tuple[int, Call]]:
        """Every call still unrecorded, here and in the open branches, with its tier."""
        found = [(self.tier, call) for call in self.calls]
        return found + [pair for branch in self.branches for pair in branch.left()]

    def take(self, call: Call) -> None:
        """A step recorded ``call`` (this very one): it is no longer at risk."""
        for index, held in enumerate(self.calls):
            if held is call:
                del self.calls[index]
                return
        for branch in self.branches:
            branch.take(call)

    def close(self, branch: Unrecorded) -> None:
        """A hedge recorded its leg's calls itself: forget the leg's branch."""
        if branch in self.branches:
            self.branches.remove(branch)


def made(call: Call) -> Call:
    """A call of the current task ended (or was cut off in flight): hold it until recorded."""
    current = _CURRENT.get()
    if current is not None:
        current.calls.append(call)
    return call


def at_tier(index: int) -> None:
    """The current task (or hedge leg) is asking tier ``index`` now."""
    current = _CURRENT.get()
    if current is not None:
        current.tier = index


@contextmanager
def tracking(calls: Unrecorded) -> Iterator[Unrecorded]:
    """Hold the calls made within the block (in this task and those it starts) in ``calls``."""
    token = _CURRENT.set(calls)
    try:
        yield calls
    finally:
        _CURRENT.reset(token)


def branch_task(
    coroutine: Coroutine[Any, Any, T], tier: int
) -> tuple[asyncio.Task[T], Unrecorded | None]:
    """Start ``coroutine`` as a task whose calls go to a new branch at ``tier`` (if tracking)."""
    current = _CURRENT.get()
    if current is None:
        return asyncio.ensure_future(coroutine), None
    branch = Unrecorded(tier)
    current.branches.append(branch)
    context = contextvars.copy_context()
    context.run(_CURRENT.set, branch)
    return asyncio.get_running_loop().create_task(coroutine, context=context), branch
