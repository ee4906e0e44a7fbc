"""Where a job that ``cascade run`` runs for another command keeps its files.

``cascade record`` and ``cascade truth --by judge`` each write a tasks file and policies into
a folder of the dataset, and run them with ``cascade run`` into a store of their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["JobFolder"]


@dataclass(frozen=True, slots=True)
class JobFolder:
    """A job's folder, and its files in it."""

    folder: Path
    store: Path
    """The store the job's run writes into (beside the dataset's files, shared by its jobs)."""

    @property
    def tasks(self) -> Path:
        """The job's tasks file."""
        return self.folder / "tasks.jsonl"

    @property
    def policies(self) -> Path:
        """The job's policies folder."""
        return self.folder / "policies"

    @property
    def results(self) -> Path:
        """The job's results file (``cascade run --out``)."""
        return self.folder / "results.jsonl"
