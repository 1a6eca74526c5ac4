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
    """The policy registered as ``name`` built with ``params`` (unknown names or params raise).

    ``"NAME:PATH"`` is short for ``NAME`` with ``path=PATH`` for policies that load saved weights,
    e.g. ``make_policy("sb3:runs/ppo/Digits-v0_s0")`` or ``make_policy("gaa:runs/gaa/Digits-v0_s0")``.
    """
    base, sep, path = name.partition(":")
    if not sep:
        return POLICIES.make(name, **params)
    if "path" not in POLICIES.parameters(base):
        raise ValueError(
            f"policy {base!r} loads nothing from a path; 'NAME:PATH' works for policies with a path parameter"
        )
    if not path:
        raise ValueError(f"{name!r}: give the path after the colon, e.g. '{base}:runs/{base}/Digits-v0_s0'")
    if "path" in params:
        raise ValueError(f"{name!r} already gives the path; do not also pass path={params['path']!r}")
    return POLICIES.make(base, path=path, **params)
