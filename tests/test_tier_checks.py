"""Checks of one tier only (``[[tiers.validators]]``), answer-format checks, final numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from cascade import Cascade, Status, Tier
from cascade.errors import ConfigError
from cascade.policy import PolicyError, load_policy
from cascade.testing import verdict_of
from cascade.validators import agreement, confidence, matches
from cascade.validators.agreement import final_number, same_answers
from tests.helpers import make, models_called

POLICY = """task_type = "math"

[[tiers]]
model = "small"

[[tiers.validators]]
kind = "matches"
pattern = '####\\s*(-?\\d+)\\s*$'

[[tiers]]
model = "middle"

[[tiers]]
model = "big"
trusted = true

[[validators]]
kind = "one_of"
labels = ["#### 4"]
"""


def test_a_tier_runs_the_policy_checks_and_its_own(tmp_path: Path) -> None:
    """Tier 0 must pass both checks; tier 1 only the policy's; tier 2 none."""
    path = tmp_path / "math.toml"
    path.write_text(POLICY)
    policy = load_policy(path)
    assert (
        repr(policy.ladder[0].validate)
        == "all_of(one_of(['#### 4']), matches('####\\\\s*(-?\\\\d+)\\\\s*$'))"
    )
    assert policy.ladder[1].validate is None
    assert policy.ladder[2].trusted
    from cascade.backends import ScriptedBackend  # noqa: PLC0415

    backend = ScriptedBackend({"small": ["#### 5"], "middle": ["#### 4"], "big": ["x"]})
    outcome = Cascade(policy.plan, backend=backend, log=False).run({"id": "t", "input": "2+2"})
    assert outcome.status is Status.ACCEPTED
    assert outcome.tier == 1
    assert [r.model for r in backend.calls] == ["small", "middle"]


def test_a_tier_check_replaces_the_cascade_validator_for_that_tier() -> None:
    """In Python, ``Tier(validate=...)`` judges that tier instead of the cascade's validator."""
    strict = Tier("small", validate=confidence(0.9))
    cascade, backend = make({"small": ["ok"], "big": ["ok"]}, [strict, "big"])
    outcome = cascade.run({"id": "t", "input": "x"})
    assert outcome.tier == 1  # "ok" passes says_ok, but tier 0 demanded a confidence score
    assert models_called(backend) == ["small", "big"]


TRUSTED_WITH_CHECKS = """
[[tiers.validators]]
kind = "confidence"
threshold = 0.5
"""


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "trusted = true\n",
            "trusted = true\n" + TRUSTED_WITH_CHECKS,
            ":15: tiers[2].trusted: a trusted tier runs no validators",
        ),
        (
            "pattern = '####\\s*(-?\\d+)\\s*$'",
            "pattern = '(unclosed'",
            ":7: tiers[0].validators[0].kind: matches: '(unclosed' is not a regular expression",
        ),
    ],
)
def test_policy_errors_in_tier_checks_name_the_line(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    """A trusted tier with checks, or a bad check of a tier, is named by file, line and field."""
    path = tmp_path / "bad.toml"
    assert old in POLICY
    path.write_text(POLICY.replace(old, new))
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert str(caught.value).startswith(f"{path}{expected}")


def test_a_trusted_tier_with_a_check_is_refused_in_python() -> None:
    """The same rule holds for tiers built in code."""
    with pytest.raises(ConfigError, match="a trusted tier runs no validators"):
        Tier("big", trusted=True, validate=confidence(0.5))


def test_matches_checks_the_answer_format() -> None:
    """The pattern is searched; its group is the value; the hint is the re-ask feedback."""
    check = matches(r"####\s*(-?\d+)\s*$", hint="End on '#### x'.")
    verdict = verdict_of(check, "2 + 2 = 4\n#### 4")
    assert verdict.passed
    assert verdict.value == "4"
    failed = verdict_of(check, "The answer is 4.")
    assert not failed.passed
    assert failed.feedback == "End on '#### x'."
    assert "does not match" in failed.reason
    with pytest.raises(ConfigError, match="not a regular expression"):
        matches("[")


def test_final_numbers_compare_by_value() -> None:
    """After '####' when present, else the last number; commas, dollars and .0 do not matter."""
    assert final_number("so 3 + 4 = 7\n#### $1,207.50") == 1207.5
    assert final_number("3 apples and then 12") == 12.0
    assert final_number("#### -3") == -3.0
    assert final_number("nothing") is None
    assert same_answers("... #### 12", "twelve? no: 12.0", "number")
    assert not same_answers("#### 12", "#### 13", "number")
    assert repr(agreement("m", compare="number")) == "agreement('m', compare='number')"
