"""The ledger of a run's provider batches: what was submitted, so a resumed run never submits twice.

A batch tier's calls are sent as provider batches (see :mod:`cascade.backends.batcher`). Each
batch is written here in two steps around the one request that makes the provider run (and
bill) it: first its uploaded input file with the ``custom_id`` of every request in it, then,
once the provider has created the batch, its id. A run that crashes between the two finds the
file here and asks the provider whether a batch of it exists before creating one; a request
whose ``custom_id`` is here waits for that batch instead of being sent again.

>>> from cascade.store import Store
>>> with Store(":memory:") as store:
...     book = BatchBook(store, "r1")
...     book.add("file-1", "openai/gpt-4o-mini", ["a", "b"])
...     book.created("file-1", "batch-1")
...     (book.find("b").batch_id, book.find("b").state, book.find("z"))
('batch-1', 'submitted', None)
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from cascade.store.db import Store

__all__ = ["BatchBook", "Submitted"]


@dataclass(frozen=True, slots=True)
class Submitted:
    """One batch as the ledger has it: ``batch_id`` is ``None`` until the provider created it."""

    file_id: str
    model: str
    batch_id: str | None
    state: str
    """``uploaded`` (its file, not yet a batch), ``submitted``, or how the provider ended it."""
    items: int
    created_at: float
    """When the file was uploaded (wall-clock seconds): a batch's deadline counts from here."""


_COLUMNS = "file_id, model, batch_id, state, items, created_at"


class BatchBook:
    """A run's batches and the requests in each, in the run store."""

    def __init__(self, store: Store, run_id: str) -> None:
        self._store = store
        self.run_id = run_id

    def add(self, file_id: str, model: str, custom_ids: Sequence[str]) -> None:
        """An input file was uploaded: keep it and its requests, before any batch is made of it."""
        with self._store.writing() as db:
            db.execute(
                "INSERT INTO batches (run_id, file_id, model, items, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (self.run_id, file_id, model, len(custom_ids), time.time()),
            )
            db.executemany(
                "INSERT INTO batch_items (run_id, custom_id, file_id) VALUES (?, ?, ?)",
                [(self.run_id, custom_id, file_id) for custom_id in custom_ids],
            )

    def created(self, file_id: str, batch_id: str) -> None:
        """The provider made a batch of ``file_id``."""
        self._set(file_id, "batch_id = ?, state = 'submitted'", batch_id)

    def ended(self, file_id: str, state: str) -> None:
        """The provider ended the batch (``completed``, ``expired``, ``cancelled``, ``failed``)."""
        self._set(file_id, "state = ?", state)

    def find(self, custom_id: str) -> Submitted | None:
        """The batch a request was already put in, if any."""
        with self._store.reading() as db:
            row = db.execute(
                f"SELECT {_COLUMNS} FROM batches JOIN batch_items USING (run_id, file_id)"  # noqa: S608  # constant columns
                " WHERE run_id = ? AND custom_id = ?",
                (self.run_id, custom_id),
            ).fetchone()
        return None if row is None else Submitted(*row)

    def batch(self, file_id: str) -> Submitted | None:
        """One batch by its input file."""
        with self._store.reading() as db:
            row = db.execute(
                f"SELECT {_COLUMNS} FROM batches WHERE run_id = ? AND file_id = ?",  # noqa: S608  # constant columns
                (self.run_id, file_id),
            ).fetchone()
        return None if row is None else Submitted(*row)

    def all(self) -> list[Submitted]:
        """Every batch of the run, oldest first."""
        with self._store.reading() as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM batches WHERE run_id = ? ORDER BY created_at",  # noqa: S608  # constant columns
                (self.run_id,),
            ).fetchall()
        return [Submitted(*row) for row in rows]

    def _set(self, file_id: str, assignment: str, value: str) -> None:
        with self._store.writing() as db:
            db.execute(
                f"UPDATE batches SET {assignment} WHERE run_id = ? AND file_id = ?",  # noqa: S608  # constant assignments
                (value, self.run_id, file_id),
            )
