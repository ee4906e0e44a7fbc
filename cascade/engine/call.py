"""One backend call as the engine keeps it: its answer, or the provider error it ended in.

:mod:`cascade.engine.calls` makes calls and returns them; :mod:`cascade.engine.unrecorded`
holds them until a step records them; the loop, the hedge and the record read them. It sits
apart so that each of those can name it without importing the others.
"""

from __future__ import annotations

from dataclasses import dataclass

from cascade.enums import CallKind
from cascade.errors import ProviderError
from cascade.types import Response

__all__ = ["Call"]


@dataclass(frozen=True, slots=True)
class Call:
    """One backend call: its answer, or the provider error it ended in."""

    model: str
    kind: CallKind
    latency_s: float
    response: Response | None = None
    error: ProviderError | None = None
    replayed: bool = False
    """Whether ``latency_s`` is a latency the backend reported that did not really pass here (a
    replay's recorded one): the task's clock then runs on such latencies, not the wall's."""
    batch: bool = False
    """Whether the call went through the provider's batch API."""
    cut_usd: float | None = None
    """For a call cut off in flight (a task interrupted): its prompt at the input price, which
    the provider bills."""
