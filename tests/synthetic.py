"""A small recorded dataset written on the fly, in the shared format, for optimizer tests.

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
from pathlib import Path

MODELS = {"tiny": (0.60, 1e-5), "mid": (0.80, 1e-4), "big": (0.95, 1e-3)}


def write_dataset(folder: Path, *, tasks: int = 150, seed: int = 7, alts: int = 0) -> Path:
    """Write tasks.jsonl, responses.jsonl and models.json; return the folder."""
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
                if alts and model != "big":
                    response["alt_outputs"] = [
                        _alt(kind, model, gold, resample.random() < accuracy, resample)
                        for _ in range(alts)
                    ]
                response_lines.append(response)
    (folder / "tasks.jsonl").write_text("".join(json.dumps(t) + "\n" for t in task_lines))
    (folder / "responses.jsonl").write_text("".join(json.dumps(r) + "\n" for r in response_lines))
    prices = [{"name": m, "input_usd_per_mtok": None, "output_usd_per_mtok": None} for m in MODELS]
    (folder / "models.json").write_text(json.dumps(prices))
    return folder


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
