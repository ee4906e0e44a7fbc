"""``cascade bench ... --report DIR``: the bench as one self-contained ``index.html``.

The cost/pass-rate chart puts every single model, the oracle and each ladder on one plane,
each with its bootstrap 95 % intervals on both axes, and the frontier of models and ladders
as a step line; the tables under it are ``report.md``'s, and the columns are defined where
they are shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cascade.bench.metrics import Point, frontier
from cascade.bench_columns import COLUMNS
from cascade.html.page import document, esc, table, write_page
from cascade.html.svg import Mark, scatter

__all__ = ["bench_page", "write_bench_page"]


def write_bench_page(results: Mapping[str, Any], folder: str | Path) -> Path:
    """Write the bench's page as ``folder/index.html``."""
    return write_page(folder, bench_page(results))


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _range(pair: list[float]) -> tuple[float, float]:
    return float(pair[0]), float(pair[1])


def _marks(results: Mapping[str, Any]) -> list[Mark]:
    marks = []
    named = [(f"{n}", "model", s) for n, s in results["models"].items()]
    named.append(("oracle", "oracle", results["oracle"]))
    named += [(n, "ladder", s) for n, s in results["ladders"].items()]
    for label, group, score in named:
        marks.append(Mark(label, score["cost_per_task_usd"], score["pass_rate"], group,
                          x_range=_range(score["cost_per_task_ci95"]),
                          y_range=_range(score["pass_rate_ci95"])))  # fmt: skip
    return marks


def _frontier(results: Mapping[str, Any]) -> list[Point]:
    points = [Point(n, s["cost_per_task_usd"], s["pass_rate"])
              for key in ("models", "ladders") for n, s in results[key].items()]  # fmt: skip
    return frontier(points)


def bench_page(results: Mapping[str, Any]) -> str:
    """The page's HTML."""
    edge = _frontier(results)
    chart = scatter("frontier", f"{results['dataset']}: cost against pass rate", _marks(results),
                    "cost per task, US dollars (log scale)", "pass rate (against gold)",
                    [(p.cost, p.pass_rate) for p in edge])  # fmt: skip
    rows = []
    named = [(f"model {n}", s) for n, s in sorted(results["models"].items(),
                                                    key=lambda i: i[1]["cost_usd"])]  # fmt: skip
    named.append(("oracle (cheapest correct model per task)", results["oracle"]))
    named += [(f"ladder {n}", s) for n, s in results["ladders"].items()]
    for label, score in named:
        low, high = score["pass_rate_ci95"]
        c_low, c_high = score["cost_per_task_ci95"]
        rows.append((label, _pct(score["pass_rate"]), f"{100 * low:.1f} to {100 * high:.1f}",
                     f"{score['cost_per_task_usd']:.6f}",
                     f"{1000 * c_low:.3f} to {1000 * c_high:.3f}", f"{score['cost_usd']:.4f}",
                     f"{score['latency_p50_s']:.2f}", f"{score['latency_p95_s']:.2f}"))  # fmt: skip
    ladders = [(n, str(s["accepted_by_tier"]), _pct(s["escalation_rate"]),
                _pct(s["false_accept_rate"]), _pct(s["false_reject_rate"]),
                _pct(s.get("savings_vs_equal_model")), _pct(s.get("oracle_savings_share")))
               for n, s in results["ladders"].items()]  # fmt: skip
    area = results.get("frontier_area") or {}
    summary = (f"{results['tasks']} tasks ({results.get('split', 'all tasks')}), replayed from "
               "recorded outputs (no model calls). Pass rate is judged against the dataset's "
               "gold labels, which the validators never see. Intervals are bootstrap 95 % "
               "intervals over tasks.")  # fmt: skip
    scores = (
        chart
        + f"<p>On the frontier (dashed: no other point is both cheaper and better): "
        f"{esc(', '.join(p.name for p in edge) or 'none')}.</p>"
        + (f"<p>Area under the cost/pass-rate frontier: models alone "
           f"{_pct(area.get('models'))}, with the ladders "
           f"{_pct(area.get('models_and_ladders'))}.</p>" if area else "")
        + table(["", "pass rate", "95 % CI", "$/task", "95 % CI ($/1k tasks)", "total $",
                 "p50 s", "p95 s"], rows, numeric=[1, 2, 3, 4, 5, 6, 7], name="scores")
        + _left_out(results)
    )  # fmt: skip
    ladder_table = table(["ladder", "accepted by tier", "escalated", "false accepts",
                          "false rejects", "savings vs a model as good",
                          "share of oracle savings"], ladders, numeric=[2, 3, 4, 5, 6],
                         name="ladders")  # fmt: skip
    terms = "".join(f"<dt>{esc(term)}</dt><dd>{esc(meaning)}</dd>"
                    for term, meaning in COLUMNS.items())  # fmt: skip
    sections = [
        ("scores", "Cost against pass rate", scores),
        ("ladders", "Ladders", ladder_table if ladders else '<p class="empty">No ladder.</p>'),
        ("columns", "What the columns mean", f'<dl class="legend">{terms}</dl>'),
    ]
    return document(f"cascade bench: {results['dataset']}", summary, sections)


def _left_out(results: Mapping[str, Any]) -> str:
    """What the model rows and the chart leave out, and why (as the terminal table says)."""
    notes = []
    partial = results.get("partial_models") or {}
    if partial:
        names = ", ".join(f"{m} ({n} of {results['tasks']})" for m, n in partial.items())
        notes.append(f"Not in the model rows, for answering only some of the tasks: {names}.")
    unpriced = results.get("unpriced_models") or {}
    if unpriced:
        names = ", ".join(
            f"{m} (pass rate {_pct(s.get('pass_rate'))})" for m, s in unpriced.items()
        )
        notes.append(f"Not in the model rows, for want of a price: {names}.")
    free = [n for n, s in results["models"].items() if s["cost_per_task_usd"] <= 0]
    if free:
        notes.append("Not on the chart (a log axis has no 0): " + ", ".join(free) + ".")
    return "".join(f"<p>{esc(note)}</p>" for note in notes)
