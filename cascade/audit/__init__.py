"""Quality monitoring in production: shadow audits of accepted answers, and drift alarms.

- :mod:`cascade.audit.plan`: a policy's ``[audit]`` as an :class:`AuditPlan`, the seeded
  stratified sample, and the Wilson interval its figures are given with;
- :mod:`cascade.audit.auditor`: the :class:`Auditor` a worker hands its recorded outcomes to;
- :mod:`cascade.audit.drift`: a policy's ``[drift]``, the streams it watches and their tests.
"""

from cascade.audit.plan import AuditPlan, sampled, wilson

__all__ = ["AuditPlan", "sampled", "wilson"]
