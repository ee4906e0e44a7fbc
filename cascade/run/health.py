"""Provider health of a run, from its store: what the providers did to it, and what it cost.

The calls providers did not answer, by kind (429s, 5xx, timeouts, malformed replies, calls an
open breaker refused, refused keys, bad requests), the breaker trips, the time tasks spent
waiting for providers, escalations split by cause (a validator rejected the answer, or a
provider failed and the policy escalates on provider errors), and the most common reasons
tasks failed.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from cascade.store import Store
from cascade.store.queries import provider_health

__all__ = ["ERROR_LABELS", "Health", "health_of"]

ERROR_LABELS = {
    "RateLimited": "429 rate limited",
    "ServerError": "5xx server errors",
    "ConnectionFailed": "connection errors (refused, reset or cut)",
    "ProviderTimeout": "timeouts",
    "MalformedResponse": "malformed replies",
    "CircuitOpen": "refused by an open breaker",
    "AuthenticationFailed": "refused keys (401/403)",
    "BadRequest": "bad requests (400)",
}
"""The error classes of :mod:`cascade.errors` a summary names, and what it calls them."""

_TOP_FAILURES = 3
_SINCE = re.compile(r"since \S+ \(\d+ s\)")


@dataclass
class Health:
    """What providers did to a run (see the module docstring)."""

    errors: Counter[str] = field(default_factory=Counter)
    breaker_trips: int = 0
    waited_s: float = 0.0
    escalated_by_validator: int = 0
    escalated_by_provider: int = 0
    failures: Counter[str] = field(default_factory=Counter)

    def to_json(self) -> dict[str, Any]:
        """The figures, as ``cascade report --json`` prints them."""
        return {
            "provider_errors": dict(sorted(self.errors.items())),
            "breaker_trips": self.breaker_trips,
            "waited_s": round(self.waited_s, 3),
            "escalations": {
                "validator": self.escalated_by_validator,
                "provider": self.escalated_by_provider,
            },
            "top_failure_reasons": [[r, n] for r, n in self.failures.most_common(_TOP_FAILURES)],
        }

    def lines(self) -> list[str]:
        """The figures as text for people."""
        errors = ", ".join(
            f"{n} {ERROR_LABELS.get(kind, kind)}" for kind, n in sorted(self.errors.items())
        )
        lines = [
            f"provider health: {errors or 'no provider errors'}; "
            f"{self.breaker_trips} breaker trips; {self.waited_s:.1f} s waited",
            f"escalations: {self.escalated_by_validator} by a validator, "
            f"{self.escalated_by_provider} by a provider error",
        ]
        if self.failures:
            lines.append("top failure reasons:")
            lines += [f"  {n} x {reason}" for reason, n in self.failures.most_common(_TOP_FAILURES)]
        return lines


def health_of(store: Store, run_id: str | None = None) -> Health:
    """The provider health of one run of the store, or of all of them."""
    rows = provider_health(store, run_id)
    health = Health()
    for error, _decision in rows["errors"]:
        health.errors[str(error).split(":", 1)[0]] += 1
    for by_provider, count in rows["escalations"]:
        if by_provider:
            health.escalated_by_provider += int(count)
        else:
            health.escalated_by_validator += int(count)
    for (reasons,) in rows["failed"]:
        first = (json.loads(reasons) or ["no reason recorded"])[0]
        health.failures[_SINCE.sub("since …", str(first))[:200]] += 1
    health.waited_s = float(next(iter(rows["waited_s"]))[0])
    health.breaker_trips = int(next(iter(rows["trips"]))[0])
    return health
