"""Writing values JSON does not know: what the store, the review queue and results files use.

A task's ``meta`` or a validator's parsed value may hold a pydantic model, a datetime, a path.
Each is written as :func:`to_jsonable` says, so a line is always written, never refused.
"""

from __future__ import annotations

from typing import Any

__all__ = ["to_jsonable"]


def to_jsonable(value: Any) -> Any:
    """A ``json.dumps`` default: a pydantic model as its JSON data, anything else as text.

    >>> import json, datetime
    >>> json.dumps({"when": datetime.datetime(2024, 5, 1)}, default=to_jsonable)
    '{"when": "2024-05-01 00:00:00"}'
    """
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):
        return dump(mode="json")
    return str(value)
