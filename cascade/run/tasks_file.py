r"""Reading a tasks file: JSONL or CSV with a header row, streamed line by line.

>>> import pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "tasks.jsonl"
>>> _ = path.write_text('{"id": "t1", "input": "x"}\n\n{oops\n')
>>> [(line.number, line.problem is None) for line in read_lines(path)]
[(1, True), (3, False)]
>>> count_tasks(path)
2
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from cascade.errors import TaskError
from cascade.types import Task

__all__ = ["Line", "count_tasks", "input_bytes", "read_lines"]


@dataclass(frozen=True, slots=True)
class Line:
    """One input line: a task, or why it is not one (with whatever could be read of it)."""

    number: int
    task: Task | None
    raw: Any
    problem: str | None = None


def _csv_value(value: str) -> Any:
    stripped = value.strip()
    if stripped[:1] in "[{":
        try:
            return json.loads(stripped)
        except ValueError:
            return value
    return value


def read_lines(path: Path) -> Iterator[Line]:
    """Stream tasks from JSONL, or CSV with a header row; never loads the file whole.

    A line that is not UTF-8 or not JSON (or, in CSV, not a row) becomes a line with its
    problem, numbered as the file numbers it, and reading goes on. A byte-order mark at the
    start of the file is not part of the first line.
    """
    if path.suffix.lower() == ".csv":
        yield from _read_csv(path)
        return
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                yield Line(number, None, raw.decode("utf-8", "replace").rstrip("\n"),
                           f"not UTF-8: {exc}")  # fmt: skip
                continue
            try:
                data = json.loads(text)
            except ValueError as exc:
                yield Line(number, None, text.rstrip("\n"), f"not valid JSON: {exc}")
                continue
            yield _line(number, data)


def _read_csv(path: Path) -> Iterator[Line]:
    """Rows of a CSV file with a header, each numbered by the line it starts on.

    A row that cannot be read (a quote never closed, a field that runs on after its closing
    quote, a line that is not UTF-8) or that has more or fewer fields than the header is a line
    with its problem; reading goes on at the next line, so a bad row never swallows the rows
    after it.
    """
    with path.open("rb") as handle:
        physical = _Lines(handle)
        header_number, header_text = next(physical, (0, ""))
        header, problem = _record(header_text)
        problem = physical.bad.get(header_number, problem)
        if problem is not None or not header:
            raise TaskError(f"{path}: line {header_number}: no header row ({problem})")
        yield from _rows(physical, header)


class _Lines:
    """Numbered physical lines decoded from UTF-8, with room to push back lines read ahead.

    A line that is not UTF-8 is decoded with replacement characters, and why is kept in
    :attr:`bad` under its number.
    """

    def __init__(self, handle: IO[bytes]) -> None:
        self._lines = enumerate(handle, start=1)
        self._back: list[tuple[int, str]] = []
        self.bad: dict[int, str] = {}

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> tuple[int, str]:
        if self._back:
            return self._back.pop()
        number, raw = next(self._lines)
        try:
            return number, raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            self.bad[number] = f"not UTF-8: {exc}"
            return number, raw.decode("utf-8", "replace")

    def push_back(self, lines: list[tuple[int, str]]) -> None:
        self._back.extend(reversed(lines))


def _rows(lines: _Lines, header: list[str]) -> Iterator[Line]:
    for number, text in lines:
        if not text.strip():
            continue
        held = [(number, text)]
        row, problem = _record(text)
        # A quoted field may hold line breaks: read on while the quote is open, within bounds.
        while problem == _OPEN_QUOTE and len(held) < _MAX_ROW_LINES:
            following = next(lines, None)
            if following is None:
                break
            held.append(following)
            row, problem = _record("".join(t for _, t in held))
        if problem is None and len(row) != len(header):
            problem = f"the row has {len(row)} fields, the header {len(header)}"
        if number in lines.bad:
            lines.push_back(held[1:])  # the lines read ahead are rows of their own
            yield Line(number, None, text.rstrip("\r\n"), lines.bad[number])
            continue
        if spoiled := [n for n, _ in held if n in lines.bad]:  # inside a quoted field
            why = f"line {spoiled[0]}, inside its quoted field, is {lines.bad[spoiled[0]]}"
            yield Line(number, None, text.rstrip("\r\n"), why)
            continue
        if problem is not None:
            if len(held) > 1:
                lines.push_back(held[1:])  # the lines read ahead are rows of their own
                problem = "a quoted field is never closed"
            elif problem == _OPEN_QUOTE:
                problem = "a quoted field is never closed"
            yield Line(number, None, text.rstrip("\r\n"), f"bad CSV row: {problem}")
            continue
        data = {k: _csv_value(v) for k, v in zip(header, row, strict=True) if k and v != ""}
        yield _line(number, data)


_OPEN_QUOTE = "unexpected end of data"
_MAX_ROW_LINES = 1000
"""A quoted field may span at most this many lines; beyond, its quote is taken as unclosed."""


def _record(text: str) -> tuple[list[str], str | None]:
    """The fields of one CSV record, or what is wrong with it."""
    try:
        rows = list(csv.reader(io.StringIO(text), strict=True))
    except csv.Error as exc:
        return [], str(exc)
    if len(rows) != 1:
        return [], _OPEN_QUOTE if not rows else "more than one record"
    return rows[0], None


def _line(number: int, data: Any) -> Line:
    try:
        return Line(number, Task.from_dict(data), data)
    except TaskError as exc:
        return Line(number, None, data, str(exc))


def count_tasks(path: Path) -> int | None:
    """The number of non-blank lines of a JSONL file (fast, for a progress bar); None for CSV."""
    if path.suffix.lower() == ".csv":
        return None  # a quoted field may span lines: only reading the rows tells
    count = 0
    with path.open("rb") as handle:
        for raw in handle:
            count += bool(raw.strip())
    return count


def input_bytes(task: Task) -> int:
    """The size of what a task would send, in UTF-8 bytes (against ``max_input_bytes``)."""
    if task.input is not None:
        return len(task.input.encode("utf-8", "replace"))
    return sum(len(m.get("content", "").encode("utf-8", "replace")) for m in task.messages or ())
