"""Backends: one async method, ``complete(request) -> Response``.

:class:`LiteLLMBackend` calls real providers (and imports litellm only when first used),
:class:`HttpBackend` calls OpenAI-compatible APIs straight over aiohttp (a tier's
``backend = "http"``),
:class:`LocalBackend` runs models on this machine with llama.cpp, :class:`ScriptedBackend` is the
test double, :class:`ReplayBackend` serves recorded outputs, and :class:`PrefixBackend` routes
each model to one of several backends by its name. Each is imported on first use, so that
``import cascade`` pays only for the interface.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from cascade.backends.base import Backend, Request, Response

if TYPE_CHECKING:
    from cascade.backends.http import HttpBackend
    from cascade.backends.litellm import LiteLLMBackend
    from cascade.backends.local import LocalBackend
    from cascade.backends.replay import Recorded, ReplayBackend
    from cascade.backends.routed import PrefixBackend
    from cascade.backends.scripted import Hang, Reply, ScriptedBackend

__all__ = [
    "Backend",
    "Hang",
    "HttpBackend",
    "LiteLLMBackend",
    "LocalBackend",
    "PrefixBackend",
    "Recorded",
    "ReplayBackend",
    "Reply",
    "Request",
    "Response",
    "ScriptedBackend",
]

_HOMES = {
    "HttpBackend": "http",
    "LiteLLMBackend": "litellm",
    "LocalBackend": "local",
    "Recorded": "replay",
    "ReplayBackend": "replay",
    "PrefixBackend": "routed",
    "Hang": "scripted",
    "Reply": "scripted",
    "ScriptedBackend": "scripted",
}


def __getattr__(name: str) -> Any:
    """Import a backend when it is first asked for."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'cascade.backends' has no attribute {name!r}")
    return getattr(importlib.import_module(f"cascade.backends.{home}"), name)
