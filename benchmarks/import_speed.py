"""``cascade import openai-chat`` speed, in requests per second, beside plain ``json.loads``.

A 100,000-line openai-chat log is generated (about 2,000 distinct requests, so most lines
merge into an existing task; a tenth with tools, a tenth with a ``response_format``, every
hundredth with a key in its request, three served models, half the lines without a logged
cost so the pricing path runs). The baseline reads the same file and parses each line with
``json.loads`` and nothing else, in the same run; the ratio says what the import costs over
parsing alone (reading the fields, secret redaction, hashing, merging, pricing, writing).

    .venv/bin/python benchmarks/import_speed.py [--lines 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from cascade.traffic import import_logs  # after the offline switch

MODELS = ("gpt-4o-mini-2024-07-18", "gpt-4o-2024-08-06", "gpt-4.1-nano")
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup_order",
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "string"}},
                "required": ["order_id"],
            },
        },
    }
]
SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
FORMAT = {"type": "json_schema", "json_schema": {"name": "contact", "schema": SCHEMA}}


def _line(i: int) -> dict[str, Any]:
    ask = i % 2000
    request: dict[str, Any] = {"model": "gpt-4o-mini", "temperature": 0, "messages": [
        {"role": "system", "content": "You answer customer emails for a shop. Be brief."},
        {"role": "user", "content": f"Order #{ask:05d} has not arrived. " * 8},
    ]}  # fmt: skip
    if ask % 10 == 1:
        request["tools"] = TOOLS
    if ask % 10 == 2:
        request["response_format"] = FORMAT
    if i % 100 == 0:
        request["api_key"] = f"sk-proj-benchmark{i:012d}"
    response = {"id": f"chatcmpl-{i}", "model": MODELS[i % 3], "choices": [{"index": 0,
                "message": {"role": "assistant", "content": f"Sorry about order {ask}. " * 5}}],
                "usage": {"prompt_tokens": 120, "completion_tokens": 40}}  # fmt: skip
    line: dict[str, Any] = {"request": request, "response": response, "latency_ms": 350 + i % 400}
    if i % 2:
        line["cost_usd"] = 0.0001
    return line


def main() -> None:
    """Generate the log, time the baseline and the import, print both and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cascade-import-") as folder:
        log = Path(folder) / "chat.jsonl"
        log.write_text("".join(json.dumps(_line(i)) + "\n" for i in range(args.lines)))
        start = time.perf_counter()
        with log.open(encoding="utf-8") as lines:
            parsed = sum(1 for line in lines if json.loads(line))
        baseline = time.perf_counter() - start
        start = time.perf_counter()
        done = import_logs("openai-chat", [log], Path(folder) / "dataset")
        spent = time.perf_counter() - start
    print(f"{args.lines:,} lines ({log.name}): {done.tasks} tasks, {done.responses} answers")
    print(f"json.loads alone : {parsed / baseline:12,.0f} lines/s  ({baseline:.2f} s)")
    print(f"cascade import   : {done.calls / spent:12,.0f} requests/s  ({spent:.2f} s)")
    print(f"ratio            : {spent / baseline:.1f}x the time of parsing alone")


if __name__ == "__main__":
    main()
