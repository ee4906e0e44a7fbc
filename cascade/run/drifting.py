"""The coordinator's drift alarms: results and audit verdicts in, alarms out.

The runner hands every result it writes to the results file, and every audit verdict and
escalation stored since the last look, to a :class:`DriftDesk`. Results are written as tasks
finish; the desk watches them in the order the tasks arrived, holding each back until every
task that arrived before it has finished (escalating tasks finish late). An alarm (see
:mod:`cascade.audit.drift`) is kept in the store, logged as a ``cascade.drift`` event, written
as a line under the progress, and listed in the run's summary.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from cascade.audit.drift import Alarm, DriftWatch, InArrivalOrder
from cascade.policy import PolicySet
from cascade.steplog import StepLog
from cascade.store import Store
from cascade.store.alarms import Arrivals, DriftAlarms
from cascade.store.ledger import ResultRow
from cascade.store.queries import audit_verdicts_after, escalations_after

__all__ = ["DriftDesk"]


class DriftDesk:
    """Watch a run's results and audits for drift (when a policy asks for it)."""

    def __init__(
        self,
        policies: PolicySet,
        store: Store,
        run_id: str,
        *,
        log: StepLog | None = None,
        say: Callable[[str], None] | None = None,
    ) -> None:
        plans = {p.task_type: drift for p in policies if (drift := p.drift) is not None}
        self._escalate = {kind for kind, plan in plans.items() if plan.on_drift == "escalate"}
        self._watch = DriftWatch(plans)
        self._active = bool(plans)
        self._store = store
        self._alarms = DriftAlarms(store)
        self._arrivals = Arrivals(store, run_id)
        self._order: InArrivalOrder[tuple[str, str, int | None, int]] = InArrivalOrder()
        self._run_id = run_id
        self._log = log
        self._say = say
        self._seq = 0
        self._escalated_seq = 0
        self.raised: list[str] = []

    def results(self, rows: Sequence[ResultRow]) -> None:
        """Results written since the last call, in the order they were written."""
        if not self._active or not rows:
            return
        arrivals, unsettled = self._arrivals.of(rows[0].rowid - 1, rows[-1].rowid)
        for row in rows:
            if self._watch.watches(row.task_type):
                # What the watch needs only: a held row would keep its output alive.
                seen = (row.task_type, row.status, row.tier, row.tiers_tried)
                # A result without a task row (none is known) cannot wait for its turn.
                self._order.hold(arrivals.get(row.rowid, -1), seen)
        for task_type, status, tier, tiers_tried in self._order.settled(unsettled):
            for alarm in self._watch.result(task_type, status, tier, tiers_tried):
                self._raise(alarm)

    def steps(self) -> None:
        """Audit verdicts and escalations stored since the last call."""
        if not self._active:
            return
        for seq, task_type, tier, decision in audit_verdicts_after(
            self._store, self._run_id, self._seq
        ):
            self._seq = seq
            alarm = self._watch.audit(task_type, tier, decision == "disagree")
            if alarm is not None:
                self._raise(alarm)
        for seq, task_type, tier, verdicts in escalations_after(
            self._store, self._run_id, self._escalated_seq
        ):
            self._escalated_seq = seq
            failed = [v["validator"] for v in json.loads(verdicts) if not v.get("passed")]
            for alarm in self._watch.escalation(task_type, tier, failed):
                self._raise(alarm)

    def _raise(self, alarm: Alarm) -> None:
        if self._alarms.has(self._run_id, alarm.task_type, alarm.tier, alarm.signal):
            return  # raised before this run was resumed, and not cleared
        escalate = alarm.task_type in self._escalate
        text = alarm.text()
        if escalate:
            clear = f"cascade drift clear {self._store.path} --type {alarm.task_type}"
            text += f"; {alarm.task_type} now starts one tier higher until {clear}"
        self._alarms.raise_(self._run_id, alarm.task_type, alarm.tier, alarm.signal, text,
                            escalate=escalate)  # fmt: skip
        self.raised.append(text)
        if self._log is not None:
            self._log.event("cascade.drift", run_id=self._run_id, task_type=alarm.task_type,
                            tier=alarm.tier, signal=alarm.signal, baseline=alarm.baseline_rate,
                            window=alarm.window_rate, p_value=alarm.p_value,
                            observed=alarm.observed,
                            escalate=escalate)  # fmt: skip
        if self._say is not None:
            self._say(text)
