"""A provider outage in progress, as the coordinator tells it while tasks wait it out.

A task waits for a provider that fails (5xx, refused connections, timeouts) for up to the run's
``--max-outage-s``, and stores nothing until it ends; the shared guard knows, for every model,
since when its calls have failed with no answer since. :class:`OutageWatch` asks it, and once a
model has been failing for a quarter of the outage bound (10 s at most), says so: in the
progress line, and as a ``cascade.outage`` event in the step log (``what`` = ``unreachable``),
with another (``recovered``) when the model answers again.

>>> from cascade.run.guard import Guard
>>> clock = iter([1.0, 13.0]).__next__
>>> guard = Guard(keys=["openai/m"], clock=clock)
>>> guard.failed("openai/m")
>>> OutageWatch(guard, 600.0).check()
'openai/m unreachable for 12 s (tasks wait up to 600 s)'
"""

from __future__ import annotations

from collections.abc import Callable

from cascade.run.guard import Guard
from cascade.steplog import StepLog

__all__ = ["OutageWatch"]

_MAX_HINT_AFTER_S = 10.0


class OutageWatch:
    """Tell the models failing longer than a while, and when they recover (see the module)."""

    def __init__(
        self,
        guard: Guard,
        max_outage_s: float,
        *,
        log: StepLog | None = None,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self._guard = guard
        self._max_outage_s = max_outage_s
        self._after_s = min(_MAX_HINT_AFTER_S, max_outage_s / 4)
        self._log = log
        self._say = say
        self._told: set[str] = set()

    def check(self) -> str:
        """The outage hint for the progress line ("" when no model is failing for long)."""
        failing = self._guard.failing()
        long = {key: s for key, s in failing.items() if s > self._after_s}
        for key in sorted(long.keys() - self._told):
            self._tell("unreachable", key, long[key])
        for key in sorted(self._told - failing.keys()):  # it answered again
            self._tell("recovered", key, None)
        self._told = (self._told & failing.keys()) | long.keys()
        if not long:
            return ""
        models = ", ".join(f"{key} unreachable for {s:.0f} s" for key, s in sorted(long.items()))
        return f"{models} (tasks wait up to {self._max_outage_s:.0f} s)"

    def _tell(self, what: str, key: str, failing_s: float | None) -> None:
        if self._log is not None:
            self._log.event("cascade.outage", what=what, model=key, failing_s=failing_s,
                             max_outage_s=self._max_outage_s)  # fmt: skip
        if self._say is not None:
            text = (f"provider trouble: {key} unreachable for {failing_s:.0f} s, tasks wait up to "
                    f"{self._max_outage_s:.0f} s" if failing_s is not None
                    else f"provider trouble over: {key} answers again")  # fmt: skip
            self._say(text)
