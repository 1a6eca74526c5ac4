"""A torch module used as a pure function of one flat parameter vector θ."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.func import functional_call

__all__ = ["FlatModel"]


class FlatModel:
    """Wraps ``module_factory()`` so that ``model(theta, x)`` evaluates it at the flat vector θ.

    Buffers (e.g. batch-norm statistics) are kept fixed; only parameters live in θ.
    """

    def __init__(self, module_factory: Callable[[], nn.Module]) -> None:
        self._factory = module_factory
        self.module = module_factory()
        self.names = [name for name, _ in self.module.named_parameters()]
        self.shapes = [p.shape for _, p in self.module.named_parameters()]
        self.numels = [p.numel() for _, p in self.module.named_parameters()]
        self.buffers = dict(self.module.named_buffers())
        self.dim = sum(self.numels)

    def init(self, seed: int) -> Tensor:
        """Initial θ₀ from the module's own initialiser, seeded without touching the global RNG."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = self._factory()
        return torch.cat([p.detach().reshape(-1) for p in module.parameters()]).to(torch.float32)

    def unflatten(self, theta: Tensor) -> dict[str, Tensor]:
        """θ as the module's named parameters (views, so autograd flows through)."""
        chunks = torch.split(theta, self.numels)
        return {name: chunk.view(shape) for name, chunk, shape in zip(self.names, chunks, self.shapes, strict=True)}

    def __call__(self, theta: Tensor, x: Tensor) -> Tensor:
        return functional_call(self.module, {**self.unflatten(theta), **self.buffers}, (x,))
