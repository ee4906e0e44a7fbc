"""The process-wide switch that forbids real model requests, for test suites.

With ``CASCADE_ALLOW_MODEL_REQUESTS`` set to ``0`` (or ``false``, ``no``, ``off``), the litellm
and HTTP backends refuse every call whose tier does not point its ``api_base`` at this machine
(a fake provider on 127.0.0.1 still answers). A test that forgot to pass ``backend=`` then fails
with a :class:`~cascade.errors.ModelRequestsForbidden` naming the model, instead of paying for a
live call. An environment variable is the switch because it reaches worker processes too.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from cascade.errors import ModelRequestsForbidden

__all__ = ["SWITCH", "check_allowed"]

SWITCH = "CASCADE_ALLOW_MODEL_REQUESTS"
_OFF = frozenset({"0", "false", "no", "off"})


def check_allowed(
    model: str, params: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> None:
    """Raise :class:`ModelRequestsForbidden` when the switch is off and the call leaves here.

    >>> off = {SWITCH: "0"}
    >>> check_allowed("openai/m", {"api_base": "http://127.0.0.1:8000/v1"}, off)  # a fake
    >>> check_allowed("openai/m", {}, {})  # the switch not set: allowed
    >>> check_allowed("openai/m", {}, off)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    cascade.errors.ModelRequestsForbidden: openai/m: real model requests are switched off ...
    """
    value = (os.environ if environ is None else environ).get(SWITCH, "")
    if value.strip().lower() not in _OFF:
        return
    base = params.get("api_base")
    if isinstance(base, str) and _loopback(base):
        return
    raise ModelRequestsForbidden(
        f"{model}: real model requests are switched off ({SWITCH}={value}): give the cascade "
        "a backend (ScriptedBackend), or point the tier's api_base at a fake provider on "
        "127.0.0.1"
    )


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
