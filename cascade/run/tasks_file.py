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
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from cascade.errors import TaskError
from cascade.types import Task

__all__ = ["Line", "count_tasks", "read_lines"]


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

    A JSONL line that is not UTF-8 or not JSON becomes a line with its problem; a CSV file that
    is not UTF-8 stops with an error naming the file and the row.
    """
    if path.suffix.lower() == ".csv":
        yield from _read_csv(path)
        return
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
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
    handle: IO[str]
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        try:
            for row in reader:
                data = {k: _csv_value(v) for k, v in row.items() if k and v not in (None, "")}
                yield _line(reader.line_num, data)
        except UnicodeDecodeError as exc:
            raise TaskError(f"{path}: after line {reader.line_num}: not UTF-8 ({exc})") from exc
        except csv.Error as exc:
            raise TaskError(f"{path}: line {reader.line_num}: {exc}") from exc


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
