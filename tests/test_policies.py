"""Policy files: the shipped ones load and check, and bad ones get precise file:line errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from cascade import Attempt, Cascade, Status, Verdict
from cascade.backends import ScriptedBackend
from cascade.cli import main
from cascade.policy import PolicyError, load_policies, load_policy

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "policies").glob("*.toml"))
GOOD = """\
task_type = "labels"
prompt = "Label: {input}"

[[tiers]]
model = "small"
reasks = 1

[[tiers]]
model = "big"

[[validators]]
kind = "one_of"
labels = ["yes", "no"]

[budget]
max_cost_per_task_usd = 0.01
"""


def write(folder: Path, text: str, name: str = "policy.toml") -> Path:
    """Write a policy file and return its path."""
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def test_every_kind_of_task_has_a_shipped_policy() -> None:
    """The five shipped policies cover extraction, calls, code, labels and judged text."""
    types = load_policies(ROOT / "policies").task_types()
    assert types == [
        "classification",
        "code",
        "contact",
        "extraction",
        "free_text",
        "function_call",
    ]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_each_shipped_policy_loads(path: Path) -> None:
    """Each shipped policy loads into a runnable cascade."""
    policy = load_policy(path)
    assert policy.ladder
    assert repr(Cascade(policy.plan, backend=ScriptedBackend({}), log=False))


def test_policy_check_passes_on_the_shipped_policies(capsys: pytest.CaptureFixture[str]) -> None:
    """``cascade policy check`` exits 0 on every shipped file and on the folder."""
    assert main(["policy", "check", *map(str, SHIPPED), str(ROOT / "policies")]) == 0
    assert capsys.readouterr().out.count(": ok: ") == 2 * len(SHIPPED)


BAD = [
    ("malformed-toml", GOOD.replace('model = "big"', "model = big"), 9, "not valid TOML"),
    (
        "wrong-type",
        GOOD.replace("reasks = 1", 'reasks = "one"'),
        6,
        "tiers[0].reasks: Input should be a valid integer",
    ),
    (
        "unknown-kind",
        GOOD.replace('"one_of"', '"vibes"'),
        12,
        "validators[0].kind: unknown validator kind 'vibes'",
    ),
    (
        "missing-schema",
        GOOD + '\n[[validators]]\nkind = "json_schema"\nschema = "nope.json"\n',
        20,
        "validators[1].schema: file nope.json not found",
    ),
    ("no-model", GOOD.replace('model = "big"', "reasks = 0"), 8, "tiers[1].model: Field required"),
    (
        "negative-budget",
        GOOD.replace("0.01", "-1"),
        16,
        "budget.max_cost_per_task_usd: Input should be greater than 0",
    ),
    ("unknown-key", GOOD.replace("reasks = 1", "reask = 1"), 6, "tiers[0].reask: unknown key"),
    (
        "start-beyond-ladder",
        GOOD + "\n[[start]]\ntags = ['hard']\ntier = 5\n",
        20,
        "start[0].tier: there are only 2 tiers",
    ),
    (
        "zero-rpm",
        GOOD + '\n[limits."openai/gpt-4o"]\nrpm = 0\n',
        19,
        "limits.openai/gpt-4o.rpm: Input should be greater than 0",
    ),
    (
        "breaker-typo",
        GOOD + "\n[breaker]\nfailure = 3\n",
        19,
        "breaker.failure: unknown key",
    ),
    (
        "bad-factory",
        GOOD + '\n[[validators]]\nkind = "python"\nfactory = "no_such_module:make"\n',
        20,
        "validators[1].factory: cannot import no_such_module:make",
    ),
]


@pytest.mark.parametrize(("text", "line", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_bad_policy_gets_a_precise_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, line: int, message: str
) -> None:
    """``policy check`` exits 1 and prints ``file:line: field: message`` for each problem."""
    path = write(tmp_path, text)
    assert main(["policy", "check", str(path)]) == 1
    assert f"{path}:{line}: {message}" in capsys.readouterr().out


def test_every_problem_in_a_file_is_reported_at_once(tmp_path: Path) -> None:
    """Several mistakes give several lines, not just the first."""
    text = GOOD.replace("reasks = 1", "reasks = -1").replace("0.01", "-1")
    with pytest.raises(PolicyError) as caught:
        load_policy(write(tmp_path, text))
    assert [p.line for p in caught.value.problems] == [6, 16]


def test_two_policies_for_one_type_are_an_error(tmp_path: Path) -> None:
    """A directory may not serve one task type twice."""
    write(tmp_path, GOOD, "a.toml")
    write(tmp_path, GOOD, "b.toml")
    with pytest.raises(PolicyError, match="already served by"):
        load_policies(tmp_path)


def test_a_policy_named_without_its_suffix_is_found_and_a_missing_one_is_named(
    tmp_path: Path,
) -> None:
    """``optimized/bfcl-simple`` finds ``bfcl-simple.toml``; a name with neither is an error."""
    (tmp_path / "contact.toml").write_text('task_type = "contact"\n[[tiers]]\nmodel = "m"\n')
    assert [p.task_type for p in load_policies(tmp_path / "contact")] == ["contact"]
    with pytest.raises(PolicyError, match="no such policy file or directory"):
        load_policies(tmp_path / "missing")


def test_relative_paths_resolve_against_the_policy_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A schema path is found beside the policy, wherever the command runs from."""
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "x.json").write_text('{"title": "x", "type": "object"}')
    path = write(
        tmp_path, GOOD + '\n[[validators]]\nkind = "json_schema"\nschema = "schemas/x.json"\n'
    )
    monkeypatch.chdir(Path("/"))
    assert "json_schema('x')" in repr(load_policy(path).validate)


