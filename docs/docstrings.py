"""A griffe extension for the API reference: cascade's docstrings as mkdocstrings can show them.

The docstrings are written for Sphinx-style readers and doctest: ``:class:`Plan``` roles, and
``>>>`` examples that doctest runs. mkdocstrings shows neither as meant (a role's name in the
text, an example as a quotation), so each object's docstring is rewritten as it is loaded: a
role becomes plain code, and each run of doctest lines a ``pycon`` code block.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

__all__ = ["Docstrings", "markdown"]

_ROLE = re.compile(r":(?:class|func|mod|meth|attr|data|exc|obj|const):`~?([^`]+)`")


def markdown(text: str) -> str:
    """A docstring's text with roles as code and doctest examples fenced."""
    lines = _ROLE.sub(r"`\1`", text).split("\n")
    out: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if not line.lstrip().startswith(">>>"):
            out.append(line)
            index += 1
            continue
        indent = line[: len(line) - len(line.lstrip())]
        out.append(f"{indent}```pycon")
        while index < len(lines) and lines[index].strip():
            out.append(lines[index])
            index += 1
        out.append(f"{indent}```")
    return "\n".join(out)


class Docstrings(griffe.Extension):
    """Rewrites every loaded object's docstring with :func:`markdown`."""

    def on_object(self, *, obj: griffe.Object, **_: Any) -> None:
        """Rewrite one object's docstring, once the tree is built."""
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)

    def on_package(self, *, pkg: griffe.Module, **_: Any) -> None:
        """Rewrite the package's own docstring, which ``on_object`` is not given."""
        self.on_object(obj=pkg)
