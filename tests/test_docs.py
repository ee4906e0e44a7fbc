"""Every example on the documentation site and in the README runs exactly as written.

The pages are README.md and every ``docs/**/*.md``. Each ```python block runs on its own; each
whole policy (a ```toml block starting ``task_type``) loads; and each page's commands (the
```sh lines starting ``.venv/bin/cascade `` or ``.venv/bin/python examples/``) run in order,
page by page, each page from a fresh checkout: a page's commands depend on no other page.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from cascade.cli import main
from cascade.cli.parser import build_parser
from cascade.policy import load_policy
from cascade.policy import spec as policy_spec

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
"""The README and the site's pages (the site is absent from mutmut's copy of the checkout)."""
ON_SHARED = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared is not beside the repo")
ON_SITE = pytest.mark.skipif(not DOCS.is_dir(), reason="docs/ is not in this checkout")


def _name(page: Path) -> str:
    return str(page.relative_to(ROOT))


def _blocks(page: Path, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", page.read_text(), re.DOTALL)


EXAMPLES = [
    pytest.param(page, number, code, id=f"{_name(page)}-{number + 1}")
    for page in PAGES
    for number, code in enumerate(_blocks(page, "python"))
]


def _commands(page: Path) -> list[tuple[list[str], int]]:
    """A page's commands: ``cascade`` ones run through :func:`main`, example scripts as such."""
    return [
        (
            line.partition("  #")[0].removeprefix(".venv/bin/").split(),
            int(status.group(1)) if (status := re.search(r"# exit status (\d)", line)) else 0,
        )
        for block in _blocks(page, "sh")
        for line in block.splitlines()
        if line.startswith((".venv/bin/cascade ", ".venv/bin/python examples/"))
        and " bench " not in f" {line} "
    ]


COMMANDS = [(page, commands) for page in PAGES if (commands := _commands(page))]


def test_the_pages_have_examples() -> None:
    """The pages show Python and commands, so the tests below check something."""
    assert len(EXAMPLES) >= 2
    assert sum(len(commands) for _, commands in COMMANDS) >= 3


def _checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkout in ``tmp_path`` with ``shared/`` beside it, and the current directory."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    os.symlink(SHARED, tmp_path / "shared")
    os.symlink(ROOT / "policies", checkout / "policies")
    os.symlink(ROOT / "examples", checkout / "examples")  # the shipped samples, read only
    monkeypatch.chdir(checkout)


@ON_SHARED
@pytest.mark.parametrize(("page", "number", "code"), EXAMPLES)
def test_each_example_runs(
    page: Path, number: int, code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each example runs from a checkout with ``shared/`` beside it, without a key or network."""
    _checkout(tmp_path, monkeypatch)
    monkeypatch.setattr(sys, "path", list(sys.path))  # an example may add its own folder
    exec(compile(code, f"{_name(page)} example {number + 1}", "exec"), {})  # noqa: S102


@ON_SITE
def test_the_policies_shown_are_valid(tmp_path: Path) -> None:
    """The whole policies shown load, with the shipped schema beside them, where they are shown."""
    shutil.copytree(ROOT / "policies" / "schemas", tmp_path / "schemas")
    shown: dict[str, list[str]] = {}
    for page in PAGES:
        for number, text in enumerate(_blocks(page, "toml")):
            if text.startswith("task_type"):
                path = tmp_path / f"{page.stem}{number}.toml"
                path.write_text(text)
                shown.setdefault(load_policy(path).task_type, []).append(_name(page))
    assert "docs/concepts/policies.md" in shown["extraction"]
    assert "docs/guides/batch.md" in shown["nightly"]
    assert "docs/guides/provider.md" in shown["contact_http"]


@ON_SHARED
@pytest.mark.timeout(900)  # a page's commands in turn: a few minutes on 2 cores for the longest
@pytest.mark.parametrize(("page", "commands"), COMMANDS, ids=[_name(p) for p, _ in COMMANDS])
def test_each_pages_commands_run(
    page: Path,
    commands: list[tuple[list[str], int]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A page's policy, run and report commands run as written, in order, from a fresh checkout."""
    _checkout(tmp_path, monkeypatch)
    for argv, status in commands:
        if argv[0] == "python":
            done = subprocess.run([sys.executable, *argv[1:]], check=False)  # noqa: S603
            assert done.returncode == status, (_name(page), argv)
        else:
            assert main(argv[1:]) == status, (_name(page), argv)


def _hooks(name: str = "hooks") -> ModuleType:
    """A module of docs/ (``hooks.py`` by default), loaded as mkdocs loads it."""
    sys.path.insert(0, str(DOCS))
    try:
        spec = importlib.util.spec_from_file_location(f"docs_{name}", DOCS / f"{name}.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(DOCS))
    return module


@ON_SITE
def test_the_cli_reference_names_every_command_and_option() -> None:
    """The generated CLI reference holds each command, with each of its options."""
    text = _hooks().cli_reference()
    [commands] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    for name, parser in commands.choices.items():
        assert f"`cascade {name}" in text
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            for option in action.option_strings:
                assert f"`{option}" in text, (name, option)


@ON_SITE
def test_the_policy_reference_gives_every_field_a_meaning() -> None:
    """Every policy-file field is in the generated reference; no meaning is kept for lost ones."""
    hooks = _hooks()
    text = hooks.policy_reference()
    models = [getattr(policy_spec, name) for name in policy_spec.__all__ if name != "ValidatorSpec"]
    models += hooks._validator_kinds()
    for model in models:
        for name, field in model.model_fields.items():
            if name != "kind":
                assert f"| `{field.alias or name}` |" in text, (model.__name__, name)
    fields = {f"{m.__name__}.{name}" for m in models for name in m.model_fields}
    assert set(hooks.MEANINGS) <= fields


def test_the_readmes_links_resolve() -> None:
    """Each relative link of the README, the front page outside the site, names a file here."""
    targets = re.findall(r"\]\(([^)#]+)[^)]*\)", (ROOT / "README.md").read_text())
    local = [target for target in targets if "://" not in target]
    assert all((ROOT / target).exists() for target in local), local


@ON_SITE
def test_the_api_reference_shows_roles_as_code_and_examples_as_code_blocks() -> None:
    """A docstring's Sphinx roles become code, and its doctest lines one fenced block."""
    text = "Run a :class:`Plan`.\n\n>>> 1 + 1\n2\n\nDone."
    assert _hooks("docstrings").markdown(text) == (
        "Run a `Plan`.\n\n```pycon\n>>> 1 + 1\n2\n```\n\nDone."
    )
