"""The progress bar and summary on a terminal, and the plain lines they become elsewhere."""

from __future__ import annotations

import io
import re
from pathlib import Path

from cascade import Store
from cascade.cli.tables import show_summary
from cascade.run.progress import Progress, Tally
from cascade.run.summary import render, summarize
from tests.helpers import make


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        """Always a terminal."""
        return True


def test_on_a_terminal_the_bar_is_redrawn_in_place() -> None:
    """A terminal gets rich's bar, redrawn over itself, ended by a newline at the end."""
    out = Terminal()
    progress = Progress(total=200, stream=out, interval_s=0.0)
    progress.update(Tally(done=50, accepted=45, escalated=5, cost_usd=0.25))
    progress.update(Tally(done=200, accepted=190, escalated=20, cost_usd=1.0), final=True)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())
    assert text.endswith("\n")
    assert text.count("\n") == 1
    drawn = [part for part in text.split("\r") if part.strip()]
    assert any("50/200" in part and "25%" in part for part in drawn)
    last = drawn[-1]
    assert "200/200" in last
    assert "100%" in last
    assert "accepted 95.0%" in last
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
    assert "accepted 66.7%" in lines[-1]


def test_the_summary_is_a_table_on_a_terminal_and_plain_lines_elsewhere(tmp_path: Path) -> None:
    """The same figures: rich tables for a person at a terminal, the plain text for a pipe."""
    cascade, _ = make({"a": ["no"], "b": ["ok"]}, ["a", "b"], store=Store(tmp_path / "r.db"))
    cascade.run({"id": "t1", "type": "demo", "input": "x"})
    assert cascade.settings.store is not None
    summary = summarize(cascade.settings.store)
    plain, table = io.StringIO(), Terminal()
    show_summary(summary, plain)
    show_summary(summary, table)
    assert plain.getvalue() == render(summary) + "\n"
    drawn = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", table.getvalue())
    assert "┃ tier" in drawn
    assert "│ 1    │ b" in drawn
    assert "acceptance rate 100.0%" in drawn
    assert "tier 0: 1 x " in drawn
    assert ": 1 x wanted 'ok', got 'no'" in drawn


def test_a_task_run_twice_counts_once_per_tier(tmp_path: Path) -> None:
    """A task executed again (a lost lease) is one task reached and accepted, never 200 %."""
    cascade, _ = make({"a": ["ok", "ok"]}, ["a"], store=Store(tmp_path / "r.db"))
    for _ in range(2):
        cascade.run({"id": "t1", "type": "demo", "input": "x"})
    assert cascade.settings.store is not None
    assert cascade.settings.store.count("attempts") == 2
    tier = summarize(cascade.settings.store).to_json()["by_type"]["demo"][0]
    assert (tier["tasks_reached"], tier["accepted"], tier["acceptance_rate"]) == (1, 1, 1.0)
