"""Test doubles for code that uses cascade: no model, no network beyond 127.0.0.1.

As httpx ships ``MockTransport``, cascade ships its fakes as a public module:

- :class:`ScriptedBackend` (:mod:`cascade.backends.scripted`) scripts answers, errors and hangs
  per model, in process, with no HTTP at all: the double for most tests.
- :class:`FakeOpenAI` (:mod:`cascade.testing.fake_openai`) is a real OpenAI-compatible HTTP
  server on a loopback port, for testing the litellm path end to end: each :class:`FakeReply`
  can be slow, a 429 with ``Retry-After``, a 5xx, malformed or cut off, or never come.
  :class:`FakeBatches` (:mod:`cascade.testing.fake_batches`) adds OpenAI's files and batches
  endpoints to it; :func:`serve_in_subprocess` runs one in a process of its own.
- :func:`capture_steps` collects the step events a run logs.
- :func:`verdict_of` judges one answer with a validator, no cascade needed (:func:`attempt_with`
  makes the attempt it judges).
- :func:`no_model_requests` switches real model requests off (``CASCADE_ALLOW_MODEL_REQUESTS=0``),
  so that a test that forgot its ``backend=`` fails instead of paying for a live call.

Importing :mod:`cascade` does not import this module; import it from your tests:

>>> from cascade.testing import FakeOpenAI, FakeReply, ScriptedBackend, capture_steps
"""

from cascade.backends.scripted import Hang, Raw, Reply, ScriptedBackend
from cascade.steplog import capture_steps
from cascade.testing.fake_batches import FakeBatches
from cascade.testing.fake_openai import FakeOpenAI, FakeReply, serve_in_subprocess
from cascade.testing.judging import attempt_with, verdict_of
from cascade.testing.switch import no_model_requests

__all__ = [
    "FakeBatches",
    "FakeOpenAI",
    "FakeReply",
    "Hang",
    "Raw",
    "Reply",
    "ScriptedBackend",
    "attempt_with",
    "capture_steps",
    "no_model_requests",
    "serve_in_subprocess",
    "verdict_of",
]
