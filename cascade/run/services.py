"""What a worker runs beside its tasks, when its policies ask for it.

The :class:`~cascade.backends.batcher.Batcher` of batch tiers, its ledger in the run store; the
:class:`~cascade.audit.auditor.Auditor` of shadow audits, with each audit's spend shared by every
worker of the run.
"""

from __future__ import annotations

from collections.abc import Mapping

from cascade.audit.auditor import Auditor, AuditTarget
from cascade.backends.base import Backend
from cascade.backends.batcher import Batcher
from cascade.budget import JobBudget
from cascade.engine import Settings
from cascade.engine.calls import Caller
from cascade.errors import ConfigError
from cascade.policy import PolicySet
from cascade.run.job import Job
from cascade.secrets import SecretRedactor, register_secrets, secret_values
from cascade.steplog import StepLog
from cascade.store import Store
from cascade.store.batches import BatchBook
from cascade.store.queries import audit_spent

__all__ = ["audit_budgets", "auditor_for", "audits_skipped", "batcher_for", "refuse_on_ray"]


def batcher_for(
    policies: PolicySet, backend: Backend, store: Store, run_id: str, log: StepLog | None
) -> Batcher | None:
    """The batcher of a worker whose policies have batch tiers, its ledger in the run store."""
    if not any(tier.batch is not None for policy in policies for tier in policy.ladder):
        return None
    return Batcher.for_backend(backend, BatchBook(store, run_id), log)


def audit_budgets(policies: PolicySet, store: Store, run_id: str) -> dict[str, JobBudget]:
    """Each audit's spend so far in this run (a resumed run counts the earlier audits)."""
    spent = audit_spent(store, run_id)
    return {
        policy.task_type: JobBudget(audit.max_cost_usd, spent_usd=spent.get(policy.task_type, 0))
        for policy in policies
        if (audit := policy.audit) is not None
    }


def audits_skipped(spent: Mapping[str, JobBudget]) -> dict[str, tuple[int, float]]:
    """The audits each task type skipped for its cap in this run, with the cap."""
    return {kind: (budget.refused, budget.limit_usd or 0.0) for kind, budget in spent.items()}


def auditor_for(
    policies: PolicySet,
    settings: Settings,
    store: Store,
    budget: JobBudget,
    spent: Mapping[str, JobBudget],
) -> Auditor | None:
    """The auditor of a worker whose policies ask for audits.

    It calls through the worker's backend, guard and retry policy, and logs to its step log.
    """
    targets = {}
    for policy in policies:
        audit = policy.audit
        if audit is not None:
            plan = policy.plan
            targets[policy.task_type] = AuditTarget.of(
                audit, policy.ladder, plan.prompt, tuple(plan.examples), spent[policy.task_type]
            )
    if not targets or settings.backend is None or settings.run_id is None:
        return None
    secrets = [value for t in targets.values() for value in secret_values(t.plan.params)]
    register_secrets(secrets)
    log = settings.log if isinstance(settings.log, StepLog) else None
    redactor = SecretRedactor(extra=secrets)
    caller = Caller(settings.backend, settings.retry, settings.guard, log, redactor)
    return Auditor(targets, caller, store, settings.run_id, budget=budget, log=log)


def refuse_on_ray(job: Job, policies: PolicySet) -> None:
    """Batch tiers and audits run on this machine's workers: their ledgers are the run store."""
    if job.executor != "ray":
        return
    for policy in policies:
        if any(tier.batch is not None for tier in policy.ladder):
            raise ConfigError(f"{policy.path}: batch tiers run on this machine's workers, "
                              "not on Ray (the batches' ledger is the run store)")  # fmt: skip
        if policy.audit is not None:
            raise ConfigError(f"{policy.path}: audits run on this machine's workers, not on Ray")
