"""``cascade bench --report DIR``: ``report.md`` with the tables, ``pareto.png`` with the plot.

Beside them, ``index.html`` is the page with both (:mod:`cascade.html.bench_page`).

The plot puts cost per task on a log axis and pass rate on the other; every single model is a
grey dot, the oracle a star, every ladder a coloured diamond, each labelled, and the frontier of
models and ladders together is drawn as a step line.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cascade.bench.metrics import Point, frontier
from cascade.bench_columns import legend

__all__ = ["cost_figure", "write_report"]


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _ci(pair: list[float], scale: float = 100.0, digits: int = 1) -> str:
    return f"{pair[0] * scale:.{digits}f} to {pair[1] * scale:.{digits}f}"


def _markdown(results: Mapping[str, Any]) -> str:
    lines = [
        f"# cascade bench: {results['dataset']}",
        "",
        f"{results['tasks']} tasks, replayed from recorded outputs (no model calls). Pass rate is"
        " judged against the dataset's gold labels, which the validators never see. Intervals are"
        " bootstrap 95 % intervals over tasks.",
        "",
        "| | pass rate | 95 % CI | $/task | 95 % CI ($/1k tasks) | total $ | latency s/task"
        " | p50 s | p95 s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows = sorted(results["models"].items(), key=lambda item: item[1]["cost_usd"])
    named = [(f"model `{n}`", s) for n, s in rows]
    named.append(("**oracle** (cheapest correct model per task)", results["oracle"]))
    named += [(f"**ladder** `{n}`", s) for n, s in results["ladders"].items()]
    for label, score in named:
        lines.append(
            f"| {label} | {_pct(score['pass_rate'])} | {_ci(score['pass_rate_ci95'])} |"
            f" {score['cost_per_task_usd']:.6f} | {_ci(score['cost_per_task_ci95'], 1000, 3)} |"
            f" {score['cost_usd']:.4f} | {score['latency_s']:.2f} |"
            f" {score['latency_p50_s']:.2f} | {score['latency_p95_s']:.2f} |"
        )
    partial = results.get("partial_models") or {}
    if partial:
        lines += [
            "",
            "Not in the model rows, for answering only some of the tasks: "
            + ", ".join(f"`{m}` ({n} of {results['tasks']})" for m, n in partial.items())
            + ".",
        ]
    lines += [
        "",
        "## Ladders",
        "",
        "| ladder | accepted by tier | escalated | false accepts | false rejects |"
        " savings vs a model as good | share of oracle savings |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, score in results["ladders"].items():
        lines.append(
            f"| `{name}` | {score['accepted_by_tier']} | {_pct(score['escalation_rate'])} |"
            f" {_pct(score['false_accept_rate'])} | {_pct(score['false_reject_rate'])} |"
            f" {_pct(score['savings_vs_equal_model'])} | {_pct(score['oracle_savings_share'])} |"
        )
    area = results["frontier_area"]
    lines += [
        "",
        f"Area under the cost/pass-rate frontier (mean best pass rate over the models' log-cost"
        f" range): models alone {_pct(area['models'])}, with the ladders"
        f" {_pct(area['models_and_ladders'])}.",
        "",
        "![cost against pass rate](pareto.png)",
        "",
        "## What the columns mean",
        "",
        *legend(markdown=True),
        "",
    ]
    return "\n".join(lines)


def _points(results: Mapping[str, Any], key: str) -> list[Point]:
    return [
        Point(name, score["cost_per_task_usd"], score["pass_rate"])
        for name, score in results[key].items()
    ]


def _plot(results: Mapping[str, Any], path: Path) -> None:
    import matplotlib.pyplot as plt  # noqa: PLC0415  # slow to import; only bench --report

    figure = cost_figure(results)
    figure.savefig(path)
    plt.close(figure)


def cost_figure(results: Mapping[str, Any]) -> Any:
    """The cost/pass-rate figure of a bench's results: every model, each ladder, the oracle."""
    import matplotlib as mpl  # noqa: PLC0415  # slow to import; only bench --report needs it

    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    models, ladders = _points(results, "models"), _points(results, "ladders")
    oracle = Point("oracle", results["oracle"]["cost_per_task_usd"], results["oracle"]["pass_rate"])
    figure, axes = plt.subplots(figsize=(11, 7), dpi=110)
    priced = [p for p in [*models, *ladders, oracle] if p.cost > 0]
    edge = [p for p in frontier([*models, *ladders]) if p.cost > 0]
    if edge:
        xs = [p.cost for p in edge]
        ys = [p.pass_rate for p in edge]
        right = max(p.cost for p in priced) * 1.5
        axes.step([*xs, right], [*ys, ys[-1]], where="post", color="#999999",
                  linestyle="--", linewidth=1, label="frontier", zorder=1)  # fmt: skip
    labels = []
    for point in models:
        if point.cost > 0:
            axes.scatter(point.cost, point.pass_rate, color="#555555", s=30, zorder=2)
            labels.append(axes.annotate(point.name, (point.cost, point.pass_rate), fontsize=7,
                          xytext=(4, -9), textcoords="offset points", color="#333333"))  # fmt: skip
    colours = plt.get_cmap("tab10")
    for number, point in enumerate(ladders):
        axes.scatter(point.cost, point.pass_rate, marker="D", s=60, color=colours(number),
                     zorder=3, label=f"ladder: {point.name}")  # fmt: skip
        # Named, not numbered, and placed among the models' labels so that none covers another.
        labels.insert(0, axes.annotate(_short(point.name), (point.cost, point.pass_rate),
                                       fontsize=7, xytext=(4, 5), textcoords="offset points",
                                       color=colours(number)))  # fmt: skip
    if oracle.cost > 0:
        axes.scatter(oracle.cost, oracle.pass_rate, marker="*", s=160, color="#d4a017", zorder=3,
                     label="oracle (cheapest correct model per task)")  # fmt: skip
    axes.set_xscale("log")
    axes.set_xlabel("cost per task, US dollars (log scale)")
    axes.set_ylabel("pass rate (against gold)")
    axes.set_title(f"{results['dataset']}: cost against pass rate ({results['tasks']} tasks)")
    axes.grid(visible=True, which="both", alpha=0.25)
    axes.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    _unclash(figure, labels)
    return figure


