"""Paid calls the store could not take (a full disk), kept in a side file until it can.

When a write to the store fails mid-run (no space left on the device, an I/O error), what was to
be written, finished tasks' outcomes and audits' steps, is appended to ``STORE.unsaved.jsonl``
next to the store, one entry a line, as the store's own rows; when that file cannot be written
either, to the same name under the temporary directory (``$TMPDIR``). No paid call is lost.

The next run on the store reads every entry back into the store before it leases a task, each
once (an entry whose result or audit the store already holds is passed over), then removes the
file: so a resume neither runs those tasks again nor counts their calls twice.

>>> failure = Failure("run.db", "No space left on device")
>>> str(failure)
'could not write run.db (No space left on device)'
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cascade.outcome import Outcome, Step
from cascade.store.db import Store
from cascade.store.rows import attempt_row, outcome_from_row, result_row, step_from_row

__all__ = [
    "Failure",
    "Kept",
    "SideFile",
    "read_kept",
    "restore_unsaved",
    "side_paths",
    "write_failure",
]

_SIDE = ".unsaved.jsonl"


@dataclass(frozen=True, slots=True)
class Failure:
    """A write that failed: the path, and why."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"could not write {self.path} ({self.reason})"


def write_failure(exc: BaseException, path: str) -> Failure | None:
    """The failed write ``exc`` is, at ``path``; ``None`` when it is not one (a bug, a lock).

    An ``OSError`` (no space left, an I/O error), or SQLite's "database or disk is full" and
    its disk I/O errors.
    """
    if isinstance(exc, OSError):
        return Failure(path, exc.strerror or str(exc))
    if isinstance(exc, sqlite3.OperationalError):
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None and code & 0xFF in (sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR):
            return Failure(path, str(exc))
        if code is None and ("disk is full" in str(exc) or "disk I/O" in str(exc)):
            return Failure(path, str(exc))
    return None


def side_paths(store_path: str) -> tuple[Path, Path]:
    """Where a store's unsaved calls go: next to it, else under the temporary directory."""
    name = Path(store_path).name + _SIDE
    return Path(store_path + _SIDE), Path(tempfile.gettempdir()) / name


@dataclass(frozen=True, slots=True)
class Kept:
    """What a side file holds: its entries, their paid calls, what those cost, the failure."""

    path: Path
    entries: int
    calls: int
    cost_usd: float
    failure: str


class SideFile:
    """Append entries the store could not take to a store's side file (see the module)."""

    def __init__(self, store_path: str) -> None:
        self.paths = side_paths(store_path)

    def keep_outcomes(self, done: Sequence[tuple[Outcome, int]], failure: Failure) -> Path | None:
        """Keep finished tasks' outcomes (with how many times each ran); where they went."""
        entries = []
        for outcome, times in done:
            execution = uuid.uuid4().hex
            entries.append({
                "failure": str(failure),
                "result": list(result_row(outcome, execution, time.time(), times)),
                "steps": [list(attempt_row(step, execution)) for step in outcome.steps],
            })  # fmt: skip
        return self._append(entries)

    def keep_steps(self, steps: Sequence[Step], execution_id: str, failure: Failure) -> Path | None:
        """Keep steps made after a task's result was written (its audit); where they went."""
        rows = [list(attempt_row(step, execution_id)) for step in steps]
        return self._append([{"failure": str(failure), "steps": rows}])

    def _append(self, entries: list[dict[str, Any]]) -> Path | None:
        """Each entry a line, in one write per file (several processes may append at once)."""
        data = "".join(json.dumps(entry) + "\n" for entry in entries).encode()
        for path in self.paths:
            try:
                descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(descriptor, view) :]
                finally:
                    os.close(descriptor)
            except OSError:
                continue  # a line cut short is passed over on restore; the next path has it whole
            return path
        return None


def read_kept(store_path: str) -> Kept | None:
    """What the store's side files hold (``None`` when there are none)."""
    found = [(path, entry) for path in side_paths(store_path) for entry in _entries(path)]
    if not found:
        return None
    steps = [row for _, entry in found for row in entry["steps"]]
    paths = sorted({path for path, _ in found}, key=str)
    return Kept(paths[0], len(found), len(steps), sum(float(row[11]) for row in steps),
                str(found[0][1].get("failure", "")))  # fmt: skip


def restore_unsaved(store: Store) -> int:
    """Read the store's side files back into it, each entry once; how many entries were new.

    Each file is removed once its entries are in the store.
    """
    restored = 0
    for path in side_paths(store.path):
        if not path.exists():
            continue
        for entry in _entries(path):
            restored += _restore(store, entry)
        path.unlink()
    return restored


def _restore(store: Store, entry: dict[str, Any]) -> int:
    steps = tuple(step_from_row(tuple(row)) for row in entry["steps"])
    result = entry.get("result")
    if result is None:
        execution = entry["steps"][0][2] if steps else ""
        held = store.select("SELECT 1 FROM attempts WHERE execution_id = ? LIMIT 1", (execution,))
        if not steps or next(iter(held), None) is not None:
            return 0
        store.append_steps(steps, execution)
        return 1
    row = tuple(result)
    if store.outcome(row[0], row[1]) is not None:
        return 0
    store.record_many([(outcome_from_row(row, steps), None)], [int(row[15])])
    return 1


def _entries(path: Path) -> Iterator[dict[str, Any]]:
    """A side file's whole entries (a line cut short by the full disk is passed over)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("steps"), list):
            yield entry
