"""A completion's tool calls as the text the function-call validator reads.

Both provider backends (litellm's and the lean HTTP one) hand tool calls on this way, so that
a validator sees the same answer whichever of them made the call.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from typing import Any

__all__ = ["calls_text"]


def calls_text(calls: Iterable[tuple[Any, Any]]) -> str:
    """``(name, arguments)`` pairs as ``[{"name", "arguments"}]`` JSON.

    Arguments that are not JSON are kept as the model wrote them, for the validator to refuse.

    >>> calls_text([("add", '{"a": 1}'), ("noop", ""), ("bad", "{oops")])[:63]
    '[{"name": "add", "arguments": {"a": 1}}, {"name": "noop", "argu'
    >>> calls_text([("bad", "{oops")])
    '[{"name": "bad", "arguments": "{oops"}]'
    """
    found = []
    for name, written in calls:
        arguments = written
        if isinstance(written, str):
            with contextlib.suppress(ValueError):
                arguments = json.loads(written) if written.strip() else {}
        found.append({"name": str(name), "arguments": arguments})
    return json.dumps(found)
