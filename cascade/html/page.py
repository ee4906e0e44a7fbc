"""The frame of a self-contained report page: escaping, tables, sections, one inline style sheet.

A page is one ``index.html`` with nothing to fetch: no script, no font, no CDN; it opens from
a folder with the network off.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from pathlib import Path

from cascade.errors import ConfigError

__all__ = ["document", "esc", "section", "table", "write_page"]

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1100px;
       padding: 0 16px 48px; color: #222; }
h1 { font-size: 22px; margin: 24px 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px;
     border-bottom: 1px solid #ddd; } h3 { font-size: 15px; margin: 18px 0 6px; }
nav a { margin-right: 12px; } .meta { color: #666; }
table { border-collapse: collapse; margin: 8px 0 12px; } caption { text-align: left;
        color: #666; } th, td { padding: 3px 10px; border-bottom: 1px solid #eee;
        text-align: left; vertical-align: top; } td.n, th.n { text-align: right;
        font-variant-numeric: tabular-nums; }
.chart { max-width: 100%; height: auto; display: block; margin: 6px 0 14px; }
.chart .grid { stroke: #eee; } .chart .tick, .chart .axis, .chart .key, .chart .label {
  font-size: 11px; fill: #444; } .chart .label, .chart .key { font-size: 11px; }
.chart .whisker { stroke-width: 1.2; opacity: .6; }
.empty { color: #888; font-style: italic; }
pre { background: #f6f6f6; padding: 6px 8px; white-space: pre-wrap; word-break: break-word; }
.task { border-left: 3px solid #ddd; padding-left: 10px; margin: 14px 0; }
.task:target { border-left-color: #1f77b4; background: #f4f8fc; }
.pass { color: #2a7d2a; } .fail { color: #b22; }
dl.legend dt { font-weight: 600; } dl.legend dd { margin: 0 0 6px 16px; }
"""


def esc(value: object) -> str:
    """``value`` as text safe inside HTML, attributes included."""
    return html.escape(str(value), quote=True)


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], *, numeric: Iterable[int] = (),
          caption: str = "", name: str = "") -> str:  # fmt: skip
    """An HTML table; ``numeric`` columns are right-aligned.

    Cells are escaped, but for :class:`Raw` ones (already HTML: a link).
    """
    right = set(numeric)

    def cell(tag: str, column: int, value: object) -> str:
        kind = ' class="n"' if column in right else ""
        text = value.html if isinstance(value, Raw) else esc(value)
        return f"<{tag}{kind}>{text}</{tag}>"

    head = "".join(cell("th", n, h) for n, h in enumerate(headers))
    body = "".join("<tr>" + "".join(cell("td", n, v) for n, v in enumerate(row)) + "</tr>"
                   for row in rows)  # fmt: skip
    named = f' data-table="{esc(name)}"' if name else ""
    titled = f"<caption>{esc(caption)}</caption>" if caption else ""
    return f"<table{named}>{titled}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class Raw:
    """Text that is already HTML (a link built here), put into a table as it is."""

    __slots__ = ("html",)

    def __init__(self, text: str) -> None:
        self.html = text


def section(anchor: str, title: str, *parts: str) -> str:
    """A titled section that a link can point at (``#anchor``)."""
    return f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>\n' + "\n".join(parts) + "</section>"


def document(title: str, subtitle: str, sections: Sequence[tuple[str, str, str]]) -> str:
    """The whole page: ``sections`` are (anchor, title, HTML); a contents line links each."""
    contents = " ".join(f'<a href="#{esc(a)}">{esc(t)}</a>' for a, t, _ in sections)
    body = "\n".join(section(a, t, h) for a, t, h in sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{_STYLE}</style></head><body>"
        f'<h1>{esc(title)}</h1><p class="meta">{esc(subtitle)}</p><nav>{contents}</nav>\n'
        f"{body}\n</body></html>\n"
    )


def write_page(folder: str | Path, text: str) -> Path:
    """Write ``index.html`` into ``folder`` (made if need be); its path."""
    target = Path(folder)
    page = target / "index.html"
    try:
        target.mkdir(parents=True, exist_ok=True)
        page.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write the report to {target}: {exc.strerror or exc}") from exc
    return page
