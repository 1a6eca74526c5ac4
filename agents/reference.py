"""Reference policies: uniform credit (plain averaging), random credit, and the privileged oracle."""

from __future__ import annotations

from typing import Any

import numpy as np

from byz_gym.policy import Decision, Policy, RoundInput, register_policy

__all__ = ["Oracle", "RandomCredit", "Uniform"]


@register_policy("uniform")
class Uniform(Policy):
    """α = 1/n for every worker: the server's plain mean ("Classical" in the GAA paper)."""

    name = "uniform"

    def act(self, round_input: RoundInput) -> Decision:
        n = round_input.info["byzantine_mask"].shape[0]
        return Decision(credit=np.full(n, 1.0 / n))


@register_policy("random")
class RandomCredit(Policy):
    """Credit drawn each round from the flat Dirichlet distribution (a sanity floor)."""

    name = "random"

    def __init__(self) -> None:
        self._rng = np.random.default_rng(0)

    def reset(self, env: Any, seed: int) -> None:
        self._rng = np.random.default_rng(seed)

    def act(self, round_input: RoundInput) -> Decision:
        n = round_input.info["byzantine_mask"].shape[0]
        return Decision(credit=self._rng.dirichlet(np.ones(n)))


@register_policy("oracle")
class Oracle(Policy):
    """Privileged: uniform credit over the workers that are truly honest this round.

    Reads ``info["byzantine_mask"]``, which no real server knows; it is the ceiling a defence can
    reach, not a defence. If every worker is Byzantine it falls back to uniform credit.
    """

    name = "oracle"
    privileged = True

    def act(self, round_input: RoundInput) -> Decision:
        honest = ~np.asarray(round_input.info["byzantine_mask"], dtype=bool)
        if not honest.any():
            honest[:] = True
        return Decision(credit=honest / honest.sum())
