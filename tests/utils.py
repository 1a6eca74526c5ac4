"""Shared test helpers: every registered byz-gym spec, small overrides, the warning allow-list."""

from __future__ import annotations

import gymnasium as gym

import byz_gym

BYZ_SPECS = [spec for spec in gym.registry.values() if str(spec.entry_point).startswith("byz_gym.")]

# Small sizes so that registry-wide tests take seconds: fewer workers, short episodes.
SMALL = {"n_workers": 8, "horizon": 12, "eval_every": 5}

# Warnings we accept from the checkers, each with its reason. Anything else fails the test.
CHECKER_WARNING_ALLOWLIST: tuple[str, ...] = (
    # Our observation bounds are wide (±100 for symlog features): SB3 suggests normalising; users
    # wrap with VecNormalize, and the bounds are the honest range of the features.
    "We recommend you to use a symmetric and normalized Box action space",
)


def make_small(spec_or_id, **overrides) -> gym.Env:
    env_id = spec_or_id.id if hasattr(spec_or_id, "id") else spec_or_id
    return gym.make(env_id, **{**SMALL, **overrides})


def unexpected(warnings_list) -> list[str]:
    return [
        str(w.message)
        for w in warnings_list
        if not any(allowed in str(w.message) for allowed in CHECKER_WARNING_ALLOWLIST)
    ]


assert BYZ_SPECS, f"no byz_gym env registered (byz_gym {byz_gym.__version__})"
