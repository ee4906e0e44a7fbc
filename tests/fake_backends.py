"""Backends that ``cascade run --backend tests.fake_backends:NAME`` builds in any process.

Task ``tN`` is answered "ok" by ``small`` unless N is a multiple of 5, when ``small`` answers
"nope" and the task must escalate to ``big``. Each call takes a few milliseconds, so that a run
of a few thousand tasks lasts long enough to be killed in the middle.
"""

from __future__ import annotations

import random

from cascade.backends import ScriptedBackend
from cascade.backends.base import Request
from cascade.backends.scripted import Reply
from cascade.types import Price

PRICES = {"small": Price(1.0, 2.0), "big": Price(10.0, 20.0)}
"""Dollars per million tokens: a call of ``small`` costs about $0.000003, ``big`` ten times."""


def _number(request: Request) -> int:
    return int(request.task_id.lstrip("t"))


def _small(request: Request) -> Reply:
    text = "nope" if _number(request) % 5 == 0 else "ok"
    return Reply(text, latency_s=random.uniform(0.002, 0.02))  # noqa: S311  # not crypto


def _big(_request: Request) -> Reply:
    return Reply("ok", latency_s=random.uniform(0.002, 0.02))  # noqa: S311  # not crypto


def ladder() -> ScriptedBackend:
    """``small`` then ``big``, answering after 2 to 20 ms."""
    return ScriptedBackend({"small": _small, "big": _big}, prices=PRICES)


POLICY = """\
task_type = "echo"
prompt = "Say ok about {input}"
[[tiers]]
model = "small"
[[tiers]]
model = "big"
[[validators]]
kind = "one_of"
labels = ["ok"]
"""
"""A policy for these models: one_of(["ok"]), so the multiples of 5 escalate."""
