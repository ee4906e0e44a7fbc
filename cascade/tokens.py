"""Count the tokens of a prompt, offline, to skip tiers whose context window it overflows.

Counts use tiktoken's ``cl100k_base``, read from the copy litellm bundles (without importing
litellm), so no download is ever attempted. Other models' tokenizers differ by some percent:
leave headroom in a policy's ``context_window``. Where that copy cannot be read, a
four-characters-per-token estimate is used instead.

>>> count_tokens(({"role": "user", "content": "Hello, world"},)) > 0
True
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["count_tokens"]

_PER_MESSAGE = 4  # role and separators, as OpenAI's chat format counts them


@functools.cache
def _encoding() -> Any:
    """cl100k_base from litellm's bundled copy, or ``None`` when it cannot be read."""
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return None
    bundled = Path(next(iter(spec.submodule_search_locations))) / "litellm_core_utils/tokenizers"
    # tiktoken reads its cache location from the environment; litellm sets the same value.
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(bundled))
    try:
        import tiktoken  # noqa: PLC0415  # only runs that size their prompts pay for it

        return tiktoken.get_encoding("cl100k_base")
    except Exception:  # noqa: BLE001  # no offline copy: fall back to an estimate
        return None


def count_tokens(messages: Iterable[Mapping[str, str]]) -> int:
    """The number of prompt tokens ``messages`` make, counted or, failing that, estimated."""
    encoding = _encoding()
    total = 3
    for message in messages:
        text = message.get("content", "")
        total += _PER_MESSAGE
        if encoding is not None:
            total += len(encoding.encode(text, disallowed_special=()))
        else:
            total += len(text) // 4 + 1
    return total
