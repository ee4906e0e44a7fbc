"""Verdicts of sandboxed test runs, kept on disk so that the same code is never tested twice.

A verdict is keyed by a hash of everything that decides it: the code, the tests, the setup,
the data files, the limits and the harness version. A second ``cascade optimize`` or ``cascade
bench`` of the same suite reads its verdicts back instead of starting sandboxes. A run killed by
the wall clock is kept too (an endless loop would cost its full limit on every replay), so a
verdict reached on a machine too loaded to finish in time stays until ``--no-cache``.

The cache is SQLite in WAL mode, safe to share between processes.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

from cascade.errors import ConfigError
from cascade.types import Verdict

__all__ = ["VerdictCache", "default_cache_path", "verdict_key"]


def default_cache_path() -> Path:
    """``$CASCADE_CACHE/verdicts.db``, by default under ``~/.cache/cascade``."""
    root = os.environ.get("CASCADE_CACHE") or str(Path.home() / ".cache" / "cascade")
    return Path(root) / "verdicts.db"


def verdict_key(*parts: Any) -> str:
    """A stable key for the things that decide a verdict."""
    text = json.dumps(parts, sort_keys=True, default=repr, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class VerdictCache:
    """A key → verdict table on disk."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_cache_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS verdicts (key TEXT PRIMARY KEY, passed INTEGER"
                " NOT NULL, reason TEXT NOT NULL, feedback TEXT NOT NULL)"
            )
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"cannot open the verdict cache {self.path}: {exc}") from exc
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        return f"VerdictCache({str(self.path)!r})"

    def get(self, key: str) -> Verdict | None:
        """The verdict kept under ``key``, if any."""
        row = self._db.execute(
            "SELECT passed, reason, feedback FROM verdicts WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        return Verdict(bool(row[0]), reason=row[1], feedback=row[2])

    def put(self, key: str, verdict: Verdict) -> None:
        """Keep ``verdict`` under ``key``."""
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?, ?)",
                (key, int(verdict.passed), verdict.reason, verdict.feedback),
            )

    def close(self) -> None:
        """Close the database."""
        self._db.close()
