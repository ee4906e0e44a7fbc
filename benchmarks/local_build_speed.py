"""Tokens per second of two llama.cpp builds side by side: the portable one against another.

Each ``--python`` is an interpreter whose llama-cpp-python is the build to measure (for example
``.venv/bin/python``, built portably by ``scripts/bootstrap``, and a venv where
``CASCADE_LLAMA_CMAKE_ARGS="-DGGML_NATIVE=ON" scripts/llama_wheel VENV`` built a native one).
Each build loads Gemma 3 270M once, in a process of its own (OpenMP told not to spin while
idle, so the build not being timed takes no CPU), then the rounds alternate between the
builds: prompt processing (a 1-token answer to a ~300-token prompt) and generation (64 tokens,
less the 1-token call's time). A native build may only run on CPUs like this one.

    .venv/bin/python benchmarks/local_build_speed.py --python .venv/bin/python \
        --python /tmp/native-venv/bin/python [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
from pathlib import Path

from cascade.backends.local import model_file

PROBE = r"""
import json, sys, time, llama_cpp
llm = llama_cpp.Llama(model_path=sys.argv[1], n_ctx=2048, n_threads=int(sys.argv[2]), seed=0,
                      verbose=False)
print(json.dumps({"info": llama_cpp.llama_print_system_info().decode()}), flush=True)
prompt = "Contact details follow. " * 60
# Generation is timed on 64 tokens whatever the model would say: end-of-text is never chosen.
ends = {llm.token_eos(), *llm.tokenize(b"<end_of_turn>", add_bos=False, special=True)}
bias = {token: -100.0 for token in ends}
for line in sys.stdin:
    times = {}
    for tokens in (1, 64):
        llm.reset()  # no prompt cache: every round evaluates the whole prompt
        start = time.perf_counter()
        out = llm.create_completion(prompt, max_tokens=tokens, temperature=0.0, logit_bias=bias)
        times[tokens] = (time.perf_counter() - start, out["usage"])
    (t1, u1), (t64, u64) = times[1], times[64]
    generated = u64["completion_tokens"] - u1["completion_tokens"]
    print(json.dumps({"prompt_tps": u1["prompt_tokens"] / t1,
                      "gen_tps": generated / max(t64 - t1, 1e-9)}), flush=True)
"""


def main() -> None:
    """Print each build's prompt and generation tokens/s (medians) and the ratio to the first."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--python", action="append", required=True, help="an interpreter")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    path = str(model_file("gemma-3-270m"))
    threads = str(os.cpu_count() or 1)
    procs = [
        subprocess.Popen(  # the interpreters the user named
            [python, "-c", PROBE, path, threads],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            # An idle build's OpenMP threads must not spin while the other one is timed.
            env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "0"},
        )
        for python in args.python
    ]
    infos = [json.loads(p.stdout.readline())["info"] for p in procs if p.stdout]
    samples: list[list[dict[str, float]]] = [[] for _ in procs]
    for _ in range(args.rounds):
        for index, proc in enumerate(procs):  # one build at a time: they share the cores
            assert proc.stdin is not None
            assert proc.stdout is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
            samples[index].append(json.loads(proc.stdout.readline()))
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait()
    base = None
    for python, info, rows in zip(args.python, infos, samples, strict=True):
        prompt = statistics.median(r["prompt_tps"] for r in rows)
        gen = statistics.median(r["gen_tps"] for r in rows)
        base = base or (prompt, gen)
        print(f"{Path(python).parent.parent.name or python}: {info.strip()}")
        print(
            f"  prompt {prompt:7.1f} tok/s ({prompt / base[0]:4.2f}x)"
            f"   generation {gen:6.1f} tok/s ({gen / base[1]:4.2f}x)"
            f"   median of {args.rounds} rounds"
        )


if __name__ == "__main__":
    main()
