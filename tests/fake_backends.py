"""Backends that ``cascade run --backend tests.fake_backends:NAME`` builds in any process.

Task ``tN`` is answered "ok" by ``small`` unless N is a multiple of 5, when ``small`` answers
"nope" and the task must escalate to ``big``. Each call takes a few milliseconds, so that a run
of a few thousand tasks lasts long enough to be killed in the middle.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from cascade.backends import LocalBackend, PrefixBackend, ScriptedBackend
from cascade.backends.base import Request
from cascade.backends.scripted import Hang, Reply
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


CONTACT_PRICES = {"mini": Price(1.0, 1.0), "mid": Price(5.0, 5.0), "big": Price(30.0, 30.0)}


def contact_of(number: int) -> dict[str, str]:
    """The right answer to contact task ``cN``."""
    return {"name": f"Person {number}", "email": f"p{number}@example.org"}


def _contact(invents: int, breaks: int) -> Callable[[Request], str]:
    def answer(request: Request) -> str:
        number = int(request.task_id.lstrip("c"))
        found = contact_of(number)
        if breaks and number % breaks == 0:
            return '{"name": "Person'
        if invents and number % invents == 0:
            found["email"] = f"person{number}@example.com"  # not in the text: made up
        return json.dumps(found)

    return answer


def contacts() -> ScriptedBackend:
    """Three models of contact extraction, the cheaper ones wrong in ways checks can see.

    ``mini`` makes up every 4th email and breaks every 7th answer; ``mid`` makes up every 3rd;
    ``big`` is always right.
    """
    return ScriptedBackend(
        {"mini": _contact(4, 7), "mid": _contact(3, 0), "big": _contact(0, 0)},
        prices=CONTACT_PRICES,
    )


def _dies_once(answer: Callable[[Request], Reply]) -> Callable[[Request], Reply]:
    """``answer``, except that a prompt saying ``die once:PATH`` kills this process, once.

    The first process to see it creates PATH, then sends itself SIGKILL: no clean-up runs, as
    when a machine goes away. Whoever sees the prompt again (PATH exists) answers as usual.
    """

    def reply(request: Request) -> Reply:
        text = " ".join(str(message.get("content", "")) for message in request.messages)
        _, said, path = text.partition("die once:")
        if said:
            try:
                with open(path.split()[0], "x"):  # exclusive: one process wins
                    pass
            except FileExistsError:
                pass
            else:
                os.kill(os.getpid(), signal.SIGKILL)
        return answer(request)

    return reply


def ladder_dying_once() -> ScriptedBackend:
    """:func:`ladder`, but the process serving a ``die once:PATH`` task is killed (once)."""
    return ScriptedBackend({"small": _dies_once(_small), "big": _big}, prices=PRICES)


def ladder_big_hangs() -> ScriptedBackend:
    """:func:`ladder`, but ``big`` never answers: escalated tasks hang until cut off."""
    return ScriptedBackend({"small": _small, "big": lambda _request: Hang()}, prices=PRICES)


def ladder_here_only() -> ScriptedBackend:
    """:func:`ladder` where ``CASCADE_TEST_HERE`` is set; elsewhere (a Ray actor) it fails."""
    if "CASCADE_TEST_HERE" not in os.environ:
        raise RuntimeError("no such file on this node")
    return ladder()


def stand_in_local() -> PrefixBackend:
    """``local/...`` models served by tests/stand_in_model.py, with ``$STAND_IN_FLAGS``."""
    stand_in = [sys.executable, str(Path(__file__).with_name("stand_in_model.py"))]
    flags = os.environ.get("STAND_IN_FLAGS", "").split()
    return PrefixBackend(
        {"local/": lambda: LocalBackend(command=[*stand_in, *flags])},
        default=lambda: ScriptedBackend({}),
    )


def echo_params() -> ScriptedBackend:
    """``echo`` answers with the request's tier parameters as JSON, as a leaky provider might."""
    return ScriptedBackend({"echo": lambda request: json.dumps(dict(request.params))})
