"""Helpers for testing code that uses cascade, without a model or a network.

:class:`ScriptedBackend` scripts answers and errors per model; :class:`FakeOpenAI` is a real
OpenAI-compatible HTTP server on 127.0.0.1 for testing the litellm path end to end, with the
files and batches endpoints of the batch API (:class:`FakeBatches`);
:func:`capture_steps` collects step events.

>>> from cascade.testing import FakeOpenAI, ScriptedBackend, capture_steps
"""

from cascade._fake_openai import FakeBatches, FakeOpenAI, FakeReply, serve_in_subprocess
from cascade.backends.scripted import Hang, Reply, ScriptedBackend
from cascade.steplog import capture_steps

__all__ = [
    "FakeBatches",
    "FakeOpenAI",
    "FakeReply",
    "Hang",
    "Reply",
    "ScriptedBackend",
    "capture_steps",
    "serve_in_subprocess",
]
