"""Client keys of ``cascade serve``: who may call it, and each key's budget and rate limit.

Keys come from a TOML file (``--keys FILE``)::

    [[keys]]
    name = "etl"                 # named in the store, the step log and the report
    key = "ck-0123456789abcdef"  # what the client sends: Authorization: Bearer ck-...
    budget_usd = 50.0            # optional: what the key may spend, ever (kept in the store)
    rpm = 600                    # optional: requests per minute

or from an environment variable (``--keys-env VAR``) holding the same entries as a JSON list.
Instead of ``key``, an entry may give ``key_sha256``, the hex SHA-256 of the key, so the file
holds no secret. A bad entry is an error naming the file (or variable), the line and the field.

>>> ring = KeyRing([ClientKey("etl", hashlib.sha256(b"ck-0123456789abcdef").hexdigest())])
>>> ring.find("Bearer ck-0123456789abcdef").name, ring.find("Bearer wrong")
('etl', None)
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cascade.errors import ConfigError
from cascade.policy.locate import TomlLines

__all__ = ["ANONYMOUS", "ClientKey", "KeyRing", "load_keys"]

ANONYMOUS = "anonymous"
"""The client name of requests to a server that has no client keys (loopback only)."""

_MIN_KEY_CHARS = 16
_FIELDS = frozenset({"name", "key", "key_sha256", "budget_usd", "rpm"})


@dataclass(frozen=True, slots=True)
class ClientKey:
    """One client: its name, its key's SHA-256, and its budget and rate limit (``None``: none)."""

    name: str
    sha256: str
    budget_usd: float | None = None
    rpm: float | None = None


class KeyRing:
    """The client keys a server accepts; no keys at all means no key is asked for."""

    def __init__(self, keys: Sequence[ClientKey] = ()) -> None:
        self.keys = tuple(keys)
        self._by_hash = {key.sha256: key for key in self.keys}

    def __bool__(self) -> bool:
        return bool(self.keys)

    def find(self, authorization: str | None) -> ClientKey | None:
        """The key an ``Authorization: Bearer KEY`` header names, or ``None``."""
        if not authorization:
            return None
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        # Keys are found by their SHA-256: how long the lookup takes says nothing of a key.
        digest = hashlib.sha256(token.strip().encode("utf-8", "surrogateescape")).hexdigest()
        return self._by_hash.get(digest)


def load_keys(file: str | Path | None = None, env: str | None = None) -> KeyRing:
    """The keys in ``file`` (TOML) and in the environment variable ``env`` (JSON), if given.

    A variable that is named but not set is an error: a server meant to check keys must not
    start without them.
    """
    keys: list[ClientKey] = []
    if file is not None:
        path = Path(file)
        try:
            text = path.read_text(encoding="utf-8")
            data = tomllib.loads(text)
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read the client keys: {exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
        lines = TomlLines(text)
        extra = set(data) - {"keys"}
        if extra:
            raise ConfigError(f"{path}:1: unknown top-level key {sorted(extra)[0]!r}; "
                              "the file holds [[keys]] tables")  # fmt: skip
        entries = data.get("keys", [])
        if not isinstance(entries, list) or not entries:
            raise ConfigError(f"{path}:1: no [[keys]] tables")
        for index, entry in enumerate(entries):
            where = f"{path}:{lines.line_of(('keys', index))}: keys[{index}]"
            keys.append(_entry(entry, where))
    if env is not None:
        raw = os.environ.get(env)
        if raw is None:
            raise ConfigError(f"the environment variable {env} (client keys) is not set")
        try:
            entries = json.loads(raw)
        except ValueError as exc:
            raise ConfigError(f"${env}: not a JSON list of client keys: {exc}") from exc
        if not isinstance(entries, list) or not entries:
            raise ConfigError(f"${env}: expected a non-empty JSON list of client keys")
        keys.extend(_entry(entry, f"${env}[{index}]") for index, entry in enumerate(entries))
    return _checked(keys)


def _entry(entry: Any, where: str) -> ClientKey:
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: expected a table with name and key")
    unknown = set(entry) - _FIELDS
    if unknown:
        raise ConfigError(f"{where}.{sorted(unknown)[0]}: unknown field "
                          f"(known: {', '.join(sorted(_FIELDS))})")  # fmt: skip
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where}.name: a non-empty string is required")
    key, digest = entry.get("key"), entry.get("key_sha256")
    if (key is None) == (digest is None):
        raise ConfigError(f"{where}: give exactly one of key and key_sha256")
    if key is not None:
        if not isinstance(key, str) or len(key) < _MIN_KEY_CHARS or key != key.strip():
            raise ConfigError(f"{where}.key: a string of at least {_MIN_KEY_CHARS} characters, "
                              "without surrounding spaces, is required")  # fmt: skip
        digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()
    elif not (isinstance(digest, str) and len(digest) == 64 and _hex(digest)):
        raise ConfigError(f"{where}.key_sha256: 64 hex digits are required")
    return ClientKey(name, digest.lower(), _positive(entry, "budget_usd", where),
                     _positive(entry, "rpm", where))  # fmt: skip


def _positive(entry: Mapping[str, Any], field: str, where: str) -> float | None:
    value = entry.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{where}.{field}: a number is required, got {value!r}")
    if value <= 0:
        raise ConfigError(f"{where}.{field}: must be > 0, got {value!r}")
    return float(value)


def _hex(text: str) -> bool:
    try:
        bytes.fromhex(text)
    except ValueError:
        return False
    return True


def _checked(keys: list[ClientKey]) -> KeyRing:
    names: set[str] = set()
    hashes: set[str] = set()
    for key in keys:
        if key.name in names:
            raise ConfigError(f"client key name {key.name!r} is given twice")
        if key.sha256 in hashes:
            raise ConfigError(f"client key {key.name!r} is the same key as another entry's")
        names.add(key.name)
        hashes.add(key.sha256)
    return KeyRing(keys)
