r"""Find the line of a field in a TOML file, so that every policy error can say ``file:line``.

``tomllib`` gives values but no positions, so the text is scanned once for table headers and
keys. Arrays of tables (``[[tiers]]``) are numbered as TOML numbers them. A path that is not
written in the file (a missing key) resolves to the nearest enclosing table that is.

>>> text = 'task_type = "x"\n\n[[tiers]]\nmodel = "a"\n\n[[tiers]]\nreasks = 1\n'
>>> locate = TomlLines(text)
>>> locate.line_of(("tiers", 1, "reasks")), locate.line_of(("tiers", 1, "model"))
(7, 6)
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["TomlLines", "dotted"]

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_KEY = re.compile(
    r"""^\s*((?:[\w-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[\w-]+|"[^"]*"|'[^']*'))*)\s*="""
)

Path = tuple[str | int, ...]


def _parts(dotted_name: str) -> list[str]:
    """The keys of a dotted TOML name, quotes removed: ``a."b.c"`` is ``["a", "b.c"]``."""
    return [
        (bare or quoted_double or quoted_single).strip()
        for bare, quoted_double, quoted_single in re.findall(
            r"""\s*(?:([\w-]+)|"([^"]*)"|'([^']*)')\s*(?:\.|$)""", dotted_name
        )
    ]


def dotted(path: Sequence[str | int]) -> str:
    """A field path as people write it: ``tiers[1].model``.

    >>> dotted(("validators", 0, "schema"))
    'validators[0].schema'
    """
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


class TomlLines:
    """The line (1-based) where each table and key of a TOML text is written."""

    def __init__(self, text: str) -> None:
        self._lines: dict[Path, int] = {}
        counts: dict[tuple[str, ...], int] = {}
        table: Path = ()
        in_multiline = False
        for number, line in enumerate(text.splitlines(), start=1):
            quotes = line.count('"""') + line.count("'''")
            if in_multiline:
                in_multiline = quotes % 2 == 0
                continue
            if header := _HEADER.match(line):
                table = self._header(header.group(1), _parts(header.group(2)), counts)
                self._lines.setdefault(table, number)
            elif key := _KEY.match(line):
                self._lines.setdefault((*table, *_parts(key.group(1))), number)
            in_multiline = quotes % 2 == 1

    def _header(self, bracket: str, names: list[str], counts: dict[tuple[str, ...], int]) -> Path:
        """The path of a ``[table]`` or ``[[array]]`` header, with array indices filled in."""
        path: list[str | int] = []
        for depth, name in enumerate(names):
            path.append(name)
            key = tuple(names[: depth + 1])
            last = depth == len(names) - 1
            if last and bracket == "[[":
                counts[key] = counts.get(key, -1) + 1
                # A new element of an array starts its sub-arrays afresh.
                for other in [k for k in counts if len(k) > len(key) and k[: len(key)] == key]:
                    del counts[other]
                path.append(counts[key])
            elif key in counts:
                path.append(counts[key])
        return tuple(path)

    def line_of(self, path: Sequence[str | int]) -> int:
        """The line of ``path``, or of its nearest written ancestor; 1 when none is written."""
        path = tuple(path)
        while path:
            if path in self._lines:
                return self._lines[path]
            path = path[:-1]
        return 1
