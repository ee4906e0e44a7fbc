"""The three vocabularies of a run: how a task ended, what the engine decided, why it called.

They are string enums, so they print, compare and serialise as their values.
"""

from __future__ import annotations

import enum

__all__ = ["SIDE_CALLS", "CallKind", "Decision", "Status"]


class Status(enum.StrEnum):
    """How a task ended."""

    ACCEPTED = "accepted"
    EXHAUSTED = "exhausted"
    BUDGET_EXHAUSTED = "budget_exhausted"
    FAILED = "failed"
    QUARANTINED = "quarantined"
    NEEDS_REVIEW = "needs_review"
    """No model's answer passed, and the ladder ends in a human review queue."""
    DEADLINE = "deadline"
    """The task's time ran short: the next re-ask or tier could not answer within its
    ``deadline_s``, so it stopped with its best answer so far."""


class Decision(enum.StrEnum):
    """What the engine did after a step."""

    ACCEPT = "accept"
    REASK = "reask"
    ESCALATE = "escalate"
    STOP = "stop"
    ERROR = "error"
    RECORD = "record"
    """Nothing: the answer was kept for calibration only (``--record-all-tiers``)."""
    CANCEL = "cancel"
    """A hedged race's loser: the other tier's answer was accepted first, so this call was
    cancelled (or its answer dropped); what it cost still counts."""
    AGREE = "agree"
    """An audit's answer agreed with the accepted one (or its judge passed it)."""
    DISAGREE = "disagree"
    """An audit's answer differed from the accepted one (or its judge failed it)."""


class CallKind(enum.StrEnum):
    """Why a backend call was made."""

    CALL = "call"
    REASK = "reask"
    RETRY = "retry"
    FALLBACK = "fallback"
    VALIDATOR = "validator"
    """A call a validator made to judge an answer: an LLM judge, or a second opinion."""
    REVIEW = "review"
    """A person's answer from the review queue, imported with ``cascade review import``."""
    CALIBRATION = "calibration"
    """A tier the ladder did not need, asked anyway so that a run store records what every
    tier answers (``cascade run --record-all-tiers``); it never changes the outcome."""
    HEDGE = "hedge"
    """The next tier, asked early while the tier below had not yet answered, because the
    task's deadline drew near (a tier with ``hedge = true``)."""
    AUDIT = "audit"
    """A shadow audit of an accepted answer: the audit model asked the same task after the
    result was written; it never changes the outcome (a policy's ``[audit]``)."""


SIDE_CALLS = frozenset({CallKind.VALIDATOR, CallKind.CALIBRATION, CallKind.AUDIT})
"""Calls that are not a step up the ladder: they never answer the task."""
