"""byz-gym: Byzantine-robust distributed learning as a Gymnasium environment.

Importing the package registers the environment ids ``ByzGym/<Scenario>-v0`` (one per entry of
``SCENARIOS``). The torch core, ``byz_gym.sim``, works without gymnasium.
"""

from __future__ import annotations

import os

import torch

from byz_gym.scenarios import SCENARIOS, get_scenario
from byz_gym.sim import AttackSpec, Component, Scenario, SimState, Simulator

__version__ = "0.1.0"

ENV_ENTRY_POINT = "byz_gym.env:ByzantineAggregationEnv"

__all__ = [
    "ENV_ENTRY_POINT",
    "SCENARIOS",
    "AttackSpec",
    "Component",
    "Scenario",
    "SimState",
    "Simulator",
    "env_id",
    "get_scenario",
    "registered_env_ids",
]


def env_id(scenario_name: str, version: int = 0) -> str:
    """The Gymnasium id of a preset, e.g. ``env_id("Digits") == "ByzGym/Digits-v0"``."""
    return f"ByzGym/{scenario_name}-v{version}"


def registered_env_ids() -> list[str]:
    """Every id this package registers, in preset order."""
    return [env_id(name) for name in SCENARIOS]


def _register_envs() -> None:
    try:
        import gymnasium as gym
    except ImportError:  # the torch core is usable without gymnasium; the env module is not
        return
    if env_id(next(iter(SCENARIOS))) in gym.registry:  # idempotent on re-import
        return
    for name, scenario in SCENARIOS.items():
        gym.register(
            id=env_id(name),
            entry_point=ENV_ENTRY_POINT,
            kwargs={"scenario": name},
            max_episode_steps=scenario.horizon,
        )


def _single_threaded_torch_in_forked_child() -> None:
    # A forked child (AsyncVectorEnv's default workers) inherits the parent's OpenMP pool in a
    # broken state and hangs in its first parallel torch op; one thread per worker avoids that.
    torch.set_num_threads(1)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_single_threaded_torch_in_forked_child)

_register_envs()
