"""How commands print: one place, so that nothing below the command line does."""

from __future__ import annotations

import json
import sys
from typing import Any

__all__ = ["say", "say_json"]


def say(text: str) -> None:
    """Print one report line (or several) on standard output."""
    print(text)  # noqa: T201  # a command's output


def say_json(value: Any) -> None:
    """Print one JSON object, indented, on standard output."""
    json.dump(value, sys.stdout, indent=2)
    sys.stdout.write("\n")
