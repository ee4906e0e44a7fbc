"""The one backend interface: a single async method, ``complete(request) -> Response``.

A backend prices every call it serves: from the request's ``price`` when the tier sets one,
otherwise from what it knows of the model. It raises :class:`cascade.errors.ProviderError`
subclasses for calls it cannot serve, and never judges the answer.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from cascade.types import Request, Response

__all__ = ["Backend", "Request", "Response"]


@runtime_checkable
class Backend(Protocol):
    """Anything that can complete a :class:`Request`."""

    async def complete(self, request: Request) -> Response:
        """Complete ``request``, or raise a :class:`cascade.errors.ProviderError`."""
        ...
