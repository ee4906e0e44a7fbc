"""A fingerprint of the policy files a run was started with, so a resume can tell an edit."""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["policy_digest"]


def policy_digest(path: str | Path) -> str:
    """The sha256 of a policy file, or of every ``*.toml`` in a folder, names included.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "a.toml").write_text('task_type = "a"')
    >>> before = policy_digest(folder)
    >>> _ = (folder / "a.toml").write_text('task_type = "b"')
    >>> policy_digest(folder) == before
    False
    """
    path = Path(path)
    files = sorted(path.glob("*.toml")) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()
