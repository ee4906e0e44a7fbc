"""The backend a cascade uses when none is given: local models on llama.cpp, the rest on litellm.

Both are imported only when first needed, so ``import cascade`` stays fast.
"""

from __future__ import annotations

from cascade.backends.base import Backend

__all__ = ["default_backend"]


def default_backend() -> Backend:
    """``local/...`` models on llama.cpp, every other model through litellm."""
    from cascade.backends.litellm import LiteLLMBackend  # noqa: PLC0415  # litellm stays lazy
    from cascade.backends.local import LOCAL_PREFIX, LocalBackend  # noqa: PLC0415
    from cascade.backends.routed import PrefixBackend  # noqa: PLC0415

    return PrefixBackend({LOCAL_PREFIX: LocalBackend}, default=LiteLLMBackend)
