"""The start-tier router: fit, saved, refused when it is not one, and routing tasks in a policy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cascade.bench import load_dataset
from cascade.cli import main
from cascade.engine import first_messages
from cascade.policy import PolicyError, load_policy
from cascade.route.router import FORMAT, Router, fit_router, start_at
from cascade.types import Task

RLC = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "rlc-train"
OPEN_QA = Path(__file__).resolve().parents[1] / "policies" / "ladders" / "rlc" / "open_qa.toml"


def rows(texts: list[str]) -> list[tuple[Task, tuple[dict[str, str], ...]]]:
    """Tasks whose one message is each text."""
    return [(Task(f"t{n}", input=t), ({"role": "user", "content": t},))
            for n, t in enumerate(texts)]  # fmt: skip


def test_a_router_learns_which_tasks_a_tier_fails_and_survives_its_file(tmp_path: Path) -> None:
    """Tier 0 fails every task about "integrals": the router says so, before and after saving."""
    texts = [f"question {n} about {'integrals' if n % 3 == 0 else 'dogs'}" for n in range(120)]
    passed = [[n % 3 != 0 for n in range(120)], [True] * 120]
    router = fit_router(("small", "big"), rows(texts), passed)
    router.save(tmp_path / "router.json")
    again = Router.load(tmp_path / "router.json")
    hard, easy = again.chances(rows(["question 999 about integrals", "question 999 about dogs"]))
    assert hard[0] < 0.5 < easy[0]
    assert hard[1] > 0.99  # a tier that passed everything: a constant chance
    assert again.chances(rows(["a"])) == router.chances(rows(["a"]))


def test_start_at_skips_the_leading_tiers_under_the_threshold_never_the_last() -> None:
    """Tiers under the threshold are skipped from the front, after the policy's own rules."""
    task = Task("t", input="x")
    route = start_at(None, 3, lambda _t, _m: [0.2, 0.4, 0.1], 0.3)
    assert list(route(task, ())) == [1, 2]
    assert list(start_at(None, 3, lambda _t, _m: [0.1, 0.1, 0.1], 0.3)(task, ())) == [2]
    assert list(start_at(None, 3, lambda _t, _m: [0.9, 0.1, 0.1], 0.3)(task, ())) == [0, 1, 2]
    rules = start_at(lambda _t, _m: [1, 2], 3, lambda _t, _m: [0.9, 0.1, 0.9], 0.3)
    assert list(rules(task, ())) == [2]


@pytest.mark.parametrize(
    ("content", "said"),
    [
        ("not json", "cannot be read as JSON"),
        ('{"format": "sklearn-pickle"}', "not a cascade-router/1 file"),
        ("[1, 2]", "not a cascade-router/1 file"),
        (
            json.dumps(
                {
                    "format": FORMAT,
                    "features": 4099,
                    "models": ["a"],
                    "weights": [[0.0]],
                    "intercepts": [0.0],
                }
            ),
            "4099 features wide",
        ),
        (json.dumps({"format": FORMAT, "features": 4099, "models": ["a"]}), "missing"),
    ],
)
def test_a_file_that_is_not_a_router_is_refused_naming_it(
    tmp_path: Path, content: str, said: str
) -> None:
    """Corrupt, foreign or malformed: a clear error naming the file."""
    (tmp_path / "router.json").write_text(content)
    with pytest.raises(Exception, match=said) as raised:
        Router.load(tmp_path / "router.json")
    assert str(tmp_path / "router.json") in str(raised.value)


def test_a_policy_never_runs_without_its_router(tmp_path: Path) -> None:
    """A [route] whose file is missing, corrupt, or fit for another ladder: file:line errors."""
    policy = tmp_path / "p.toml"
    body = 'task_type = "x"\n[[tiers]]\nmodel = "a"\n[[tiers]]\nmodel = "b"\n'
    policy.write_text(body + '[route]\nfile = "router.json"\nthreshold = 0.5\n')
    with pytest.raises(PolicyError, match=r"p\.toml:7.*route\.file.*router\.json"):
        load_policy(policy)
    (tmp_path / "router.json").write_text("{}")
    with pytest.raises(PolicyError, match="not a cascade-router/1 file"):
        load_policy(policy)
    fit_router(("c", "d"), rows(["q1", "q2"]), [[True, False], [True, True]]).save(
        tmp_path / "router.json"
    )
    with pytest.raises(PolicyError, match="was fit for the ladder c → d, not this policy's a → b"):
        load_policy(policy)
    # The same models with a provider prefix added are the same ladder; others are not.
    prefixed = body.replace('"a"', '"openai/c"').replace('"b"', '"azure/d"')
    policy.write_text(prefixed + '[route]\nfile = "router.json"\nthreshold = 0.5\n')
    assert load_policy(policy).spec.route is not None
    policy.write_text(prefixed.replace("azure/d", "azure/e") + '[route]\nfile = "router.json"\n'
                      "threshold = 0.5\n")  # fmt: skip
    with pytest.raises(PolicyError, match="not this policy's openai/c → azure/e"):
        load_policy(policy)


@pytest.mark.skipif(not RLC.is_dir(), reason="../shared/datasets is not beside the repo")
def test_route_fit_writes_a_router_the_policy_routes_with(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """On rlc-train's open questions: a threshold chosen on training tasks.

    A policy with the [route] then starts some tasks past the cheap tier.
    """
    assert main(["route", "fit", str(RLC), "--policy", str(OPEN_QA),
                 "--out", str(tmp_path / "router.json")]) == 0  # fmt: skip
    said = capsys.readouterr().out
    threshold = float(said.split("threshold = ")[1].split()[0])
    assert 0 < threshold < 1
    assert "out-of-fold chances" in said
    routed = tmp_path / "open_qa.toml"
    routed.write_text(OPEN_QA.read_text() + f'\n[route]\nfile = "router.json"\n'
                      f"threshold = {threshold}\n")  # fmt: skip
    plan = load_policy(routed).plan
    assert plan.route is not None
    open_qa = [t for t in load_dataset(RLC).tasks if t.type == "open_qa"][:200]
    starts = [plan.route(t, first_messages(t, plan.prompt))[0] for t in open_qa]
    assert 0 < starts.count(1) < len(starts)
