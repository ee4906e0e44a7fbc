"""What a run did, and what is left of its job, as :class:`~cascade.run.runner.Runner` counts."""

from __future__ import annotations

from dataclasses import dataclass, field

from cascade.run.progress import Tally
from cascade.store.unsaved import Kept

__all__ = ["Counts"]


@dataclass
class Counts:
    """What a run did, and what is left of its job."""

    lines: int = 0
    """Input lines read by this run (a resumed run skips the lines read before)."""
    read_before: int = 0
    """Input lines earlier runs of the same job had read."""
    results: int = 0
    quarantined: int = 0
    duplicates: int = 0
    done_before: int = 0
    """Results that earlier runs of the same job had already stored."""
    repeated: int = 0
    """Tasks of this run whose calls were made again, because a lease was lost in a crash."""
    retried: int = 0
    """Failed tasks of earlier runs sent back to run again (``--retry-failed``)."""
    failed: int = 0
    """Results of this job that ended ``failed`` (provider trouble, a bad backend)."""
    spent_usd: float = 0.0
    remaining: int = 0
    """Tasks read but not done: non-zero only when the budget stopped the run."""
    input_done: bool = False
    budget_reached: bool = False
    actors_lost: int = 0
    """Ray actors that died during the run; each was replaced and its tasks run again."""
    interrupted: int = 0
    """The signal that interrupted the run (SIGINT, SIGTERM), or 0."""
    write_failed: str | None = None
    """The first write of the run that failed (a full disk): the path and why."""
    kept: Kept | None = None
    """Paid calls the store could not take, kept in its side file (:mod:`cascade.store.unsaved`)."""
    restored: int = 0
    """Entries of an earlier run's side file read back into the store at the start."""
    tally: Tally = field(default_factory=Tally)
