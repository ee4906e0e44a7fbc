"""A run's writes that can fail mid-run (a full disk): the first failure, and stopping on it.

The coordinator writes the store (the ledger's reading position, reclaimed leases) and the
results and quarantine files; the workers write outcomes and audits to the store, and keep in
the store's side file what it could not take (see :mod:`cascade.store.unsaved`). When any of
those writes fails, the run stops leasing: the tasks in flight finish, what can be written is
written, and the run ends naming the path that failed and the side file.

>>> import threading
>>> writes = Writes("run.db", threading.Event())
>>> with writes.guard("results.jsonl"):
...     raise OSError(28, "No space left on device")
>>> writes.failure
'could not write results.jsonl (No space left on device)'
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from cascade.store.unsaved import Failure, read_kept, side_paths, write_failure

__all__ = ["Writes"]


class _Settable(Protocol):
    def set(self) -> None: ...


class Writes:
    """The first failed write of a run (``failure``), which sets ``stop`` (see the module)."""

    def __init__(self, store_path: str, stop: _Settable) -> None:
        self._sides = side_paths(store_path)
        self._store_path = store_path
        self._stop = stop
        self.failure: str | None = None
        self.broken: set[str] = set()
        """The paths a write failed on."""

    @contextmanager
    def guard(self, path: str) -> Iterator[None]:
        """Run a write to ``path``; a failed write stops the run instead of raising."""
        try:
            yield
        except Exception as exc:
            failure = write_failure(exc, path)
            if failure is None:
                raise
            self.broken.add(path)
            self.failed(failure)

    def failed(self, failure: Failure | str) -> None:
        """Note a failed write (the first is kept), and stop leasing."""
        self.failure = self.failure or str(failure)
        self._stop.set()

    def watch(self) -> None:
        """Stop when a worker has kept calls in the side file: the store failed it."""
        if self.failure is None and any(path.exists() for path in self._sides):
            kept = read_kept(self._store_path)
            self.failed(kept.failure if kept is not None else f"could not write {self._store_path}")
