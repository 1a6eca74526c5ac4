"""The policy interface shared by aggregation rules, the GAA agent, SB3 models and reference policies.

Each round a policy receives a ``RoundInput`` (the env's observation and info, and on demand the
round's submitted gradients) and returns a ``Decision``: an env action, a credit vector on the
simplex, or (non-linear aggregation rules) an update vector.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
import torch

from byz_gym.registry import Registry

__all__ = ["POLICIES", "Decision", "Policy", "RoundInput", "register_policy"]


@dataclass(frozen=True)
class Decision:
    """Exactly one of ``action`` (env action), ``credit`` (simplex, ``[n]``) or ``update`` (``[d]``)."""

    action: np.ndarray | None = None
    credit: np.ndarray | torch.Tensor | None = None
    update: torch.Tensor | None = None

    def __post_init__(self) -> None:
        given = [name for name in ("action", "credit", "update") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"a Decision holds exactly one of action, credit, update; got {given or 'none'}")


@dataclass(frozen=True)
class RoundInput:
    """What a policy may read in one round. ``submissions`` is fetched only if a policy asks."""

    observation: np.ndarray
    info: dict[str, Any]
    _submissions: Callable[[], torch.Tensor] = field(repr=False)

    @cached_property
    def submissions(self) -> torch.Tensor:
        """``[n, d]`` gradients submitted this round (Byzantine rows included)."""
        return self._submissions()


class Policy:
    """Base class. Subclasses set ``name`` and implement ``act``; online learners also ``observe``."""

    name: ClassVar[str] = "policy"
    privileged: ClassVar[bool] = False  # True when the policy reads the true Byzantine mask

    def reset(self, env: Any, seed: int) -> None:
        """Called once per episode, after ``env.reset``; ``env`` is the unwrapped env."""

    def act(self, round_input: RoundInput) -> Decision:
        raise NotImplementedError

    def observe(self, reward: float, info: dict[str, Any]) -> None:
        """Feedback after each step (online learners such as GAA use it)."""


POLICIES: Registry[Policy] = Registry("policy")
register_policy = POLICIES.register
