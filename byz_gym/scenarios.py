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
    # The paper's attack patterns (Pan et al., 2020), on digits. Its periods were set for episodes of
    # thousands of rounds; here they are scaled to the 300-round digits episode.
    # Randomized: 49 of 50 compromised, 24 initially malicious; every 5 rounds each flips w.p. 0.5.
    "Digits-Randomized": DIGITS.replace(
        byzantine_fraction=0.98,
        attack=AttackSpec(
            schedule={"name": "randomized", "params": {"period": 5, "flip_probability": 0.5, "initial_fraction": 0.5}},
            tampering="random_fault",
        ),
    ),
    # Pretense: 35 of 50 honest for L = 100 rounds (paper: L = 1000), then Random Fault.
    "Digits-Pretense": DIGITS.replace(
        byzantine_fraction=0.7,
        attack=AttackSpec(schedule={"name": "pretense", "params": {"honest_rounds": 100}}, tampering="random_fault"),
    ),
    # Periodic (Fig. 8, initial β = 0.9): 45 of 50 attack in rounds 0-99, none in 100-199, all 45 again
    # in 200-299 (paper: p = 1000).
    "Digits-Periodic": DIGITS.replace(
        byzantine_fraction=0.9,
        attack=AttackSpec(
            schedule={"name": "periodic", "params": {"period": 100, "initial_fraction": 1.0}},
            tampering="random_fault",
        ),
    ),
    # Adaptive fault, Case A (α = 10): looks good on the QV pool, damages the attackers' shards.
    "Digits-Adaptive": DIGITS.replace(
        byzantine_fraction=0.7,
        attack=AttackSpec(schedule="static", tampering={"name": "adaptive", "params": {"case": "A", "alpha": 10.0}}),
    ),
    # Omniscient: "a little is enough" with z from n and f (z ≈ 0.77 at n = 50, f = 15).
    "Digits-ALIE": DIGITS.replace(attack=AttackSpec(schedule="static", tampering="alie")),
}


def get_scenario(name: str) -> Scenario:
    """The preset ``name`` (e.g. ``"Digits"``); ``ValueError`` listing the presets otherwise."""
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; presets: {', '.join(SCENARIOS)}") from None
