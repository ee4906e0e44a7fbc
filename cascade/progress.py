"""Progress of a run: a live bar on a terminal, periodic log lines anywhere else.

>>> import io
>>> out = io.StringIO()
>>> progress = Progress(total=4, stream=out, interval_s=0.0)
>>> progress.update(Tally(done=2, accepted=2, escalated=1, cost_usd=0.5))
>>> out.getvalue().split(", ")[0]
'progress: 2/4 tasks (50%)'
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass
from typing import IO

__all__ = ["Progress", "Tally"]

_BAR = 24


@dataclass(slots=True)
class Tally:
    """What a run has done so far."""

    done: int = 0
    accepted: int = 0
    escalated: int = 0
    cost_usd: float = 0.0
    done_before: int = 0
    """Tasks done by earlier runs of the same job, not counted in this run's rate."""


class Progress:
    """Report a run's progress on ``stream`` (standard error by default).

    On a terminal the bar is redrawn in place at most every ``interval_s``; elsewhere one plain
    line is written every ``interval_s`` (10 s by default off a terminal), and one at the end.
    ``total`` is the number of tasks when known.
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
        self._drawn = False

    def update(self, tally: Tally, *, final: bool = False) -> None:
        """Show ``tally`` if it is time to (always when ``final``)."""
        now = time.monotonic()
        if not final and now - self._shown < self._interval:
            return
        self._shown = now
        text = self._text(tally, now)
        if self._tty:
            width = shutil.get_terminal_size((100, 20)).columns - 1
            self._stream.write("\r" + text[:width].ljust(width) + ("\n" if final else ""))
            self._drawn = not final
        else:
            self._stream.write(text + "\n")
        self._stream.flush()

    def _text(self, tally: Tally, now: float) -> str:
        elapsed = max(now - self._started, 1e-9)
        rate = (tally.done - tally.done_before) / elapsed
        done = f"{tally.done}"
        if self.total:
            share = min(1.0, tally.done / self.total)
            done = f"{tally.done}/{self.total} tasks ({share:.0%})"
            if self._tty:
                filled = round(share * _BAR)
                done = f"[{'#' * filled}{'.' * (_BAR - filled)}] {done}"
        else:
            done += " tasks"
        passed = tally.accepted / tally.done if tally.done else 0.0
        escalated = tally.escalated / tally.done if tally.done else 0.0
        if self._tty:  # one terminal line: short
            return (
                f"{done} {rate:.1f}/s pass {passed:.1%} esc {escalated:.1%} ${tally.cost_usd:.4f}"
            )
        return (
            f"progress: {done}, {rate:.1f} tasks/s, pass {passed:.1%},"
            f" escalated {escalated:.1%}, ${tally.cost_usd:.4f}"
        )
