"""Small recorded datasets written on the fly, in the shared format, for optimizer tests.

Three models of rising price and accuracy answer multiple-choice and math tasks. The cheap
ones are surer when they are right, and sometimes break the answer format, so confidence and
format checks carry real signal, as they do in the recorded suites.

With ``alts``, the two cheap models also carry ``alt_outputs``: that many other samples of the
same question, each drawn like the first (right as often, as sure when right) with its own
``correct`` and ``confidence``, which is what a re-ask is served in a replay.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

MODELS = {"tiny": (0.60, 1e-5), "mid": (0.80, 1e-4), "big": (0.95, 1e-3)}


def write_dataset(
    folder: Path, *, tasks: int = 150, seed: int = 7, alts: int = 0, self_assessed: bool = False
) -> Path:
    """Write tasks.jsonl, responses.jsonl and models.json; return the folder.

    With ``self_assessed``, each math answer's confidence came from a second call, which its
    ``cost_usd`` includes and its ``answer_only_cost_usd`` leaves out, as in rlc-train.
    """
    rng = random.Random(seed)  # noqa: S311  # test data, not secrets
    resample = random.Random(seed + 1)  # noqa: S311  # apart, so alts=0 gives the same data
    folder.mkdir(parents=True, exist_ok=True)
    task_lines: list[dict[str, object]] = []
    response_lines: list[dict[str, object]] = []
    for number in range(tasks):
        for kind in ("multiple_choice", "math"):
            task_id = f"{kind}-{number}"
            gold = rng.choice("ABCD") if kind == "multiple_choice" else str(rng.randint(10, 99))
            task: dict[str, object] = {"id": task_id, "kind": kind, "gold": gold,
                    "messages": [{"role": "user", "content": f"question {task_id}"}]}  # fmt: skip
            if kind == "multiple_choice":
                task["choices"] = ["w", "x", "y", "z"]
            task_lines.append(task)
            for model, (accuracy, cost) in MODELS.items():
                right = rng.random() < accuracy
                response = _response(task_id, kind, model, gold, right, cost, rng)
                if self_assessed and kind == "math":
                    response["answer_only_cost_usd"] = response["cost_usd"]
                    response["cost_usd"] = 3 * float(response["cost_usd"])  # type: ignore[arg-type]
                if alts and model != "big":
                    response["alt_outputs"] = [
                        _alt(kind, model, gold, resample.random() < accuracy, resample)
                        for _ in range(alts)
                    ]
                response_lines.append(response)
    return _written(folder, task_lines, response_lines, MODELS)


def _response(
    task_id: str, kind: str, model: str, gold: str, right: bool, cost: float, rng: random.Random
) -> dict[str, object]:
    if kind == "multiple_choice":
        answer = gold if right else rng.choice([c for c in "ABCD" if c != gold])
        broken = model == "tiny" and rng.random() < 0.2
        output = f"I think the answer is {answer}" if broken else answer
    else:
        answer = gold if right else str(int(gold) + rng.choice([-2, -1, 1, 3]))
        broken = model != "big" and rng.random() < 0.1
        output = f"So it is {answer}." if broken else f"Step: work.\n#### {answer}"
    sure = rng.gauss(-0.1, 0.1) if right else rng.gauss(-0.9, 0.4)
    return {
        "task_id": task_id, "model": model, "output": output, "prompt_tokens": 10,
        "completion_tokens": 2, "cost_usd": cost * rng.uniform(0.8, 1.2),
        "latency_s": 0.5, "correct": right, "confidence": min(0.0, sure),
    }  # fmt: skip


def _alt(kind: str, model: str, gold: str, right: bool, rng: random.Random) -> dict[str, object]:
    sample = _response("", kind, model, gold, right, 0.0, rng)
    return {k: sample[k] for k in ("output", "correct", "confidence")}


CODE_MODELS = {"cheap": 2e-5, "big": 2e-3, "mystery": None}


def _program(kind: str, name: str, k: int) -> str:
    """A candidate for ``name(x) == x * k + 1``.

    Right, wrong on the shown example, wrong only on unseen inputs (it hard-codes the example),
    or right under another name.
    """
    body = {
        "right": f"return x * {k} + 1",
        "wrong": f"return x * {k}",
        "lookup": f"return {{2: {2 * k + 1}}}.get(x, 0)",
        "renamed": f"return x * {k} + 1",
    }[kind]
    function = "solve" if kind == "renamed" else name
    return f"```python\ndef {function}(x):\n    {body}\n```"


def write_code_dataset(folder: Path, *, tasks: int = 12, seed: int = 3) -> Path:
    """A small code suite in the shared format: tests that can be run, three recorded samples.

    ``cheap`` answers right half the time, sometimes under an invented function name, and
    sometimes with a lookup table that passes the visible test only; ``big`` is always right;
    ``mystery`` has no price at all.
    """
    rng = random.Random(seed)  # noqa: S311  # test data, not secrets
    folder.mkdir(parents=True, exist_ok=True)
    task_lines, response_lines = [], []
    for number in range(tasks):
        k = number + 2
        name = f"scale_{number}"
        hidden = f"def check(f):\n    assert f(5) == {5 * k + 1}\n    assert f(0) == 1\n"
        hidden += f"\ncheck({name})\n"
        task_lines.append({
            "id": f"code-{number}", "kind": "code", "entry_point": name,
            "messages": [{"role": "user", "content": f"Write {name}(x) = x * {k} + 1."}],
            "visible_tests": [f"assert ({name}(2)) == ({2 * k + 1})"],
            "hidden_tests": [hidden], "test_setup": "",
        })  # fmt: skip
        for model, price in CODE_MODELS.items():
            kinds = ["right"] * 4 if model == "big" else [
                rng.choice(["right", "right", "wrong", "lookup", "renamed"]) for _ in range(4)
            ]  # fmt: skip
            samples = [
                {"output": _program(kind, name, k), "correct": kind in ("right", "renamed"),
                 "cost_usd": price}
                for kind in kinds
            ]  # fmt: skip
            first = samples[0]
            response_lines.append({
                "task_id": f"code-{number}", "model": model, "output": first["output"],
                "prompt_tokens": None if price is None else 50, "completion_tokens": None
                if price is None else 20, "cost_usd": price, "latency_s": 1.0,
                "correct": first["correct"], "alt_outputs": samples[1:],
            })  # fmt: skip
    return _written(folder, task_lines, response_lines, CODE_MODELS)


ROUTED_MODELS = {"tiny": 2e-4, "big": 1e-3}


def write_routed_dataset(folder: Path, *, tasks: int = 300, seed: int = 5) -> Path:
    """Multiple-choice tasks a start-tier router can tell apart by their words.

    ``tiny`` (a fifth of ``big``'s price) answers every "easy" question right and breaks the
    answer format on every "hard" one, so its format check rejects those, at a cost; ``big`` is
    always right. Half the questions are hard.
    """
    rng = random.Random(seed)  # noqa: S311  # test data, not secrets
    folder.mkdir(parents=True, exist_ok=True)
    task_lines, response_lines = [], []
    for number in range(tasks):
        hard = rng.random() < 0.5
        topic = rng.choice(["tensors", "spectra", "manifolds"] if hard else ["apples", "dogs"])
        task_id = f"multiple_choice-{number}"
        gold = rng.choice("ABCD")
        task_lines.append({
            "id": task_id, "kind": "multiple_choice", "gold": gold, "choices": list("wxyz"),
            "messages": [{"role": "user",
                          "content": f"{'hard' if hard else 'easy'} question {number} on {topic}"}],
        })  # fmt: skip
        for model, cost in ROUTED_MODELS.items():
            right = model == "big" or not hard
            output = gold if right else f"It could be {rng.choice('ABCD')}, or not"
            response_lines.append({
                "task_id": task_id, "model": model, "output": output, "prompt_tokens": 10,
                "completion_tokens": 2, "cost_usd": cost, "latency_s": 0.5, "correct": right,
            })  # fmt: skip
    return _written(folder, task_lines, response_lines, ROUTED_MODELS)


def _written(
    folder: Path, tasks: Sequence[Mapping[str, object]],
    responses: Sequence[Mapping[str, object]], models: Iterable[str],
) -> Path:  # fmt: skip
    """Write a dataset's three files into ``folder``, its models unpriced; return the folder."""
    (folder / "tasks.jsonl").write_text("".join(json.dumps(t) + "\n" for t in tasks))
    (folder / "responses.jsonl").write_text("".join(json.dumps(r) + "\n" for r in responses))
    prices = [{"name": m, "input_usd_per_mtok": None, "output_usd_per_mtok": None} for m in models]
    (folder / "models.json").write_text(json.dumps(prices))
    return folder
