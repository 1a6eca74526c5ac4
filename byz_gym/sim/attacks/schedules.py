"""Schedules: which workers are Byzantine at round t.

A schedule is a small state machine driven by the simulator's generator: ``reset`` draws the
state at round 0, ``advance`` moves it to round t, ``mask`` reads the Byzantine set from it.
The simulator hands ``advance`` a generator seeded by ``(episode seed, t)``, so the Byzantine set
of round t depends only on the seed, never on the policy being evaluated. States are immutable:
``advance`` returns a new state and never modifies the one it is given.

Every schedule except ``rotating`` works on a set of ``k = round(β n)`` *compromised* workers drawn
at reset, and decides which of them are *malicious* (send tampered gradients) at round t:

========== ==============================================================================
static     all k, every round
pretense   none for the first L rounds, all k from round L on
randomized each compromised worker starts with a role (malicious or honest); every p rounds
           each one flips its role with probability q
periodic   ``randomized`` with q = 1: every p rounds all roles swap
curve      the first ``c(t)`` of the k (in a random order fixed at reset), c(t) from a
           piecewise-linear curve of rounds; ``ramp`` is the two-knot special case
rotating   a fresh uniformly random set of k workers every p rounds (any of the n)
========== ==============================================================================
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from byz_gym.registry import Registry

__all__ = [
    "SCHEDULES",
    "Curve",
    "Periodic",
    "Pretense",
    "Ramp",
    "Randomized",
    "Rotating",
    "Schedule",
    "Static",
    "register_schedule",
]

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


def _random_subset(n_workers: int, count: int, generator: torch.Generator) -> Tensor:
    """``bool[n]`` with ``count`` entries True, uniformly at random."""
    mask = torch.zeros(n_workers, dtype=torch.bool)
    mask[torch.randperm(n_workers, generator=generator)[:count]] = True
    return mask


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _check_fraction(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


def _share(fraction: float, count: int) -> int:
    """``floor(fraction · count)``, robust to float error (0.3·10 is 3, not 2)."""
    return min(count, math.floor(fraction * count + 1e-9))


@register_schedule("static")
class Static(Schedule):
    """``round(β n)`` workers drawn uniformly at reset stay Byzantine for the whole episode."""

    def reset(self, n_workers: int, n_byzantine: int, generator: torch.Generator) -> Tensor:
        return _random_subset(n_workers, n_byzantine, generator)

    def advance(self, state: Tensor, round_index: int, generator: torch.Generator) -> Tensor:
        return state

    def mask(self, state: Tensor) -> Tensor:
        return state


@dataclass(frozen=True)
class PretenseState:
    compromised: Tensor  # bool[n], drawn at reset
    active: bool  # True from round L on


@register_schedule("pretense")
class Pretense(Schedule):
    """The ``round(β n)`` compromised workers behave honestly for ``honest_rounds`` rounds, then attack.

    Rounds ``0 … L−1`` are clean (empty Byzantine set); from round ``L`` on the compromised set is
    Byzantine for good. Pan et al. (2020) use β = 0.7 and L = 1000.

    Parameters
    ----------
    honest_rounds: L, the number of clean rounds before the attack starts.
    """

    def __init__(self, *, honest_rounds: int = 1000) -> None:
        self.honest_rounds = _check_int("pretense honest_rounds", honest_rounds, 0)

    def reset(self, n_workers: int, n_byzantine: int, generator: torch.Generator) -> PretenseState:
        return PretenseState(_random_subset(n_workers, n_byzantine, generator), self.honest_rounds == 0)

    def advance(self, state: PretenseState, round_index: int, generator: torch.Generator) -> PretenseState:
        active = round_index >= self.honest_rounds
        return state if active == state.active else PretenseState(state.compromised, active)

    def mask(self, state: PretenseState) -> Tensor:
        return state.compromised if state.active else torch.zeros_like(state.compromised)


@dataclass(frozen=True)
class RolesState:
    compromised: Tensor  # bool[n], drawn at reset
    malicious: Tensor  # bool[n], subset of compromised: the current Byzantine set


@register_schedule("randomized")
class Randomized(Schedule):
    """Compromised workers switch between honest and malicious at random.

    At reset ``k = round(β n)`` workers are compromised and ``floor(initial_fraction · k)`` of them,
    chosen uniformly, start malicious. At every round ``t`` that is a positive multiple of
    ``period`` each compromised worker flips its role independently with probability
    ``flip_probability``. Honest workers are never Byzantine. Pan et al. (2020): p = 5, q = 0.5,
    49 of 50 compromised with 24 initially malicious (β = 0.98, ``initial_fraction = 0.5``).

    Parameters
    ----------
    period: p, rounds between two role draws.
    flip_probability: q, chance that a compromised worker flips its role at a draw.
    initial_fraction: share of the compromised workers malicious at round 0 (rounded down).
    """

    def __init__(self, *, period: int = 5, flip_probability: float = 0.5, initial_fraction: float = 0.5) -> None:
        self.period = _check_int("randomized period", period, 1)
        self.flip_probability = _check_fraction("randomized flip_probability", flip_probability)
        self.initial_fraction = _check_fraction("randomized initial_fraction", initial_fraction)

    def reset(self, n_workers: int, n_byzantine: int, generator: torch.Generator) -> RolesState:
        order = torch.randperm(n_workers, generator=generator)
        compromised = torch.zeros(n_workers, dtype=torch.bool)
        compromised[order[:n_byzantine]] = True
        malicious = torch.zeros(n_workers, dtype=torch.bool)
        malicious[order[: _share(self.initial_fraction, n_byzantine)]] = True
        return RolesState(compromised, malicious)

    def advance(self, state: RolesState, round_index: int, generator: torch.Generator) -> RolesState:
        if round_index <= 0 or round_index % self.period:
            return state
        n = state.compromised.shape[0]
        flip = (torch.rand(n, generator=generator) < self.flip_probability) & state.compromised
        return RolesState(state.compromised, state.malicious ^ flip)

    def mask(self, state: RolesState) -> Tensor:
        return state.malicious


@register_schedule("periodic")
class Periodic(Randomized):
    """``randomized`` with q = 1: every ``period`` rounds every compromised worker swaps its role.

    With ``initial_fraction = 1`` the k compromised workers attack for p rounds, behave for p
    rounds, attack again, and so on. Pan et al. (2020, Fig. 8) use n = 10, p = 1000 and an initial
    Byzantine share of 0.9, and of 0.5.

    Parameters
    ----------
    period: p, rounds between two swaps.
    initial_fraction: share of the compromised workers malicious at round 0 (rounded down).
    """

    def __init__(self, *, period: int = 1000, initial_fraction: float = 1.0) -> None:
        super().__init__(period=period, flip_probability=1.0, initial_fraction=initial_fraction)

    def advance(self, state: RolesState, round_index: int, generator: torch.Generator) -> RolesState:
        if round_index <= 0 or round_index % self.period:
            return state
        return RolesState(state.compromised, state.malicious ^ state.compromised)


@dataclass(frozen=True)
class RankState:
    rank: Tensor  # int64[n], position of each worker in the order drawn at reset
    compromised: int  # k = round(β n)
    count: int  # the first ``count`` workers of that order are Byzantine


@register_schedule("curve")
class Curve(Schedule):
    """The number of Byzantine workers follows a curve over rounds.

    ``points`` are ``[round, fraction]`` knots (rounds strictly increasing); the fraction is a share
    of the ``k = round(β n)`` compromised workers. At round t the Byzantine count is
    ``floor(c(t) · k)``, where c interpolates the knots linearly (``interpolation="linear"``) or
    holds the last knot at or before t (``"step"``), and is constant before the first knot and after
    the last one. Workers join and leave in one random order drawn at reset, so the Byzantine set
    at a lower count is always a subset of the set at a higher count.

    Parameters
    ----------
    points: ``[[round, fraction], ...]``, e.g. ``[[0, 0.0], [100, 1.0], [200, 0.5]]``.
    interpolation: ``"linear"`` or ``"step"``.
    """

    def __init__(self, *, points: Sequence[Sequence[float]] = ((0, 1.0),), interpolation: str = "linear") -> None:
        if interpolation not in ("linear", "step"):
            raise ValueError(f"curve interpolation must be 'linear' or 'step', got {interpolation!r}")
        try:
            knots = [(float(r), float(v)) for r, v in points]
        except (TypeError, ValueError):
            raise ValueError(f"curve points must be [[round, fraction], ...] pairs, got {points!r}") from None
        if not knots:
            raise ValueError("curve needs at least one [round, fraction] point")
        for r, v in knots:
            if not math.isfinite(r) or r < 0:
                raise ValueError(f"curve rounds must be finite and >= 0, got {r}")
            _check_fraction("curve fraction", v)
        if any(b[0] <= a[0] for a, b in zip(knots, knots[1:], strict=False)):
            raise ValueError(f"curve rounds must be strictly increasing, got {[r for r, _ in knots]}")
        self.points = [[r, v] for r, v in knots]
        self.interpolation = interpolation

    def fraction(self, round_index: int) -> float:
        """c(t): share of the compromised workers that are Byzantine at round t."""
        t, knots = float(round_index), self.points
        if t <= knots[0][0]:
            return knots[0][1]
        for (r0, v0), (r1, v1) in zip(knots, knots[1:], strict=False):
            if t < r1:
                return v0 if self.interpolation == "step" else v0 + (v1 - v0) * (t - r0) / (r1 - r0)
        return knots[-1][1]

    def reset(self, n_workers: int, n_byzantine: int, generator: torch.Generator) -> RankState:
        rank = torch.empty(n_workers, dtype=torch.int64)
        rank[torch.randperm(n_workers, generator=generator)] = torch.arange(n_workers)
        return RankState(rank, n_byzantine, _share(self.fraction(0), n_byzantine))

    def advance(self, state: RankState, round_index: int, generator: torch.Generator) -> RankState:
        count = _share(self.fraction(round_index), state.compromised)
        return state if count == state.count else RankState(state.rank, state.compromised, count)

    def mask(self, state: RankState) -> Tensor:
        return state.rank < state.count


@register_schedule("ramp")
class Ramp(Curve):
    """The Byzantine count grows linearly from ``start_fraction · k`` at ``start_round`` to all
    ``k = round(β n)`` compromised workers at ``end_round``, then stays there (``curve`` with two knots).

    Parameters
    ----------
    start_fraction: share of the compromised workers Byzantine up to ``start_round``.
    start_round: round at which the ramp starts.
    end_round: round from which all compromised workers are Byzantine.
    """

    def __init__(self, *, start_fraction: float = 0.0, start_round: int = 0, end_round: int = 100) -> None:
        start_round = _check_int("ramp start_round", start_round, 0)
        end_round = _check_int("ramp end_round", end_round, start_round + 1)
        super().__init__(points=[[start_round, start_fraction], [end_round, 1.0]])
        self.start_fraction, self.start_round, self.end_round = float(start_fraction), start_round, end_round


@register_schedule("rotating")
class Rotating(Schedule):
    """A fresh uniformly random set of ``round(β n)`` Byzantine workers every ``period`` rounds.

    The set is redrawn at every round that is a multiple of ``period`` (round 0 included), from the
    generator of that round, so identities cannot be learned across periods.

    Parameters
    ----------
    period: p, rounds during which one Byzantine set is kept.
    """

    def __init__(self, *, period: int = 1) -> None:
        self.period = _check_int("rotating period", period, 1)

    def reset(self, n_workers: int, n_byzantine: int, generator: torch.Generator) -> tuple[Tensor, int]:
        return _random_subset(n_workers, n_byzantine, generator), n_byzantine

    def advance(self, state: tuple[Tensor, int], round_index: int, generator: torch.Generator) -> tuple[Tensor, int]:
        if round_index % self.period:
            return state
        mask, count = state
        return _random_subset(mask.shape[0], count, generator), count

    def mask(self, state: tuple[Tensor, int]) -> Tensor:
        return state[0]