def short(limit: int = 3) -> object:
    """A user's validator factory, as ``kind = "python"`` names it."""

    def check(attempt: Attempt) -> Verdict:
        ok = len(attempt.output) <= limit
        return Verdict(ok, reason="" if ok else "too long", feedback="Be brief.")

    return check


def test_a_users_factory_plugs_in(tmp_path: Path) -> None:
    """``kind = "python"`` calls ``module:factory`` with ``args``."""
    text = GOOD + '\n[[validators]]\nkind = "python"\nfactory = "tests.test_policies:short"\n'
    text += "args = { limit = 2 }\n"
    cascade = Cascade(
        load_policy(write(tmp_path, text)).plan,
        backend=ScriptedBackend({"small": ["yes"], "big": ["no"]}),
        log=False,
    )
    outcome = cascade.run({"id": "t", "input": "?"})
    assert outcome.status is Status.ACCEPTED
    assert outcome.model == "big"


def test_start_rules_and_context_windows_route_tasks(tmp_path: Path) -> None:
    """A tagged task starts higher; a prompt too long for a tier's window skips that tier."""
    text = GOOD.replace('model = "small"', 'model = "small"\ncontext_window = 50')
    text += "\n[[start]]\ntags = ['hard']\ntier = 1\n"
    backend = ScriptedBackend({"small": ["yes"], "big": ["yes"]})
    cascade = Cascade(load_policy(write(tmp_path, text)).plan, backend=backend, log=False)
    assert cascade.run({"id": "a", "input": "short"}).model == "small"
    assert cascade.run({"id": "b", "input": "short", "tags": ["hard"]}).model == "big"
    assert cascade.run({"id": "c", "input": "word " * 200}).model == "big"
    assert [r.model for r in backend.calls] == ["small", "big", "big"]


def test_a_task_no_tier_can_take_fails_with_a_reason(tmp_path: Path) -> None:
    """When every tier's window is too small, the task fails saying so, and nothing is called."""
    text = GOOD.replace('model = "small"', 'model = "small"\ncontext_window = 20')
    text = text.replace('model = "big"', 'model = "big"\ncontext_window = 20')
    backend = ScriptedBackend({"small": ["yes"], "big": ["yes"]})
    plan = load_policy(write(tmp_path, text)).plan
    outcome = Cascade(plan, backend=backend, log=False).run({"id": "x", "input": "word " * 100})
    assert outcome.status is Status.FAILED
    assert "context windows" in outcome.reasons[0]
    assert backend.calls == []


def test_limits_and_breakers_from_every_policy_make_one_guard(tmp_path: Path) -> None:
    """Policies' limits merge (the stricter wins, command line included) into one shared guard."""
    from cascade.run.guard import Limit, guard_for  # noqa: PLC0415

    write(tmp_path, GOOD + "\n[limits.openai]\nrpm = 500\n[breaker]\nfailures = 7\n", "a.toml")
    other = GOOD.replace('"labels"', '"moods"') + "\n[limits.openai]\nrpm = 300\ntpm = 9000\n"
    write(tmp_path, other, "b.toml")
    guard = guard_for(load_policies(tmp_path), {"openai": Limit(rpm=400), "small": Limit(tpm=100)})
    assert guard.limits == {"openai": Limit(300, 9000), "small": Limit(None, 100)}
    assert guard.breaker.failures == 7
    assert guard.needs_tokens("openai/gpt-4o")
