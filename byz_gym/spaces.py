"""``Simplex``: a Box space whose members are probability vectors (credit vectors)."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

__all__ = ["Simplex"]


class Simplex(spaces.Box):
    """Points of the probability simplex in R^n: entries in [0, 1] that sum to 1.

    A ``Box(0, 1, (n,))`` for libraries that only know boxes (SB3); ``sample`` draws from the
    flat Dirichlet distribution and ``contains`` also checks the sum (tolerance ``atol``).
    """

    def __init__(self, n: int, *, atol: float = 1e-4, seed: int | np.random.Generator | None = None) -> None:
        super().__init__(low=0.0, high=1.0, shape=(n,), dtype=np.float32, seed=seed)
        self.atol = float(atol)

    def sample(self, mask: Any = None, probability: Any = None) -> np.ndarray:
        if mask is not None or probability is not None:
            raise NotImplementedError("Simplex.sample does not support masks")
        return self.np_random.dirichlet(np.ones(self.shape[0])).astype(self.dtype)

    def contains(self, x: Any) -> bool:
        if not super().contains(x):
            return False
        return bool(abs(float(np.asarray(x, dtype=np.float64).sum()) - 1.0) <= self.atol)

    def __repr__(self) -> str:
        return f"Simplex({self.shape[0]})"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, Simplex) and self.shape == other.shape and self.atol == other.atol
