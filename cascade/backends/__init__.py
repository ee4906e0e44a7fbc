"""Backends: one async method, ``complete(request) -> Response``.

:class:`LiteLLMBackend` calls real providers (and imports litellm only when first used),
:class:`ScriptedBackend` is the test double, and :class:`ReplayBackend` serves recorded outputs.
"""

from cascade.backends.base import Backend, Request, Response
from cascade.backends.litellm import LiteLLMBackend
from cascade.backends.replay import Recorded, ReplayBackend
from cascade.backends.scripted import Hang, Reply, ScriptedBackend

__all__ = [
    "Backend",
    "Hang",
    "LiteLLMBackend",
    "Recorded",
    "ReplayBackend",
    "Reply",
    "Request",
    "Response",
    "ScriptedBackend",
]
