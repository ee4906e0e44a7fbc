"""Votes, self-consistency and reused answers, as the engine runs them with a scripted backend."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cascade import Cascade, Price, Tier, confidence, one_of, self_consistency, vote
from cascade.backends import ReplayBackend, ScriptedBackend
from cascade.backends.base import Request, Response
from cascade.enums import CallKind, Status
from cascade.errors import ConfigError, ServerError
from cascade.validators import agreement, judge
from tests.helpers import make, models_called
from tests.synthetic import write_dataset

TASK = {"id": "t1", "input": "Which letter?"}


def test_a_vote_stops_asking_once_two_agree() -> None:
    """The first voter agrees: the second is never asked, and the answer is the tier's own."""
    cascade, backend = make({"a": ["B"], "b": ["B"], "c": ["C"]}, ["a"], vote(["b", "c"]))
    outcome = cascade.run(TASK)
    assert outcome.accepted
    assert (outcome.output, outcome.model) == ("B", "a")
    assert models_called(backend) == ["a", "b"]


def test_a_vote_delivers_the_majority_even_against_the_tier() -> None:
    """The two voters agree with each other: their answer is delivered, and named as theirs."""
    cascade, backend = make({"a": ["A"], "b": ["C"], "c": ["c."]}, ["a"], vote(["b", "c"]))
    outcome = cascade.run(TASK)
    assert outcome.accepted
    assert (outcome.output, outcome.model) == ("C", "b")
    assert outcome.steps[0].output == "A"  # the tier's own answer stays in its step
    assert models_called(backend) == ["a", "b", "c"]
    assert [str(s.kind) for s in outcome.steps] == ["call", "validator", "validator"]


def test_a_vote_with_no_majority_escalates() -> None:
    """Three different answers: no majority, so the next tier is asked."""
    cascade, _ = make({"a": ["A"], "b": ["B"], "c": ["C"], "big": ["D"]}, ["a", "big"],
                      vote(["b", "c"]))  # fmt: skip
    outcome = cascade.run(TASK)
    assert outcome.tier == 1
    assert "fewer than 2 of 3 answers agree" in outcome.steps[0].verdicts[0].reason


def test_a_voter_that_fails_counts_against_and_is_named() -> None:
    """A voter whose provider fails after its retries is a vote that does not agree."""
    cascade, _ = make({"a": ["A"], "b": [ServerError("503 down")], "c": ["B"], "big": ["A"]},
                      [Tier("a", retries=0), "big"], vote(["b", "c"]))  # fmt: skip
    outcome = cascade.run(TASK)
    assert outcome.tier == 1
    assert "no answer from b" in outcome.steps[0].verdicts[0].reason


def test_self_consistency_asks_for_more_samples_of_the_same_model() -> None:
    """Each extra sample is its own request, numbered; two of three agreeing pass."""
    cascade, backend = make({"a": ["17", "16", "17"]}, ["a"], self_consistency(2))
    outcome = cascade.run(TASK)
    assert outcome.accepted
    assert [r.sample for r in backend.calls] == [0, 1, 2]
    assert outcome.output == "17"


def test_an_answer_the_task_already_has_is_reused_free() -> None:
    """A second tier checked against the first tier's model reuses that answer: no call, no cost."""
    backend = ScriptedBackend(
        {"a": ["x"], "b": ["X"]}, prices={"a": Price(1.0, 1.0), "b": Price(2.0, 2.0)}
    )
    ladder = [Tier("a", validate=one_of(["nope"])), Tier("b")]
    cascade = Cascade(ladder, agreement("a", compare="text"), backend=backend, log=False)
    outcome = cascade.run(TASK)
    assert outcome.accepted
    assert outcome.tier == 1
    assert models_called(backend) == ["a", "b"]
    assert not [s for s in outcome.steps if s.kind is CallKind.VALIDATOR]
    assert outcome.cost_usd == pytest.approx(sum(s.cost_usd for s in outcome.steps))


def test_a_judge_is_never_served_a_tier_answer() -> None:
    """Reuse is by model and question: the tier's own model asked to judge is called again."""

    def judge_or_answer(request: Request) -> str:
        text = request.messages[-1]["content"]
        if "<<<" not in text:
            return "Paris"
        nonce = text.split("<<<", 1)[1].split(":", 1)[0]
        return f'{{"nonce": "{nonce}", "verdict": "pass", "score": 1, "reason": "right"}}'

    backend = ScriptedBackend({"a": judge_or_answer})
    cascade = Cascade(["a"], judge("Names the capital.", model="a"), backend=backend, log=False)
    outcome = cascade.run(TASK)
    assert outcome.accepted
    assert models_called(backend) == ["a", "a"]
    assert outcome.output == "Paris"


@pytest.mark.parametrize(
    ("make_it", "message"),
    [
        (lambda: vote([]), "a vote needs the names"),
        (lambda: vote(["b"], k=3), "k must be from 2 to 2"),
        (lambda: self_consistency(0), "samples >= 1"),
        (lambda: vote(["b"], compare="fuzzy"), "compare must be one of"),  # type: ignore[arg-type]
    ],
)
def test_bad_votes_are_refused(make_it: object, message: str) -> None:
    """Each bad setting is a configuration error that says what is wrong."""
    with pytest.raises(ConfigError, match=message):
        make_it()  # type: ignore[operator]


def test_a_replay_charges_the_confidence_call_only_to_those_who_read_it(tmp_path: Path) -> None:
    """Answer-only cost and no confidence, unless the request reads it; then the full cost."""
    folder = write_dataset(tmp_path / "s", tasks=3, self_assessed=True)
    backend = ReplayBackend.from_dataset(folder)
    messages = ({"role": "user", "content": "q"},)
    plain = asyncio.run(backend.complete(Request("tiny", messages, task_id="math-0")))
    read = asyncio.run(
        backend.complete(Request("tiny", messages, task_id="math-0", confidence=True))
    )
    assert plain.confidence is None
    assert read.confidence is not None
    assert read.cost_usd == pytest.approx(3 * plain.cost_usd)
    mc = asyncio.run(backend.complete(Request("tiny", messages, task_id="multiple_choice-0")))
    assert mc.confidence is not None  # free where it came with the answer


def test_a_tier_that_reads_confidence_asks_for_it_and_others_do_not(tmp_path: Path) -> None:
    """The engine tells the backend when a tier's checks read the confidence."""
    folder = write_dataset(tmp_path / "s", tasks=3, self_assessed=True)
    backend = ReplayBackend.from_dataset(folder)
    calls: list[Request] = []
    real = backend.complete

    async def spy(request: Request) -> Response:
        calls.append(request)
        return await real(request)

    backend.complete = spy  # type: ignore[method-assign]
    ladder: list[Tier | str] = [
        Tier("tiny", validate=confidence(0.5)),
        Tier("mid", validate=one_of(["x"])),
        "big",
    ]
    cascade = Cascade(ladder, backend=backend, log=False)
    outcome = cascade.run({"id": "math-0", "messages": [{"role": "user", "content": "q"}]})
    assert outcome.status is Status.ACCEPTED
    assert [(r.model, r.confidence) for r in calls] == [
        ("tiny", True),
        ("mid", False),
        ("big", False),
    ]
