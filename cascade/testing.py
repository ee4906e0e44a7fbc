"""Helpers for testing code that uses cascade, without a model or a network.

>>> from cascade.testing import ScriptedBackend, capture_steps
"""

from cascade.backends.scripted import Hang, Reply, ScriptedBackend
from cascade.steplog import capture_steps

__all__ = ["Hang", "Reply", "ScriptedBackend", "capture_steps"]
