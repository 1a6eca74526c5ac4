"""Build any policy by name: reference policies, aggregation rules and agents share one name space."""

from __future__ import annotations

from typing import Any

import agents  # noqa: F401  (registers its policies)
import baselines  # noqa: F401  (registers its policies)
from byz_gym.policy import POLICIES, Policy

__all__ = ["available_policies", "make_policy"]


def available_policies() -> list[str]:
    return POLICIES.names()


def make_policy(name: str, **params: Any) -> Policy:
    """The policy registered as ``name`` built with ``params`` (unknown names or params raise)."""
    return POLICIES.make(name, **params)
