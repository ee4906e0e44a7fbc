"""The one backend interface: a single async method, ``complete(request) -> Response``.

A backend prices every call it serves: from the request's ``price`` when the tier sets one,
otherwise from what it knows of the model. It raises :class:`cascade.errors.ProviderError`
subclasses for calls it cannot serve, and never judges the answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

from cascade.types import Message, Price, Usage

__all__ = ["Backend", "Request", "Response"]


@dataclass(frozen=True, slots=True)
class Request:
    """One call to a model: what to ask, of which model, within what deadline."""

    model: str
    messages: tuple[Message, ...]
    task_id: str = ""
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    timeout_s: float = 60.0
    price: Price | None = None
    reask: int = 0
    """How many times the task was already put to this tier: 0 for a first ask, ``k`` for the
    ``k``-th re-ask (whose conversation ends with the earlier answers and their feedback)."""
    sample: int = 0
    """0 for an ordinary ask; ``j`` for the ``j``-th extra sample of the same question, which a
    self-consistency check asks for (a replay serves the recorded samples from the last)."""
    confidence: bool = False
    """Whether the caller reads the model's confidence in its answer. A backend that pays extra
    to get one (a second, self-assessment call, say) does so only then; a replay charges the
    recorded cost with the self-assessment only then, and the answer-only cost otherwise."""


@dataclass(frozen=True, slots=True)
class Response:
    """A completion and its accounting.

    ``latency_s`` is set by backends that know a call's real latency better than a wall clock
    around ``complete`` does (a replay of a recorded call, say); otherwise the engine measures it.
    """

    text: str
    model: str
    usage: Usage
    cost_usd: float
    latency_s: float | None = None
    confidence: float | None = None
    compute_s: float = 0.0
    """Seconds of this machine's compute the call took: set by local backends."""


@runtime_checkable
class Backend(Protocol):
    """Anything that can complete a :class:`Request`."""

    async def complete(self, request: Request) -> Response:
        """Complete ``request``, or raise a :class:`cascade.errors.ProviderError`."""
        ...
