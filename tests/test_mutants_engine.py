"""The engine's loop at its edges, where mutation testing found its lines unpinned.

Each test states what a task's outcome shows: the reasons a failed task gives, in order.
"""

from __future__ import annotations

from cascade import Status, Tier
from cascade.errors import AuthenticationFailed
from tests.helpers import make


def test_a_task_failed_by_a_refusing_tier_keeps_the_earlier_rejection() -> None:
    """The refusal comes first; the lower tier's rejection and the error follow."""
    cascade, _backend = make(
        {"small": ["no"], "big": [AuthenticationFailed("401: bad key")]},
        [Tier("small"), Tier("big", retries=0)],
    )
    outcome = cascade.run({"id": "t1", "input": "x"})
    assert outcome.status is Status.FAILED
    assert outcome.reasons[0].startswith("tier 1 (big) cannot be asked: ")
    assert "401: bad key" in outcome.reasons[0]
    assert outcome.reasons[1:] == ("wanted 'ok', got 'no'", "AuthenticationFailed: 401: bad key")
