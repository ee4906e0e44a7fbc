"""The mkdocs hook that writes the generated reference pages, so that they cannot drift.

``on_page_markdown`` replaces a marker in a page with markdown made from the code itself:

- ``<!-- cli-reference -->``: every ``cascade`` command's usage and options, from the argparse
  parser (:func:`cascade.cli.parser.build_parser`);
- ``<!-- policy-reference -->``: every policy-file field with its type, default and meaning,
  from the pydantic models of :mod:`cascade.policy.spec`;
- ``<!-- bench-columns -->``: what each column of ``cascade bench``'s tables means, from
  :mod:`cascade.bench_columns` (the text ``--help`` and the report print).

Nothing here imports litellm: the parser and the policy models do not.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import itertools
import os
import types
import typing
from collections.abc import Callable, Iterator
from typing import Any

import annotated_types
import pydantic
from meanings import MEANINGS  # docs/meanings.py: mkdocs puts the hook's folder on sys.path

from cascade.bench_columns import legend
from cascade.cli.parser import build_parser
from cascade.policy import spec

__all__ = ["bench_columns", "cli_reference", "on_page_markdown", "policy_reference"]


def on_page_markdown(markdown: str, **_: object) -> str:
    """The page with each marker replaced by its generated markdown."""
    for marker, make in MARKERS.items():
        if marker in markdown:
            markdown = markdown.replace(marker, make())
    return markdown


# The command line ------------------------------------------------------------------------------


def cli_reference() -> str:
    """Every command's usage and options, in the parser's order."""
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "80"  # argparse wraps usage to the terminal: make it fixed
    try:
        return "\n\n".join(
            _command(name, what, parser)
            for name, what, parser in _leaves(build_parser(), "cascade", "")
        )
    finally:
        if saved is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved


def _leaves(
    parser: argparse.ArgumentParser, name: str, what: str
) -> Iterator[tuple[str, str, argparse.ArgumentParser]]:
    """Each command that runs (``cascade run``, ``cascade policy check``) with its one-line help."""
    subcommands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subcommands:
        yield name, what, parser
        return
    for action in subcommands:
        helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
        for sub, subparser in action.choices.items():
            yield from _leaves(subparser, f"{name} {sub}", helps.get(sub, ""))


def _command(name: str, what: str, parser: argparse.ArgumentParser) -> str:
    parts = [f"### `{name}`"]
    if parser.description:
        parts.append(_prose(parser.description))
    elif what:
        parts.append(_prose(what[0].upper() + what[1:] + "."))
    parts.append("```text\n" + parser.format_usage().strip() + "\n```")
    rows = [_option(parser, action) for action in parser._actions if _shown(action)]
    if rows:
        parts.append("| argument | default | meaning |\n|---|---|---|\n" + "\n".join(rows))
    if parser.epilog:
        parts.append("```text\n" + parser.epilog.strip() + "\n```")
    return "\n\n".join(parts)


def _shown(action: argparse.Action) -> bool:
    return action.help is not argparse.SUPPRESS and not isinstance(
        action, argparse._HelpAction | argparse._SubParsersAction
    )


def _option(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    formatter = parser._get_formatter()
    if action.option_strings:
        takes = (
            "" if action.nargs == 0 else " " + formatter._format_args(action, action.dest.upper())
        )
        flag = ", ".join(f"`{option}{takes}`" for option in action.option_strings)
    else:
        flag = f"`{formatter._format_args(action, action.dest)}`"
    shown = action.default not in (None, False, [], argparse.SUPPRESS) and action.nargs != 0
    default = f"`{action.default}`" if shown else ""
    if action.required and action.option_strings:
        default = "required"
    meaning = formatter._expand_help(action) if action.help else ""
    if action.choices is not None and action.option_strings:
        meaning += " (one of " + ", ".join(f"`{c}`" for c in action.choices) + ")"
    return f"| {flag} | {default} | {_cell(meaning)} |"


# The policy file -------------------------------------------------------------------------------


def policy_reference() -> str:
    """Every table of a policy file, and every field of each, from the pydantic models."""
    tables: list[tuple[str, type[pydantic.BaseModel]]] = [
        ("The policy file", spec.PolicySpec),
        ("`[[tiers]]`", spec.TierSpec),
        ("`[[examples]]`", spec.ExampleSpec),
        ("`[budget]`", spec.BudgetSpec),
        ("`[[start]]`", spec.StartRule),
        ('`[limits."KEY"]`', spec.LimitSpec),
        ("`[breaker]`", spec.BreakerSpec),
        ("`[audit]`", spec.AuditSpec),
        ("`[drift]`", spec.DriftSpec),
        ("`[route]`", spec.RouteSpec),
        ("`price`", spec.PriceSpec),
    ]
    _NAMES.update({model: title for title, model in tables[1:]})
    parts = [_table(title, model) for title, model in tables]
    parts.append(
        "## `[[validators]]`\n\n"
        + _prose("The checks, by `kind`; a tier's own `[[tiers.validators]]` take the same forms.")
    )
    for kind in _validator_kinds():
        parts.append(_table(f'`kind = "{_kind_name(kind)}"`', kind, level="###"))
    return "\n\n".join(parts)


def _validator_kinds() -> list[type[pydantic.BaseModel]]:
    union, *_ = typing.get_args(spec.ValidatorSpec)
    return list(typing.get_args(union))


def _kind_name(model: type[pydantic.BaseModel]) -> str:
    (name,) = typing.get_args(model.model_fields["kind"].annotation)
    return str(name)


def _table(title: str, model: type[pydantic.BaseModel], level: str = "##") -> str:
    parts = [f"{level} {title}"]
    if model.__doc__:
        parts.append(_prose(inspect.cleandoc(model.__doc__)))
    rows = [
        _field(model, name, field) for name, field in model.model_fields.items() if name != "kind"
    ]
    parts.append("| field | type | default | meaning |\n|---|---|---|---|\n" + "\n".join(rows))
    return "\n\n".join(parts)


def _field(model: type[pydantic.BaseModel], name: str, field: Any) -> str:
    meaning = _docstrings(model).get(name) or MEANINGS.get(f"{model.__name__}.{name}")
    if not meaning:
        raise ValueError(f"{model.__name__}.{name} has no meaning: add it to docs/meanings.py")
    kind = _type(field.annotation) + _limits(field.metadata)
    default = "required" if field.is_required() else f"`{_default(field.default)}`"
    key = field.alias or name
    return f"| `{key}` | {_cell(kind)} | {_cell(default)} | {_cell(_prose(meaning))} |"


def _docstrings(model: type[pydantic.BaseModel]) -> dict[str, str]:
    """The attribute docstrings of a model's fields, read from its source."""
    found: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        if not (isinstance(cls, type) and issubclass(cls, pydantic.BaseModel)):
            continue
        try:
            tree = ast.parse(inspect.getsource(cls))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body if isinstance(tree.body[0], ast.ClassDef) else []
        for statement, after in itertools.pairwise(body):
            if (
                isinstance(statement, ast.AnnAssign)
                and isinstance(statement.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                found[statement.target.id] = " ".join(after.value.value.split())
    return found


def _type(annotation: Any) -> str:  # one return per kind of type
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type(args[0]) + _limits(args[1:])
    if origin in (typing.Union, types.UnionType):
        if all(isinstance(a, type) and a.__name__.endswith("Spec") for a in args) and len(args) > 3:
            return "validator table"
        return " or ".join(_type(a) for a in args if a is not type(None))
    if origin is typing.Literal:
        return " or ".join(f'`"{a}"`' for a in args)
    if origin is list:
        return f"list of {_type(args[0])}"
    if origin is dict:
        return f"table of {_type(args[1])}"
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return _NAMES.get(annotation, "a") + " table"
    names = {str: "string", int: "integer", float: "number", bool: "boolean"}
    return names.get(annotation, "any")


def _limits(metadata: typing.Iterable[Any]) -> str:
    said = []
    marks = {"gt": ">", "ge": "≥", "lt": "<", "le": "≤"}
    for item in metadata:
        if isinstance(item, pydantic.fields.FieldInfo):
            inner = _limits(item.metadata)
            if inner:
                said.append(inner.strip(" ()"))
            continue
        for attribute, mark in marks.items():
            if isinstance(item, getattr(annotated_types, attribute.capitalize())):
                said.append(f"{mark} {getattr(item, attribute)}")
        if isinstance(item, annotated_types.MinLen) and item.min_length:
            said.append("not empty")
        if getattr(item, "pattern", None):
            said.append(f"matching `{item.pattern}`")
    return f" ({', '.join(said)})" if said else ""


def _default(value: object) -> str:
    if isinstance(value, pydantic.BaseModel):
        return "{}"
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


# Shared ----------------------------------------------------------------------------------------


def bench_columns() -> str:
    """What each column of ``cascade bench``'s tables means, as a markdown list."""
    return "\n".join(legend(markdown=True))


def _prose(text: str) -> str:
    """Docstring markup as markdown: ``code`` and :role:`name` as `code`."""
    text = text.replace("``", "`")
    for role in (":class:", ":func:", ":mod:", ":meth:", ":attr:", ":data:"):
        text = text.replace(role, "")
    return text


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


_NAMES: dict[type, str] = {}
"""Each nested table's name in a policy file (``[[tiers]]``), as the reference heads it."""

MARKERS: dict[str, Callable[[], str]] = {
    "<!-- cli-reference -->": cli_reference,
    "<!-- policy-reference -->": policy_reference,
    "<!-- bench-columns -->": bench_columns,
}
"""Each marker a page may hold, and what replaces it."""
