"""Schedules: which workers are Byzantine at round t.

A schedule is a small state machine driven by the simulator's generator: ``reset`` draws the
state at round 0, ``advance`` moves it to round t, ``mask`` reads the Byzantine set from it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from byz_gym.registry import Registry

__all__ = ["SCHEDULES", "Schedule", "Static", "register_schedule"]

SCHEDULES: Registry[Schedule] = Registry("schedule")
register_schedule = SCHEDULES.register


class Schedule:
    """Base class; subclasses keep their parameters JSON-serialisable."""

    def reset(self, n_workers: int, n_byzantine: int, generator: torch.Generator) -> Any:
        raise NotImplementedError

    def advance(self, state: Any, round_index: int, generator: torch.Generator) -> Any:
        """Schedule state at ``round_index`` given the state at ``round_index - 1``."""
        raise NotImplementedError

    def mask(self, state: Any) -> Tensor:
        """``bool[n]``: True for the workers that are Byzantine in this state."""
        raise NotImplementedError


@register_schedule("static")
class Static(Schedule):
    """``round(β n)`` workers drawn uniformly at reset stay Byzantine for the whole episode."""

    def reset(self, n_workers: int, n_byzantine: int, generator: torch.Generator) -> Tensor:
        mask = torch.zeros(n_workers, dtype=torch.bool)
        mask[torch.randperm(n_workers, generator=generator)[:n_byzantine]] = True
        return mask

    def advance(self, state: Tensor, round_index: int, generator: torch.Generator) -> Tensor:
        return state

    def mask(self, state: Tensor) -> Tensor:
        return state
