"""Wall time of ``cascade bench`` on 10,000 tasks x 5 tiers with JSON Schema validation.

Writes a synthetic dataset in the shared format (tasks, responses of five models whose answers
are valid JSON more often the dearer the model, prices) into a temporary folder, and a policy
whose five tiers are those models with a ``json_schema`` validator; then times the whole
``cascade bench --json`` command in a subprocess, next to a baseline: the same command on the
single models and the oracle only (no ladder to replay), so the ratio shows what replaying the
ladder through the real engine costs.

    .venv/bin/python benchmarks/bench_replay.py [--tasks 10000]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODELS = [("tiny", 0.05, 0.6), ("small", 0.15, 0.75), ("mid", 0.5, 0.85), ("large", 2.5, 0.93),
          ("huge", 10.0, 0.97)]  # fmt: skip
"""Name, dollars per million tokens, and the share of valid (and right) answers."""

SCHEMA = {
    "type": "object",
    "required": ["name", "email"],
    "properties": {"name": {"type": "string", "minLength": 1}, "email": {"type": "string"}},
    "additionalProperties": False,
}


def write_dataset(folder: Path, count: int) -> None:
    """The dataset and the policy, the same for the same count."""
    rng = random.Random(11)  # synthetic data
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "tasks.jsonl").open("w") as tasks, (folder / "responses.jsonl").open("w") as out:
        for number in range(count):
            task_id = f"t{number}"
            messages = [
                {"role": "user", "content": f"Contact {number}: Ada {number}, a{number}@x.io"}
            ]
            tasks.write(json.dumps({"id": task_id, "kind": "extraction", "messages": messages,
                                    "gold": {"name": f"Ada {number}"}}) + "\n")  # fmt: skip
            for model, price, good in MODELS:
                right = rng.random() < good
                answer = {"name": f"Ada {number}", "email": f"a{number}@x.io"}
                output = json.dumps(answer) if right else rng.choice(('{"name": ""}', "sorry"))
                tokens = 40 + len(output) // 4
                out.write(json.dumps({
                    "task_id": task_id, "model": model, "output": output, "prompt_tokens": 40,
                    "completion_tokens": tokens - 40, "cost_usd": tokens * price / 1e6,
                    "latency_s": 0.2 + price / 10, "correct": right,
                }) + "\n")  # fmt: skip
    models = [
        {"name": m, "input_usd_per_mtok": p, "output_usd_per_mtok": p, "price_source": "made up"}
        for m, p, _ in MODELS
    ]
    (folder / "models.json").write_text(json.dumps(models))
    (folder / "contact.schema.json").write_text(json.dumps(SCHEMA))
    tiers = "".join(f'[[tiers]]\nmodel = "{m}"\n\n' for m, _, _ in MODELS)
    (folder / "ladder.toml").write_text(
        f'task_type = "extraction"\n\n{tiers}[[validators]]\nkind = "json_schema"\n'
        'schema = "contact.schema.json"\n'
    )


def timed(argv: list[str]) -> float:
    """Seconds the command takes, start to end (interpreter start-up included)."""
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)  # our own command
    return time.perf_counter() - started


def main() -> None:
    """Time the baseline and the ladder; print both and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "synthetic"
        write_dataset(folder, args.tasks)
        cascade = [sys.executable, "-m", "cascade.cli", "bench", str(folder), "--json"]
        baseline = timed(cascade)
        ladder = timed([*cascade, "--policy", str(folder / "ladder.toml")])
    tiers = len(MODELS)
    print(f"cascade bench, {args.tasks} tasks x {tiers} tiers, json_schema validation:")
    print(f"  baseline (models and oracle only)  {baseline:7.2f} s")
    print(f"  with the 5-tier ladder replayed    {ladder:7.2f} s"
          f"  ({ladder / baseline:.2f}x the baseline;"
          f" {(ladder - baseline) / args.tasks * 1e6:.0f} µs per task for the ladder)")  # fmt: skip


if __name__ == "__main__":
    main()
