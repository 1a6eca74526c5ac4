"""Registered scenario presets. Each ``SCENARIOS[name]`` becomes the env id ``ByzGym/<name>-v0``.

All presets derive from ``DIGITS`` (the embedded digits task, n = 50 workers as in the paper's
MNIST setting) with ``Scenario.replace``.
"""

from __future__ import annotations

from byz_gym.sim.scenario import AttackSpec, Scenario

__all__ = ["SCENARIOS", "get_scenario"]

DIGITS = Scenario(
    task="digits",
    n_workers=50,
    byzantine_fraction=0.3,
    attack=AttackSpec(schedule="static", tampering="random_fault"),
)

SCENARIOS: dict[str, Scenario] = {
    "Digits-Clean": DIGITS.replace(byzantine_fraction=0.0),
    "Digits": DIGITS,
    "Digits-Majority": DIGITS.replace(byzantine_fraction=0.7),
}


def get_scenario(name: str) -> Scenario:
    """The preset ``name`` (e.g. ``"Digits"``); ``ValueError`` listing the presets otherwise."""
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; presets: {', '.join(SCENARIOS)}") from None
