"""What each policy-file field means, for the fields whose model in cascade/policy has no docstring.

The policy reference (docs/hooks.py) takes a field's meaning from its attribute docstring in
``cascade/policy/spec*.py`` first, then from here. A field with neither fails the docs build, so
a new field cannot go undocumented.
"""

from __future__ import annotations

from typing import Final

_COMPARE = (
    "How answers are compared: ``auto`` picks by the answer's kind; ``call`` (the same calls with"
    " the same arguments, in any order), ``json`` (by value), ``text``, or ``number`` (the same"
    " final number)."
)

MEANINGS: Final[dict[str, str]] = {
    "PolicySpec.task_type": "The task type this policy serves: the ``type`` field of its tasks.",
    "PolicySpec.prompt": "The prompt; ``{input}`` is replaced by the task's input.",
    "PolicySpec.examples": "Worked examples, sent as chat turns before each task.",
    "PolicySpec.tiers": "The ladder, cheapest first.",
    "PolicySpec.validators": "The checks every tier's answers must pass.",
    "PolicySpec.budget": "Caps per task: cost and time.",
    "PolicySpec.start": "Start rules: tasks that start at a higher tier.",
    "PolicySpec.limits": "Rate limits, by model (``openai/gpt-4o``) or provider (``openai``).",
    "PolicySpec.breaker": "The circuit breaker of each provider and model.",
    "PolicySpec.audit": "Shadow audits of accepted answers.",
    "PolicySpec.drift": "Drift alarms.",
    "PolicySpec.route": "A start-tier router.",
    "TierSpec.model": "A litellm model string, ``local/...`` for a model on this machine, or"
    " ``human`` for a review queue.",
    "TierSpec.reasks": "Re-asks with the validators' feedback before escalating.",
    "TierSpec.retries": "Retries of a provider error (with backoff) before the fallbacks.",
    "TierSpec.timeout_s": "Seconds a call may take.",
    "TierSpec.fallbacks": "Models asked in turn when this tier's model cannot answer.",
    "TierSpec.temperature": "The sampling temperature.",
    "TierSpec.max_tokens": "The longest answer asked for, in tokens.",
    "TierSpec.params": "Passed to the call as they are (``api_base``, ``api_key``, ...);"
    " values are taken for secrets and redacted unless known to be harmless.",
    "TierSpec.price": "The tier's price, for a model litellm's price map does not list.",
    "StartRule.tier": "The tier such tasks start at, counting from 0.",
    "StartRule.tags": "Tasks with one of these tags start at ``tier``.",
    "StartRule.min_input_tokens": "Tasks whose prompt has at least this many tokens start at"
    " ``tier``.",
    "ExampleSpec.input": "The example's input, put through the prompt like a task's.",
    "ExampleSpec.output": "The answer to it.",
    "LimitSpec.rpm": "Requests per minute.",
    "LimitSpec.tpm": "Tokens per minute.",
    "BreakerSpec.failures": "Provider failures in a row that open the breaker.",
    "BreakerSpec.cooldown_s": "The longest wait between probes of an open breaker.",
    "BudgetSpec.max_cost_per_task_usd": "US dollars one task may spend; every call is priced"
    " before it is made.",
    "PriceSpec.input_usd_per_mtok": "US dollars per million prompt tokens.",
    "PriceSpec.output_usd_per_mtok": "US dollars per million answer tokens.",
    "JsonSchemaSpec.schema_": "A schema file (relative to the policy) or an inline table; none:"
    " each task's own ``schema``.",
    "PydanticSpec.model": "The pydantic model, as ``module:Model``.",
    "GroundedSpec.fields": "The fields to check; all extracted values by default.",
    "GroundedSpec.source": "The task field the values must occur in; the input by default.",
    "GroundedSpec.ignore_case": "Compare without case.",
    "GroundedSpec.collapse_whitespace": "Compare with runs of whitespace as one space.",
    "GroundedSpec.numbers": "Compare numbers by value, however written (``1,234.50``,"
    " ``1.234,50``).",
    "GroundedSpec.dates": "Compare dates by value, however written.",
    "CompilesSpec.max_chars": "Longer code fails unread.",
    "MypySpec.strict": "Run mypy in strict mode.",
    "MypySpec.allow_ignores": "Accept ``# type: ignore`` comments.",
    "TestsSpec.file": "A test file, relative to the policy.",
    "TestsSpec.snippets": "Assert snippets; none: the task's own ``tests``.",
    "TestsSpec.setup": "Code run before the tests.",
    "TestsSpec.wall_s": "Seconds of wall-clock time before the sandbox is killed.",
    "TestsSpec.cpu_s": "Seconds of CPU the sandbox may use.",
    "TestsSpec.memory_mb": "Megabytes of memory the sandbox may use.",
    "JudgeSpec.rubric": "What the judge grades the answer against.",
    "JudgeSpec.model": "The judge's model.",
    "JudgeSpec.reference_field": "A task field holding a reference answer shown to the judge.",
    "JudgeSpec.threshold": "The judge's score an answer needs to pass.",
    "JudgeSpec.price": "The judge's price, for a model litellm's price map does not list.",
    "OneOfSpec.labels": "The allowed answers.",
    "OneOfSpec.ignore_case": "Compare without case.",
    "ConfidenceSpec.threshold": "The self-reported confidence an answer needs.",
    "NotMissingSpec.fields": "A regular expression per field: when the input matches, the field"
    " must not come back empty.",
    "MatchesSpec.pattern": "The regular expression the answer must contain.",
    "MatchesSpec.hint": "The feedback a re-ask gets.",
    "MatchesSpec.ignore_case": "Match without case.",
    "AgreementSpec.model": "The second model.",
    "AgreementSpec.compare": _COMPARE,
    "AgreementSpec.price": "The second model's price, for a model litellm's map does not list.",
    "VoteSpec.models": "The other voters, asked one at a time, cheapest first as listed.",
    "VoteSpec.k": "Answers that must agree (2 by default).",
    "VoteSpec.compare": _COMPARE,
    "SelfConsistencySpec.samples": "More samples of the same model.",
    "SelfConsistencySpec.k": "Answers that must agree (2 by default).",
    "SelfConsistencySpec.compare": _COMPARE,
    "PythonSpec.factory": "Your validator factory, as ``module:factory``.",
    "PythonSpec.args": "Keyword arguments for the factory.",
    "AuditSpec.share": "The share of each tier's accepted answers audited.",
    "AuditSpec.model": "The audit model: it answers the same task, and the answers are compared.",
    "AuditSpec.judge": "Instead of ``model``: a judge model grades the accepted answer against"
    " ``rubric``.",
    "AuditSpec.rubric": "What the judge grades against.",
    "AuditSpec.compare": _COMPARE,
    "AuditSpec.max_cost_usd": "US dollars the audits of one run may spend.",
    "AuditSpec.params": "Passed with the audit model's calls, as a tier's are.",
    "AuditSpec.price": "The audit model's price, for a model litellm's map does not list.",
    "DriftSpec.on_drift": "``warn``, or ``escalate``: the task type starts one tier higher until"
    " ``cascade drift clear``.",
    "RouteSpec.threshold": "The chance of passing a task needs to start at a tier.",
}
"""A meaning per ``Model.field``, for the fields without an attribute docstring."""
