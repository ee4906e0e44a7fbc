"""Headless Chromium for the tests of HTML pages: Debian's browser, driven by playwright.

playwright never downloads a browser here: it starts ``/usr/bin/chromium`` (``scripts/bootstrap``
installs it), with the flags this machine's closed network needs. Every console message of
type error, every uncaught page error and every request a page makes are recorded.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["Browser", "opened_browser"]

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


class Browser:
    """One browser; :meth:`page` opens a file in a new page and records what went wrong."""

    def __init__(self, chromium: Any) -> None:
        self._chromium = chromium
        self.errors: list[str] = []
        self.requests: list[str] = []

    @staticmethod
    def artifacts() -> Path:
        """Where screenshots go: ``$CASCADE_TEST_ARTIFACTS``, or a folder in the temp dir."""
        folder = Path(os.environ.get("CASCADE_TEST_ARTIFACTS")
                      or Path(tempfile.gettempdir()) / "cascade-test-artifacts")  # fmt: skip
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _console(self, kind: str, text: str) -> None:
        if kind == "error":
            self.errors.append(text)

    @contextmanager
    def page(self, path: Path) -> Iterator[Any]:
        """``path`` loaded in a fresh page (closed after)."""
        context = self._chromium.new_context(viewport={"width": 1200, "height": 900})
        page = context.new_page()
        page.on("console", lambda m: self._console(m.type, m.text))
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("request", lambda r: self.requests.append(r.url))
        try:
            page.goto(path.resolve().as_uri())
            yield page
        finally:
            context.close()


@contextmanager
def opened_browser() -> Iterator[Browser]:
    """Chromium started headless; fails saying how to install it when it is not there."""
    executable = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(executable).exists():
        raise AssertionError(
            "the browser tests need Debian's Chromium: scripts/bootstrap installs it "
            "(apt-get install chromium)"
        )
    from playwright.sync_api import sync_playwright  # noqa: PLC0415  # only the browser tests

    with sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=executable, args=FLAGS)
        try:
            yield Browser(chromium)
        finally:
            chromium.close()
