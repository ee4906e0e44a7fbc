"""Progress of a run: a live bar on a terminal (drawn by rich), periodic lines anywhere else.

>>> import io
>>> out = io.StringIO()
>>> progress = Progress(total=4, stream=out, interval_s=0.0)
>>> progress.update(Tally(done=2, accepted=2, escalated=1, cost_usd=0.5))
>>> out.getvalue().split(", ")[0]
'progress: 2/4 tasks (50%)'
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import IO, Any

__all__ = ["Progress", "Tally"]


@dataclass(slots=True)
class Tally:
    """What a run has done so far."""

    done: int = 0
    accepted: int = 0
    escalated: int = 0
    cost_usd: float = 0.0
    done_before: int = 0
    """Tasks done by earlier runs of the same job, not counted in this run's rate."""
    trouble: str = ""
    """A provider outage tasks are waiting out (see :mod:`cascade.run.outages`), if any."""

    def rates(self) -> tuple[float, float]:
        """The acceptance and escalation rates so far."""
        if not self.done:
            return 0.0, 0.0
        return self.accepted / self.done, self.escalated / self.done


class Progress:
    """Report a run's progress on ``stream`` (standard error by default).

    On a terminal, a rich progress bar is redrawn in place at most every ``interval_s``;
    elsewhere one plain line is written every ``interval_s`` (10 s by default off a terminal),
    and one at the end. ``total`` is the number of tasks when known.
    """

    def __init__(
        self,
        total: int | None = None,
        *,
        stream: IO[str] | None = None,
        interval_s: float | None = None,
    ) -> None:
        self.total = total
        self._stream = stream if stream is not None else sys.stderr
        self._tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self._interval = interval_s if interval_s is not None else (0.2 if self._tty else 10.0)
        self._started = time.monotonic()
        self._shown = -float("inf")
        self._bar: Any = None
        self._task: Any = None

    def update(self, tally: Tally, *, final: bool = False) -> None:
        """Show ``tally`` if it is time to (always when ``final``)."""
        now = time.monotonic()
        if not final and now - self._shown < self._interval:
            return
        self._shown = now
        if self._tty:
            self._draw(tally, final)
            return
        self._stream.write(self._line(tally, now) + "\n")
        self._stream.flush()

    def note(self, text: str) -> None:
        """A line under the progress (a drift alarm, say), on a terminal above the bar."""
        if self._bar is not None:
            self._bar.console.print(text, highlight=False)
            return
        self._stream.write(text + "\n")
        self._stream.flush()

    def _draw(self, tally: Tally, final: bool) -> None:
        """Move the terminal's bar (rich is imported here, on first use)."""
        if self._bar is None:
            from rich.console import Console  # noqa: PLC0415  # only terminals pay for rich
            from rich.progress import (  # noqa: PLC0415
                BarColumn,
                MofNCompleteColumn,
                TaskProgressColumn,
                TextColumn,
                TimeElapsedColumn,
            )
            from rich.progress import Progress as Bar  # noqa: PLC0415

            console = Console(file=self._stream, force_terminal=True)
            self._bar = Bar(
                BarColumn(),
                MofNCompleteColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[status]}"),
                TimeElapsedColumn(),
                console=console,
                auto_refresh=False,
            )
            self._bar.start()
            self._task = self._bar.add_task("tasks", total=self.total, status="")
        rate = (tally.done - tally.done_before) / max(time.monotonic() - self._started, 1e-9)
        passed, escalated = tally.rates()
        status = f"{rate:.1f}/s accepted {passed:.1%} esc {escalated:.1%} ${tally.cost_usd:.4f}"
        status += f" {tally.trouble}" if tally.trouble else ""
        self._bar.update(self._task, completed=tally.done, status=status)
        self._bar.refresh()
        if final:
            self._bar.stop()
            self._bar = None

    def _line(self, tally: Tally, now: float) -> str:
        rate = (tally.done - tally.done_before) / max(now - self._started, 1e-9)
        done = f"{tally.done} tasks"
        if self.total:
            done = f"{tally.done}/{self.total} tasks ({min(1.0, tally.done / self.total):.0%})"
        passed, escalated = tally.rates()
        trouble = f"; {tally.trouble}" if tally.trouble else ""
        return (
            f"progress: {done}, {rate:.1f} tasks/s, accepted {passed:.1%},"
            f" escalated {escalated:.1%}, ${tally.cost_usd:.4f}{trouble}"
        )
