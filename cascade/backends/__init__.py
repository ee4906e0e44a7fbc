"""Backends: one async method, ``complete(request) -> Response``.

:class:`LiteLLMBackend` calls real providers (and imports litellm only when first used),
:class:`LocalBackend` runs models on this machine with llama.cpp, :class:`ScriptedBackend` is the
test double, :class:`ReplayBackend` serves recorded outputs, and :class:`PrefixBackend` routes
each model to one of several backends by its name.
"""

from cascade.backends.base import Backend, Request, Response
from cascade.backends.litellm import LiteLLMBackend
from cascade.backends.local import LocalBackend
from cascade.backends.replay import Recorded, ReplayBackend
from cascade.backends.routed import PrefixBackend
from cascade.backends.scripted import Hang, Reply, ScriptedBackend

__all__ = [
    "Backend",
    "Hang",
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
