"""One ``cascade run``: what to run and how, as one value that reaches every worker process.

The command line builds a :class:`Job` once; the coordinator and each worker read what they
need from it, so no setting is copied from one options object to another on its way down.
It must pickle (worker processes are spawned).
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, cast

from cascade.errors import ConfigError
from cascade.run.guard import Limit

if TYPE_CHECKING:
    from cascade.backends.base import Backend
    from cascade.telemetry import Telemetry

__all__ = ["Job", "backend_from", "telemetry_for"]


@dataclass(frozen=True, slots=True)
class Job:
    """The options of a run (see ``cascade run --help``), checked when made."""

    tasks: str
    policy: str
    out: str = "results.jsonl"
    store: str = "run.db"
    quarantine: str | None = None
    log: str | None = None
    review: str | None = None
    concurrency: int = 16
    workers: int | None = None
    """Worker processes (or Ray actors); ``None`` for one per core, at most one per 1000 tasks."""
    executor: str = "processes"
    """``processes`` on this machine, or ``ray``: actors on a Ray cluster."""
    ray_address: str | None = None
    """The Ray cluster to join (``--ray-address``); ``None`` starts a local Ray."""
    lease_s: float = 300.0
    budget_usd: float | None = None
    record_all_tiers: float = 0.0
    replay: str | None = None
    backend: str | None = None
    """``module:factory`` building every process's backend, instead of litellm."""
    limits: Mapping[str, Limit] = field(default_factory=dict)
    progress: bool = True
    window: int = 20_000
    """Tasks read into the store ahead of the workers, at most."""
    tail_s: float = 0.1
    max_outage_s: float = 600.0
    """How long a task waits for a provider that keeps failing, before it ends ``failed``."""
    retry_failed: bool = False
    """Run again the tasks an earlier run of the job ended ``failed`` (provider trouble)."""
    dry_run: bool = False
    grace_s: float = 5.0
    """On an interrupt, how long tasks in flight may take to finish before they are cut off."""
    otel: str | None = None
    """Export traces and metrics over OTLP/HTTP: to this base URL, or ``""`` for the endpoint
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` names; ``None`` exports nothing."""
    otel_content: bool = False
    """Also export each call's answer and each task's input (redacted) with the traces."""
    settle_heap: bool = False
    """Freeze the start-up heap of the process that runs the job, once its first answers are in
    (:mod:`cascade.run.heap`): the ``cascade`` command does, in its own process; a program that
    runs a job in its process decides for itself. Worker processes, the run's own, always do."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.record_all_tiers <= 1.0:
            raise ConfigError(
                f"--record-all-tiers must be between 0 and 1, got {self.record_all_tiers}"
            )
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"workers must be >= 1, got {self.workers}")
        if self.concurrency < 1:
            raise ConfigError(f"concurrency must be >= 1, got {self.concurrency}")
        if not self.lease_s > 0:
            raise ConfigError(f"the lease must be > 0 s, got {self.lease_s}")
        if self.budget_usd is not None and not self.budget_usd > 0:
            raise ConfigError(f"the budget must be > 0 USD, got {self.budget_usd}")
        if not self.grace_s >= 0:
            raise ConfigError(f"--grace must be >= 0 s, got {self.grace_s}")
        if not self.max_outage_s >= 0:
            raise ConfigError(f"--max-outage-s must be >= 0, got {self.max_outage_s}")
        if self.otel_content and self.otel is None:
            raise ConfigError("--otel-content needs --otel (or OTEL_EXPORTER_OTLP_ENDPOINT)")
        if self.executor not in ("processes", "ray"):
            raise ConfigError(f"--executor must be processes or ray, got {self.executor!r}")
        if self.ray_address is not None and self.executor != "ray":
            raise ConfigError("--ray-address needs --executor ray")
        if self.replay is not None and self.backend is not None:
            raise ConfigError("--replay and --backend cannot be used together")

    @property
    def quarantine_path(self) -> Path:
        """Bad lines: ``--quarantine``, by default beside the results."""
        return Path(self.quarantine or Path(self.out).with_suffix(".quarantine.jsonl"))

    @property
    def log_path(self) -> Path:
        """The step log: ``--log``, by default beside the results."""
        return Path(self.log or Path(self.out).with_suffix(".steps.jsonl"))

    @property
    def review_path(self) -> Path:
        """The human review queue: ``--review``, by default beside the results."""
        return Path(self.review or Path(self.out).with_suffix(".review.jsonl"))

    def telemetry(self) -> Telemetry | None:
        """An exporter of traces and metrics for this process, when the job asks for one."""
        return telemetry_for(self.otel, content=self.otel_content)

    def worker_count(self, tasks: int | None) -> int:
        """The workers asked for, or by default one per core and one per thousand tasks at most.

        A process takes seconds to start (litellm's import alone is 3 s), so small jobs stay in
        one.
        """
        if self.workers is not None:
            return self.workers
        return max(1, min(os.cpu_count() or 1, (tasks or 0) // 1000))

    def preloads_litellm(self) -> bool:
        """Whether worker processes import litellm before their first task (it takes seconds).

        Only when some tier's calls go through it: not on a replay, a named backend, or
        tiers that are all on ``backend = "http"``.
        """
        if self.replay is not None or self.backend is not None:
            return False
        from cascade.policy import load_policies  # noqa: PLC0415

        tiers = (tier for policy in load_policies(self.policy) for tier in policy.ladder)
        return any(tier.backend != "http" and not tier.is_human for tier in tiers)

    def backend_factory(self) -> Callable[[], Backend]:
        """What every process builds its backend with: replay, a named factory, or the default.

        It pickles (a module-level function or a ``functools.partial`` of one).
        """
        if self.replay is not None:
            from cascade.backends.replay import ReplayBackend  # noqa: PLC0415

            return functools.partial(ReplayBackend.from_dataset, self.replay)
        if self.backend is not None:
            return functools.partial(backend_from, self.backend)
        from cascade.backends.default import default_backend, http_models  # noqa: PLC0415
        from cascade.policy import load_policies  # noqa: PLC0415

        tiers = (tier for policy in load_policies(self.policy) for tier in policy.ladder)
        return functools.partial(default_backend, http_models(tiers))


def telemetry_for(otel: str | None, *, content: bool = False) -> Telemetry | None:
    """An OTLP/HTTP exporter to ``otel`` (``""``: the environment's endpoint), or ``None``."""
    if otel is None:
        return None
    from cascade.otlp import otlp_telemetry  # noqa: PLC0415  # the otel extra

    try:
        say = logging.getLogger("cascade").warning
        return otlp_telemetry(otel or None, say, content=content)
    except ImportError as exc:
        raise ConfigError(
            f"--otel needs the otel extra: pip install 'cascade-llm[otel]' ({exc})"
        ) from exc


def backend_from(spec: str) -> Backend:
    """Build a backend from ``module:factory`` (the factory takes no arguments)."""
    module_name, _, name = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(f"--backend {spec}: cannot import it ({exc})") from exc
    if not callable(factory):
        raise ConfigError(f"--backend {spec}: not callable")
    return cast("Backend", factory())
