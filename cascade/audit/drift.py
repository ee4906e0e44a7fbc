"""Drift alarms: a tier's acceptance rate falling, or its audits' disagreement rising.

Per task type and tier, each signal is a stream of yes/no observations: for ``acceptance``,
whether a task that reached the tier was accepted there; for ``disagreement``, whether a shadow
audit of the tier's accepted answer disagreed; for ``escalation:V``, whether an escalation from
the tier was for validator V's rejection (V's share of the escalations rising: the reasons
changed). The baseline is the policy's calibrated rate
(``[drift] acceptance``, one rate per tier, as ``cascade optimize`` measured it), or else the
first ``baseline`` observations of the run. Every ``check_every`` observations, the last
``window`` are compared with the baseline by a one-sided z test (pooled two-proportion when the
baseline was measured, one-sample when it was given) at level ``false_alarm``: under no drift,
each check raises a false alarm with probability at most ``false_alarm``, so a run of C checks
at most C times that (the union bound). A stream that alarmed stays quiet until it is cleared.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from statistics import NormalDist

__all__ = ["Alarm", "DriftPlan", "DriftWatch"]


@dataclass(frozen=True, slots=True)
class DriftPlan:
    """One task type's drift alarms (a policy's ``[drift]``)."""

    window: int = 100
    baseline: int = 200
    check_every: int = 10
    false_alarm: float = 0.001
    on_drift: str = "warn"
    """``warn`` reports; ``escalate`` also starts the task type one tier higher until cleared."""
    acceptance: tuple[float, ...] = ()
    """Calibrated acceptance rates by tier; a tier without one is measured on the run."""


@dataclass(frozen=True, slots=True)
class Alarm:
    """A stream whose window left its baseline."""

    task_type: str
    tier: int
    signal: str
    baseline_rate: float
    window_rate: float
    z: float
    observed: int
    """Observations of the stream when it alarmed (baseline included)."""

    def text(self) -> str:
        """The alarm in one line."""
        moved = "fell" if self.signal == "acceptance" else "rose"
        if self.signal.startswith("escalation:"):
            return (f"drift: {self.task_type} tier {self.tier} escalations for "
                    f"{self.signal.split(':', 1)[1]} rose from {self.baseline_rate:.1%} to "
                    f"{self.window_rate:.1%} of them (z {self.z:.1f}, after {self.observed} "
                    "escalations)")  # fmt: skip
        return (f"drift: {self.task_type} tier {self.tier} {self.signal} {moved} from "
                f"{self.baseline_rate:.1%} to {self.window_rate:.1%} (z {self.z:.1f}, after "
                f"{self.observed} observations)")  # fmt: skip


@dataclass
class _Stream:
    plan: DriftPlan
    rising: bool
    """Alarm on a rise (disagreement) rather than a fall (acceptance)."""
    fixed: float | None = None
    base_hits: int = 0
    base_n: int = 0
    window: deque[bool] = field(default_factory=deque)
    seen: int = 0
    alarmed: bool = False

    def add(self, hit: bool) -> tuple[float, float, float] | None:
        """Take one observation; (baseline rate, window rate, z) when it raises an alarm."""
        self.seen += 1
        if self.fixed is None and self.base_n < self.plan.baseline:
            self.base_n += 1
            self.base_hits += hit
            return None
        self.window.append(hit)
        if len(self.window) > self.plan.window:
            self.window.popleft()
        full = len(self.window) == self.plan.window
        if self.alarmed or not full or self.seen % self.plan.check_every:
            return None
        found = self._z()
        if found is None or found[2] < NormalDist().inv_cdf(1 - self.plan.false_alarm):
            return None
        self.alarmed = True
        return found

    def _z(self) -> tuple[float, float, float] | None:
        n = len(self.window)
        rate = sum(self.window) / n
        if self.fixed is not None:
            base = self.fixed
            spread = math.sqrt(base * (1 - base) / n)
        else:
            base = self.base_hits / self.base_n
            pooled = (self.base_hits + sum(self.window)) / (self.base_n + n)
            spread = math.sqrt(pooled * (1 - pooled) * (1 / self.base_n + 1 / n))
        if spread == 0:
            return None
        z = (rate - base) / spread if self.rising else (base - rate) / spread
        return base, rate, z


class DriftWatch:
    """The drift streams of a run's task types (see the module's doc)."""

    def __init__(self, plans: Mapping[str, DriftPlan]) -> None:
        self._plans = dict(plans)
        self._streams: dict[tuple[str, int, str], _Stream] = {}
        self._escalations: dict[tuple[str, int], int] = {}
        self._reasons: dict[tuple[str, int], set[str]] = {}

    def result(
        self, task_type: str, status: str, tier: int | None, tiers_tried: int
    ) -> list[Alarm]:
        """A task's result: each tier it reached was accepted at, or passed over."""
        if task_type not in self._plans or tiers_tried < 1:
            return []
        last = tier if tier is not None else tiers_tried - 1
        alarms = []
        for reached in range(max(0, last - tiers_tried + 1), last + 1):
            accepted = status == "accepted" and reached == last
            alarm = self._add(task_type, reached, "acceptance", accepted)
            alarms += [alarm] if alarm is not None else []
        return alarms

    def audit(self, task_type: str, tier: int, disagreed: bool) -> Alarm | None:
        """An audit's verdict on one of ``tier``'s accepted answers."""
        if task_type not in self._plans:
            return None
        return self._add(task_type, tier, "disagreement", disagreed)

    def escalation(self, task_type: str, tier: int, failed: Collection[str]) -> list[Alarm]:
        """An escalation from ``tier``, for the rejections of the validators ``failed``.

        A validator first seen late starts with a baseline of the escalations before it, in
        none of which it took part.
        """
        if task_type not in self._plans:
            return []
        seen = self._escalations.get((task_type, tier), 0)
        self._escalations[(task_type, tier)] = seen + 1
        names = self._reasons.setdefault((task_type, tier), set())
        for name in set(failed) - names:
            names.add(name)
            stream = self._stream(task_type, tier, f"escalation:{name}")
            stream.base_n = min(seen, self._plans[task_type].baseline)
            stream.seen = seen
        alarms = [self._add(task_type, tier, f"escalation:{name}", name in failed)
                  for name in sorted(names)]  # fmt: skip
        return [alarm for alarm in alarms if alarm is not None]

    def _stream(self, task_type: str, tier: int, signal: str) -> _Stream:
        key = (task_type, tier, signal)
        stream = self._streams.get(key)
        if stream is None:
            plan = self._plans[task_type]
            rising = signal != "acceptance"
            given = plan.acceptance[tier] if not rising and tier < len(plan.acceptance) else None
            stream = self._streams[key] = _Stream(plan, rising, given)
        return stream

    def _add(self, task_type: str, tier: int, signal: str, hit: bool) -> Alarm | None:
        stream = self._stream(task_type, tier, signal)
        found = stream.add(hit)
        if found is None:
            return None
        return Alarm(task_type, tier, signal, found[0], found[1], found[2], stream.seen)
