"""The exact public API: the public modules, each one's ``__all__`` name for name.

A name added to or dropped from the public surface is a deliberate change: it changes this
file too (as httpx's ``test_exported_members`` does). The examples in the README, the docs and
``examples/`` import only from these modules.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PUBLIC: dict[str, list[str]] = {
    "cascade": [
        "Attempt",
        "Backend",
        "Batcher",
        "Batching",
        "BreakerSettings",
        "CallKind",
        "Cascade",
        "CascadeError",
        "ConfigError",
        "CostClass",
        "Decision",
        "Guard",
        "Limit",
        "Outcome",
        "PermanentProviderError",
        "Plan",
        "Price",
        "ProviderError",
        "Request",
        "Response",
        "RetryPolicy",
        "Settings",
        "Status",
        "Step",
        "StepLog",
        "Store",
        "Task",
        "TaskError",
        "Tier",
        "TransientProviderError",
        "Usage",
        "Validator",
        "Verdict",
        "__version__",
        "all_of",
        "any_of",
        "capture_steps",
        "compiles",
        "confidence",
        "function_call",
        "grounded",
        "json_schema",
        "judge",
        "matches",
        "mypy_clean",
        "not_",
        "one_of",
        "passes_tests",
        "pydantic_model",
        "self_consistency",
        "vote",
        "weighted",
    ],
    "cascade.backends": [
        "Backend",
        "Hang",
        "HttpBackend",
        "LiteLLMBackend",
        "LocalBackend",
        "PrefixBackend",
        "Recorded",
        "ReplayBackend",
        "Reply",
        "Request",
        "Response",
        "ScriptedBackend",
    ],
    "cascade.bench": [
        "Dataset",
        "LadderScore",
        "ReplayScore",
        "load_dataset",
        "score_ladder",
        "score_models",
        "score_oracle",
    ],
    "cascade.cli": [
        "main",
    ],
    "cascade.errors": [
        "AuthenticationFailed",
        "BackendCrashed",
        "BackendFault",
        "BadRequest",
        "BatchUnanswered",
        "CascadeError",
        "CircuitOpen",
        "ConfigError",
        "ConnectionFailed",
        "MalformedResponse",
        "ModelRequestsForbidden",
        "PermanentProviderError",
        "ProviderError",
        "ProviderTimeout",
        "RateLimited",
        "ReplayMissing",
        "ServerError",
        "TaskError",
        "TransientProviderError",
        "UnknownModel",
        "UnpricedModel",
        "parse_retry_after",
    ],
    "cascade.policy": [
        "Policy",
        "PolicyError",
        "PolicySet",
        "Problem",
        "load_policies",
        "load_policy",
    ],
    "cascade.store": [
        "SCHEMA_VERSION",
        "Store",
    ],
    "cascade.testing": [
        "FakeBatches",
        "FakeOpenAI",
        "FakeReply",
        "Hang",
        "Raw",
        "Reply",
        "ScriptedBackend",
        "attempt_with",
        "capture_steps",
        "no_model_requests",
        "serve_in_subprocess",
        "verdict_of",
    ],
    "cascade.validators": [
        "CostClass",
        "Limits",
        "Sandbox",
        "Validator",
        "VerdictCache",
        "agreement",
        "all_of",
        "any_of",
        "compiles",
        "confidence",
        "cost_class_of",
        "extract_code",
        "extract_json",
        "function_call",
        "grounded",
        "json_schema",
        "judge",
        "matches",
        "mypy_clean",
        "not_",
        "not_missing",
        "one_of",
        "passes_tests",
        "pydantic_model",
        "reads_confidence",
        "run_validator",
        "self_consistency",
        "vote",
        "weighted",
    ],
}
"""Every public module and what it exports; anything else under ``cascade`` is internal."""


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_each_public_module_exports_exactly_its_names(module: str) -> None:
    """``__all__`` is the list above, sorted and without repeats, and every name exists."""
    loaded = importlib.import_module(module)
    exported = list(loaded.__all__)
    assert exported == PUBLIC[module]
    assert len(set(exported)) == len(exported)
    for name in exported:
        assert hasattr(loaded, name), f"{module}.{name}"


def test_a_public_class_or_function_is_exported_where_it_is_public() -> None:
    """No capitalised name or function of ``cascade`` itself is left out of its ``__all__``."""
    import cascade  # noqa: PLC0415

    defined = {n for n, v in vars(cascade).items()
               if not n.startswith("_") and (n[0].isupper() or callable(v))
               and getattr(v, "__module__", "").startswith("cascade")}  # fmt: skip
    assert defined <= set(cascade.__all__)


_IMPORT = re.compile(r"^\s*(?:from\s+(cascade[\w.]*)\s+import|import\s+(cascade[\w.]*))", re.M)


def _examples() -> list[tuple[str, str]]:
    """(where, code) of every python example: README and docs blocks, examples/ scripts."""
    found = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for number, block in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(),
                                                  re.DOTALL)):  # fmt: skip
            found.append((f"{page.relative_to(ROOT)} example {number + 1}", block))
    for script in sorted((ROOT / "examples").glob("*.py")):
        found.append((str(script.relative_to(ROOT)), script.read_text()))
    return found


def test_the_examples_import_only_public_modules() -> None:
    """What the README, the docs and examples/ teach a user to import is public."""
    examples = _examples()
    assert len(examples) >= 10
    internal = [
        (where, module)
        for where, code in examples
        for match in _IMPORT.finditer(code)
        if (module := match.group(1) or match.group(2)) not in PUBLIC
    ]
    assert internal == []


def test_the_api_reference_documents_every_public_module() -> None:
    """The site's API page has a section for each public module, and for no other."""
    page = (ROOT / "docs" / "reference" / "api.md").read_text()
    assert sorted(re.findall(r"^::: (\S+)$", page, re.M)) == sorted(PUBLIC)
