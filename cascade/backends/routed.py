"""One backend in front of several, chosen by the model name's prefix.

The default backend of ``cascade run`` is one of these: ``local/...`` models go to llama.cpp on
this machine, everything else to litellm. Each backend is built the first time a model needs it,
so a run with no local tier never loads llama.cpp, and one with only local tiers never imports
litellm.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

from cascade.backends.base import Backend, Request, Response
from cascade.types import Quote

if TYPE_CHECKING:
    from cascade.backends.batch_api import BatchApi

__all__ = ["PrefixBackend", "close_backend", "closing_backend"]


class PrefixBackend:
    """Send each request to the backend of the longest prefix its model starts with.

    >>> from cascade.backends import ScriptedBackend
    >>> routed = PrefixBackend({"local/": lambda: ScriptedBackend({})}, default=ScriptedBackend)
    >>> routed.backend_for("local/gemma-3-270m") is routed.backend_for("local/other")
    True
    """

    def __init__(
        self,
        routes: Mapping[str, Callable[[], Backend]],
        *,
        default: Callable[[], Backend],
        models: Mapping[str, Callable[[], Backend]] | None = None,
    ) -> None:
        self._routes = sorted(routes.items(), key=lambda item: -len(item[0]))
        self._default = default
        self._models = dict(models or {})
        """Whole model names routed before any prefix (the models of ``backend = "http"``)."""
        self._built: dict[Callable[[], Backend], Backend] = {}

    def __repr__(self) -> str:
        return f"PrefixBackend({[prefix for prefix, _ in self._routes]})"

    def backend_for(self, model: str) -> Backend:
        """The backend serving ``model``, built on first use (one per factory)."""
        make = self._models.get(model) or next(
            (make for p, make in self._routes if model.startswith(p)), self._default
        )
        if make not in self._built:
            self._built[make] = make()
        return self._built[make]

    async def complete(self, request: Request) -> Response:
        """Complete ``request`` with the backend its model routes to."""
        return await self.backend_for(request.model).complete(request)

    async def ready(self, model: str) -> None:
        """Let the backend ``model`` routes to get ready for it, if it has anything to do."""
        ready = getattr(self.backend_for(model), "ready", None)
        if callable(ready):
            await ready(model)

    def quote(self, model: str) -> Quote | None:
        """The price and longest answer of ``model``, from the backend it routes to, if it says."""
        quote = getattr(self.backend_for(model), "quote", None)
        return quote(model) if callable(quote) else None

    def batch_api(self, model: str) -> BatchApi | None:
        """The batch API of the backend ``model`` routes to, if it has one."""
        api = getattr(self.backend_for(model), "batch_api", None)
        return api(model) if callable(api) else None

    def close(self) -> None:
        """Close every backend built so far that can be closed."""
        built, self._built = self._built, {}
        for backend in built.values():
            close_backend(backend)


def close_backend(backend: object) -> None:
    """Call ``backend.close()`` when it has one: local models hold native memory until then."""
    close = getattr(backend, "close", None)
    if callable(close):
        close()


@contextmanager
def closing_backend(backend: Backend) -> Iterator[Backend]:
    """Use ``backend``, then close it (when it can be closed) however the block ends."""
    try:
        yield backend
    finally:
        close_backend(backend)
