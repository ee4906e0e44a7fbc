"""Charts as inline SVG: a report page draws itself with no script and nothing fetched.

Every chart is an ``<svg class="chart" data-chart=NAME>``; every series in it is a group
``<g class="series" data-series=LABEL>`` whose marks carry ``data-x``/``data-y``, so a test (or
a reader's script) can find what is drawn without reading pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from cascade.html.page import esc

__all__ = ["Mark", "Series", "Span", "bars", "lines", "scatter", "timeline"]

WIDTH, HEIGHT = 720, 300
TIMELINE_ROWS = 12
"""Spans a timeline draws (18 px a row)."""
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 20, 50
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")


@dataclass(frozen=True, slots=True)
class Series:
    """A line: its label and its points, x ascending."""

    label: str
    points: Sequence[tuple[float, float]]


@dataclass(frozen=True, slots=True)
class Mark:
    """A point of a scatter chart, with its 95 % intervals on either axis if known."""

    label: str
    x: float
    y: float
    group: str
    """The series it belongs to (``model``, ``ladder``, ``oracle``): its shape and colour."""
    x_range: tuple[float, float] | None = None
    y_range: tuple[float, float] | None = None


@dataclass(frozen=True, slots=True)
class Span:
    """A stretch of time on a timeline: ``end`` None while it lasts."""

    label: str
    start: float
    end: float | None


def _frame(name: str, title: str, body: list[str], x_label: str, y_label: str) -> str:
    return "\n".join([
        f'<svg class="chart" data-chart="{esc(name)}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{esc(title)}">',
        f"<title>{esc(title)}</title>",
        f'<rect x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" '
        f'height="{HEIGHT - TOP - BOTTOM}" fill="none" stroke="#ccc"/>',
        *body,
        f'<text x="{(LEFT + WIDTH - RIGHT) / 2}" y="{HEIGHT - 8}" text-anchor="middle" '
        f'class="axis">{esc(x_label)}</text>',
        f'<text x="14" y="{(TOP + HEIGHT - BOTTOM) / 2}" text-anchor="middle" class="axis" '
        f'transform="rotate(-90 14 {(TOP + HEIGHT - BOTTOM) / 2})">{esc(y_label)}</text>',
        "</svg>",
    ])  # fmt: skip


class _Scale:
    """Data to pixels on one axis, linear or logarithmic."""

    def __init__(self, low: float, high: float, out: tuple[float, float], *, log: bool) -> None:
        self.log = log
        if log:
            low, high = math.log10(low), math.log10(high)
        if high <= low:  # one value: a unit around it, or up from 0 when it is 0
            low, high = (0.0, 1.0) if low == 0 else (low - 1, high + 1)
        self.low, self.high, self.out = low, high, out

    def __call__(self, value: float) -> float:
        if self.log:
            value = math.log10(value)
        share = (value - self.low) / (self.high - self.low)
        return round(self.out[0] + share * (self.out[1] - self.out[0]), 2)

    def ticks(self) -> list[float]:
        if self.log:
            first, last = math.floor(self.low), math.ceil(self.high)
            return [10.0**power for power in range(first, last + 1)
                    if self.low - 1e-9 <= power <= self.high + 1e-9]  # fmt: skip
        step = _nice((self.high - self.low) / 4)
        first = math.ceil(self.low / step - 1e-9)
        return [round(n * step, 12) for n in range(first, first + 12)
                if n * step <= self.high + step * 1e-9]  # fmt: skip


def _nice(rough: float) -> float:
    """The round step (1, 2, 2.5 or 5 times a power of ten) at or above ``rough``."""
    power = 10.0 ** math.floor(math.log10(rough))
    return next(m * power for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * power >= rough * (1 - 1e-9))


def _axes(x: _Scale, y: _Scale, x_format: str, y_format: str) -> list[str]:
    out = []
    for value in x.ticks():
        px = x(value)
        out.append(f'<line x1="{px}" y1="{TOP}" x2="{px}" y2="{HEIGHT - BOTTOM}" class="grid"/>'
                   f'<text x="{px}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" '
                   f'class="tick">{esc(format(value, x_format))}</text>')  # fmt: skip
    for value in y.ticks():
        py = y(value)
        out.append(f'<line x1="{LEFT}" y1="{py}" x2="{WIDTH - RIGHT}" y2="{py}" class="grid"/>'
                   f'<text x="{LEFT - 6}" y="{py + 4}" text-anchor="end" '
                   f'class="tick">{esc(format(value, y_format))}</text>')  # fmt: skip
    return out


def lines(name: str, title: str, series: Sequence[Series], x_label: str, y_label: str,
          *, y_format: str = ".3g") -> str:  # fmt: skip
    """A line chart of ``series`` (an empty chart says so)."""
    points = [p for s in series for p in s.points]
    if not points:
        return _empty(name, title)
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x = _Scale(min(xs), max(xs), (LEFT, WIDTH - RIGHT), log=False)
    y = _Scale(min(0.0, *ys), max(ys), (HEIGHT - BOTTOM, TOP), log=False)
    body = _axes(x, y, ".3g", y_format)
    for number, line in enumerate(series):
        colour = COLOURS[number % len(COLOURS)]
        path = " ".join(f"{x(px)},{y(py)}" for px, py in line.points)
        body.append(f'<g class="series" data-series="{esc(line.label)}">'
                    f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>'
                    + "".join(f'<circle cx="{x(px)}" cy="{y(py)}" r="1.5" fill="{colour}" '
                              f'data-x="{px:g}" data-y="{py:g}"/>' for px, py in line.points)
                    + f'<text x="{WIDTH - RIGHT - 4}" y="{TOP + 14 + 14 * number}" '
                    f'text-anchor="end" fill="{colour}" class="key">{esc(line.label)}</text>'
                    "</g>")  # fmt: skip
    return _frame(name, title, body, x_label, y_label)


def bars(name: str, title: str, items: Sequence[tuple[str, float]], y_label: str,
         *, y_format: str = ".3g", top: float | None = None) -> str:  # fmt: skip
    """A bar per item, labelled under it; the axis runs to ``top`` (a rate's 1.0) if given."""
    if not items:
        return _empty(name, title)
    high = top if top is not None else max(*(v for _, v in items), 1e-12)
    y = _Scale(0.0, high, (HEIGHT - BOTTOM, TOP), log=False)
    slot = (WIDTH - LEFT - RIGHT) / len(items)
    body = [tick for tick in _axes(_Scale(0, 1, (LEFT, LEFT), log=False), y, "", y_format)
            if "text-anchor=\"end\"" in tick]  # fmt: skip
    body.append('<g class="series" data-series="bars">')
    for number, (label, value) in enumerate(items):
        left = LEFT + slot * number + slot * 0.15
        top = y(value)
        body.append(f'<rect x="{left:.2f}" y="{top}" width="{slot * 0.7:.2f}" '
                    f'height="{HEIGHT - BOTTOM - top:.2f}" fill="{COLOURS[number % len(COLOURS)]}" '
                    f'data-x="{esc(label)}" data-y="{value:g}"><title>{esc(label)}: '
                    f'{format(value, y_format)}</title></rect>'
                    f'<text x="{left + slot * 0.35:.2f}" y="{HEIGHT - BOTTOM + 16}" '
                    f'text-anchor="middle" class="tick">'
                    f"{esc(_short(label, int(slot / 7)))}</text>")  # fmt: skip
    body.append("</g>")
    return _frame(name, title, body, "", y_label)


_SHAPES = {"model": "circle", "oracle": "star", "ladder": "diamond"}


def scatter(name: str, title: str, marks: Sequence[Mark], x_label: str, y_label: str,
            frontier: Sequence[tuple[float, float]] = ()) -> str:  # fmt: skip
    """Marks on a log x axis (cost) and a linear y axis (a rate), with interval whiskers.

    ``frontier`` (points, cheapest first) is drawn as a dashed step line. Marks at x 0
    (unpriced) cannot go on a log axis and are left out of the chart.
    """
    shown = [m for m in marks if m.x > 0]
    if not shown:
        return _empty(name, title)
    low_x = min(m.x_range[0] if m.x_range and m.x_range[0] > 0 else m.x for m in shown)
    high_x = max(m.x_range[1] if m.x_range else m.x for m in shown)
    low_y = min(m.y_range[0] if m.y_range else m.y for m in shown)
    x = _Scale(low_x / 1.5, high_x * 1.5, (LEFT, WIDTH - RIGHT), log=True)
    y = _Scale(max(0.0, low_y - 0.05), 1.0, (HEIGHT - BOTTOM, TOP), log=False)
    body = _axes(x, y, ".0e", ".0%")
    if frontier:
        steps = [(x(fx), y(fy)) for fx, fy in frontier if fx > 0]
        path = " ".join(f"{a},{b} {c},{b}" for (a, b), (c, _) in
                        zip(steps, [*steps[1:], (WIDTH - RIGHT, 0.0)], strict=True))  # fmt: skip
        body.append(f'<g class="series" data-series="frontier"><polyline points="{path}" '
                    'fill="none" stroke="#999" stroke-dasharray="4 3"/></g>')  # fmt: skip
    # Every mark is an obstacle for every label, so that no label covers a point either.
    placed = [(x(m.x) - 5, y(m.y) - 5, 10.0, 10.0) for m in shown]
    groups = sorted({m.group for m in shown}, key=lambda g: (g != "ladder", g))
    for number, group in enumerate(groups):
        colour = {"model": "#555", "oracle": "#d4a017"}.get(group, COLOURS[number])
        body.append(f'<g class="series" data-series="{esc(group)}">')
        for mark in (m for m in shown if m.group == group):
            px, py = x(mark.x), y(mark.y)
            if mark.x_range and mark.x_range[0] > 0:
                body.append(f'<line x1="{x(mark.x_range[0])}" y1="{py}" x2="{x(mark.x_range[1])}" '
                            f'y2="{py}" stroke="{colour}" class="whisker"/>')  # fmt: skip
            if mark.y_range:
                low, high = y(mark.y_range[0]), y(mark.y_range[1])
                body.append(f'<line x1="{px}" y1="{low}" x2="{px}" y2="{high}" '
                            f'stroke="{colour}" class="whisker"/>')  # fmt: skip
            body.append(_shape(_SHAPES.get(group, "circle"), px, py, colour, mark))
            body.append(_label(mark.label, px, py, colour, placed))
        body.append("</g>")
    return _frame(name, title, body, x_label, y_label)


def _shape(shape: str, px: float, py: float, colour: str, mark: Mark) -> str:
    data = f'data-label="{esc(mark.label)}" data-x="{mark.x:g}" data-y="{mark.y:g}"'
    tip = f"<title>{esc(mark.label)}: {mark.y:.1%} at ${mark.x:.6g}</title>"
    if shape == "diamond":
        return (f'<polygon points="{px},{py - 7} {px + 7},{py} {px},{py + 7} {px - 7},{py}" '
                f'fill="{colour}" {data}>{tip}</polygon>')  # fmt: skip
    if shape == "star":
        corners = " ".join(
            f"{px + r * math.sin(k * math.pi / 5):.2f},{py - r * math.cos(k * math.pi / 5):.2f}"
            for k, r in zip(range(10), [9, 4] * 5, strict=True)
        )
        return f'<polygon points="{corners}" fill="{colour}" {data}>{tip}</polygon>'
    return f'<circle cx="{px}" cy="{py}" r="4" fill="{colour}" {data}>{tip}</circle>'


def _label(text: str, px: float, py: float, colour: str,
           placed: list[tuple[float, float, float, float]]) -> str:  # fmt: skip
    """The label beside its mark, at the first spot where it covers no label placed before."""
    text = _short(text, 40)
    width, height = 6.5 * len(text), 14.0  # an 11 px sans-serif line, with room to spare
    spots = [(8, 4), (8, -6), (-8 - width, 4), (-8 - width, -6), (-width / 2, -12),
             (-width / 2, 20)]  # fmt: skip
    spots += [(dx, dy) for step in range(1, 8) for dy in (7 * step + 4, -7 * step - 6)
              for dx in (8, -8 - width)]  # further up or down, either side  # fmt: skip
    boxes = [(px + dx, py + dy - 9, width, height) for dx, dy in spots]
    inside = [b for b in boxes if b[0] >= LEFT and b[0] + b[2] <= WIDTH - RIGHT
              and b[1] >= TOP and b[1] + b[3] <= HEIGHT - BOTTOM] or boxes  # fmt: skip
    box = next((b for b in inside if not any(_overlap(b, other) for other in placed)), None)
    if box is None:  # no free spot: the mark's tooltip names it, and no label covers another
        return ""
    placed.append(box)
    return (f'<text x="{box[0]:.2f}" y="{box[1] + 10.5:.2f}" fill="{colour}" '
            f'class="label">{esc(text)}</text>')  # fmt: skip


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def timeline(name: str, title: str, spans: Sequence[Span], start: float, end: float) -> str:
    """One row per span between ``start`` and ``end`` (seconds); an open span runs to the end.

    The first :data:`TIMELINE_ROWS` spans are drawn, each on a readable row; the page's table
    lists them all.
    """
    if not spans:
        return _empty(name, title)
    x = _Scale(0.0, max(end - start, 1e-9), (LEFT + 120, WIDTH - RIGHT), log=False)
    spans = spans[:TIMELINE_ROWS]
    row = (HEIGHT - TOP - BOTTOM - 8) / TIMELINE_ROWS
    body = [tick for tick in _axes(x, _Scale(0, 1, (TOP, TOP), log=False), ".4g", "")
            if "text-anchor=\"middle\"" in tick]  # fmt: skip
    body.append('<g class="series" data-series="alarms">')
    for number, span in enumerate(spans):
        top = TOP + 4 + row * number
        left = x(max(0.0, span.start - start))
        right = x((span.end if span.end is not None else end) - start)
        body.append(f'<text x="{LEFT + 112}" y="{top + row * 0.6:.2f}" text-anchor="end" '
                    f'class="tick">{esc(_short(span.label, 30))}</text>'
                    f'<rect x="{left}" y="{top:.2f}" width="{max(2.0, right - left):.2f}" '
                    f'height="{row * 0.7:.2f}" fill="{"#d62728" if span.end is None else "#999"}" '
                    f'data-x="{span.start - start:g}" data-y="{esc(span.label)}">'
                    f"<title>{esc(span.label)}</title></rect>")  # fmt: skip
    body.append("</g>")
    return _frame(name, title, body, "seconds since the run started", "")


def _empty(name: str, title: str) -> str:
    return (f'<p class="empty" data-chart="{esc(name)}">{esc(title)}: nothing to draw '
            "in this run.</p>")  # fmt: skip


def _short(text: str, limit: int) -> str:
    limit = max(limit, 4)
    return text if len(text) <= limit else text[: limit - 1] + "…"