def write_report(results: Mapping[str, Any], folder: str | Path) -> tuple[Path, Path, Path]:
    """Write ``report.md``, ``pareto.png`` and ``index.html`` into ``folder``; their paths."""
    from cascade.html.bench_page import write_bench_page  # noqa: PLC0415  # only with --report

    page = write_bench_page(results, folder)  # makes the folder, or says why it cannot
    target = Path(folder)
    markdown, picture = target / "report.md", target / "pareto.png"
    markdown.write_text(_markdown(results), encoding="utf-8")
    _plot(results, picture)
    return markdown, picture, page


# Where a model's label may go, in points from its dot: below right first, then around it.
_SPOTS = ((4, -9, "left"), (4, 5, "left"), (-4, -9, "right"), (-4, 5, "right"), (4, -18, "left"))


def _short(name: str, limit: int = 48) -> str:
    """A ladder's name short enough to sit beside its point."""
    return name if len(name) <= limit else name[: limit - 1] + "…"


def _unclash(figure: Any, labels: list[Any]) -> None:
    """Move each label to the first spot where it covers no label already placed.

    Ladders' labels come first, so that they keep the spot beside their point.
    """
    renderer = figure.canvas.get_renderer()
    placed: list[Any] = []
    for label in labels:
        for dx, dy, align in _SPOTS:
            label.set_position((dx, dy))
            label.set_horizontalalignment(align)
            box = label.get_window_extent(renderer)
            if not any(box.overlaps(other) for other in placed):
                break
        placed.append(label.get_window_extent(renderer))
