"""The progress bar on a terminal, and the plain lines it becomes elsewhere."""

from __future__ import annotations

import io

from cascade.progress import Progress, Tally


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        """Always a terminal."""
        return True


def test_on_a_terminal_the_bar_is_redrawn_in_place() -> None:
    """A terminal gets one line redrawn with carriage returns, ended by a newline at the end."""
    out = Terminal()
    progress = Progress(total=200, stream=out, interval_s=0.0)
    progress.update(Tally(done=50, accepted=45, escalated=5, cost_usd=0.25))
    progress.update(Tally(done=200, accepted=190, escalated=20, cost_usd=1.0), final=True)
    text = out.getvalue()
    assert text.count("\r") == 2
    assert text.endswith("\n")
    assert text.count("\n") == 1
    last = text.split("\r")[-1]
    assert "[########################] 200/200 tasks (100%)" in last
    assert "pass 95.0%" in last
    assert "esc 10.0%" in last
    assert "$1.0000" in last


def test_off_a_terminal_it_writes_a_line_per_interval() -> None:
    """Elsewhere, plain lines, no more often than the interval, and always a final one."""
    out = io.StringIO()
    progress = Progress(stream=out, interval_s=3600)
    progress.update(Tally(done=1, accepted=1))
    progress.update(Tally(done=2, accepted=2))  # within the interval: not shown
    progress.update(Tally(done=3, accepted=2), final=True)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert "\r" not in out.getvalue()
    assert lines[-1].startswith("progress: 3 tasks,")
    assert "pass 66.7%" in lines[-1]
