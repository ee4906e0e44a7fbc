"""Policies: one TOML file per task type names its ladder, validators, budget and start rules.

See ``policies/`` for the shipped ones, and ``cascade policy check FILE...`` to validate files.
"""

from cascade.policy.load import (
    Policy,
    PolicyError,
    PolicySet,
    Problem,
    load_policies,
    load_policy,
)

__all__ = ["Policy", "PolicyError", "PolicySet", "Problem", "load_policies", "load_policy"]
