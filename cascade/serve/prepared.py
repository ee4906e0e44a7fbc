"""What every worker of one ``cascade serve`` shares, checked before the port is bound.

The policies (a bad file fails here, naming its file, line and field), the client keys, the
guards of the providers' and the client keys' rate limits (shared memory: spawned workers share
one state), the run id, and the run registered in the store.
"""

from __future__ import annotations

import os
import uuid

from cascade.backends.default import http_models
from cascade.errors import ConfigError
from cascade.policy import PolicySet, load_policies
from cascade.run.guard import Guard, guard_for
from cascade.run.limits import Limit
from cascade.serve.config import ServeConfig
from cascade.serve.keys import KeyRing, load_keys
from cascade.store import Store
from cascade.store.served import ServedBook
from cascade.types import HUMAN

__all__ = ["Prepared", "client_guard", "limit_key", "prepare"]


def limit_key(client: str) -> str:
    """The guard key of a client key's rate limit."""
    return f"client:{client}"


def client_guard(keys: KeyRing) -> Guard:
    """The rate limits of the client keys: one shared state, so one limit for every worker."""
    limits = {limit_key(key.name): Limit(rpm=key.rpm) for key in keys.keys if key.rpm}
    return Guard(limits, keys=list(limits))


class Prepared:
    """What every worker of one server shares: checked config, keys, guards and run id."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        policies = load_policies(config.policy)  # a bad policy fails here, naming file and line
        _refuse_unservable(policies)
        if config.backend is None:  # one backend per model, checked before anything is bound
            http_models(tier for policy in policies for tier in policy.ladder)
        self.keys: KeyRing = load_keys(config.keys_file, config.keys_env)
        self.guard: Guard = guard_for(policies, config.limits)
        self.clients: Guard = client_guard(self.keys)
        self.run_id = f"serve-{uuid.uuid4().hex[:12]}"
        self.environ = dict(os.environ)
        self.task_types = sorted(policy.task_type for policy in policies)
        with Store(config.store) as store:
            ServedBook(store, self.run_id).forget_old()
            store.start_run(self.run_id, {"command": "serve", "policy": config.policy,
                                          "workers": config.workers})  # fmt: skip


def prepare(config: ServeConfig) -> Prepared:
    """Check the server's config, keys, policies and store; register its run."""
    return Prepared(config)


def _refuse_unservable(policies: PolicySet) -> None:
    """Batch tiers and review tiers make a request wait for hours: a server cannot hold it."""
    for policy in policies:
        for tier in policy.ladder:
            if tier.batch is not None:
                raise ConfigError(f"{policy.path}: batch tiers are not served: a request "
                                  "would wait for its batch (cascade run runs them)")  # fmt: skip
            if tier.model == HUMAN:
                raise ConfigError(f"{policy.path}: a human review tier is not served: a request "
                                  "would wait for a person (cascade run queues them)")  # fmt: skip
