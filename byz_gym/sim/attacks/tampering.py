"""Tampering: what Byzantine workers send in place of their honest gradient."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from byz_gym.registry import Registry

__all__ = ["TAMPERINGS", "RandomFault", "SignFlip", "TamperContext", "Tampering", "register_tampering"]

TAMPERINGS: Registry[Tampering] = Registry("tampering")
register_tampering = TAMPERINGS.register


@dataclass(frozen=True)
class TamperContext:
    """What a Byzantine worker may know in one round."""

    honest: Tensor  # [n, d] gradients every worker would send if honest (omniscient attacks only)
    mask: Tensor  # bool[n], the Byzantine workers this round
    theta: Tensor  # [d] current parameters
    generator: torch.Generator  # the round's tampering stream


class Tampering:
    """Base class: ``__call__`` returns the ``[k, d]`` rows of the k Byzantine workers, in worker order."""

    omniscient: ClassVar[bool] = False  # True when the attack reads other workers' honest gradients

    def __call__(self, context: TamperContext) -> Tensor:
        raise NotImplementedError


@register_tampering("random_fault")
class RandomFault(Tampering):
    """Gaussian random fault of the GAA paper: each Byzantine row is a sample of N(μ·1, σ²I).

    Defaults μ = 0.5, σ = 2e-6 (Pan et al., 2020). The rows are nearly identical, so they form a
    tight cluster that distance-based rules mistake for a consensus once they are a majority.
    """

    def __init__(self, *, mean: float = 0.5, std: float = 2e-6) -> None:
        if not (math.isfinite(mean) and math.isfinite(std) and std >= 0):
            raise ValueError(f"random_fault needs finite mean and std >= 0, got mean={mean}, std={std}")
        self.mean, self.std = float(mean), float(std)

    def __call__(self, context: TamperContext) -> Tensor:
        k, d = int(context.mask.sum()), context.honest.shape[1]
        noise = torch.randn(k, d, generator=context.generator, dtype=context.honest.dtype)
        return self.mean + self.std * noise


@register_tampering("sign_flip")
class SignFlip(Tampering):
    """Byzantine workers send ``-scale`` times their own honest gradient."""

    def __init__(self, *, scale: float = 1.0) -> None:
        if not math.isfinite(scale):
            raise ValueError(f"sign_flip needs a finite scale, got {scale}")
        self.scale = float(scale)

    def __call__(self, context: TamperContext) -> Tensor:
        return -self.scale * context.honest[context.mask]
