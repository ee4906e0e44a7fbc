"""One ``cascade serve``: what to serve and how, as one value that reaches every worker process.

The command line builds a :class:`ServeConfig` once, checked when made; each worker process
builds its service from it (so it must pickle: worker processes are spawned).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cascade.errors import ConfigError
from cascade.run.limits import Limit
from cascade.serve.chat import RequestLimits

__all__ = ["ServeConfig", "is_loopback"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (``localhost``, 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any address


@dataclass(frozen=True, slots=True)
class ServeConfig:
    """The options of a server (see ``cascade serve --help``)."""

    policy: str
    store: str = "served.db"
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    keys_file: str | None = None
    keys_env: str | None = None
    allow_unauthenticated: bool = False
    """Serve without client keys on an address other hosts can reach (loopback never needs it)."""
    request_limits: RequestLimits = field(default_factory=RequestLimits)
    budget_usd: float | None = None
    """What every client together may spend, ever (kept in the store); ``None``: no cap."""
    limits: Mapping[str, Limit] = field(default_factory=dict)
    log: str | None = None
    grace_s: float = 30.0
    """On SIGTERM, how long requests in flight may take to finish before they are cut off."""
    max_outage_s: float = 60.0
    """How long a request waits for a provider that keeps failing, before it fails (502)."""
    backend: str | None = None
    """``module:factory`` building every worker's backend, instead of litellm."""
    otel: str | None = None
    otel_content: bool = False
    settle_heap: bool = False
    """Freeze the start-up heap once the first request is answered (:mod:`cascade.run.heap`):
    the ``cascade serve`` command does, in the processes it owns."""
    max_concurrency: int | None = 1000
    """Requests (and connections) a worker holds at once; past it, a 503 (``None``: no cap)."""

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port must be between 0 and 65535, got {self.port}")
        if self.max_concurrency is not None and self.max_concurrency < 1:
            raise ConfigError(f"--max-concurrency must be >= 1, got {self.max_concurrency}")
        if self.workers < 1:
            raise ConfigError(f"--workers must be >= 1, got {self.workers}")
        if self.budget_usd is not None and not self.budget_usd > 0:
            raise ConfigError(f"--budget must be > 0 USD, got {self.budget_usd}")
        if not self.grace_s >= 0:
            raise ConfigError(f"--grace must be >= 0 s, got {self.grace_s}")
        if not self.max_outage_s >= 0:
            raise ConfigError(f"--max-outage-s must be >= 0, got {self.max_outage_s}")
        if self.otel_content and self.otel is None:
            raise ConfigError("--otel-content needs --otel (or OTEL_EXPORTER_OTLP_ENDPOINT)")
        keyed = self.keys_file is not None or self.keys_env is not None
        if not keyed and not is_loopback(self.host) and not self.allow_unauthenticated:
            raise ConfigError(
                f"--host {self.host} lets other machines in, and no client keys are given: "
                "pass --keys FILE (or --keys-env VAR), or --allow-unauthenticated to serve "
                "anyone who can reach the port"
            )

    @property
    def log_path(self) -> Path:
        """The step log: ``--log``, by default beside the store."""
        return Path(self.log or Path(self.store).with_suffix(".steps.jsonl"))
