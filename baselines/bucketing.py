"""Bucketing, a pre-aggregator.

Reference: Sai Praneeth Karimireddy, Lie He, Martin Jaggi, "Byzantine-Robust Learning on
Heterogeneous Datasets via Bucketing", ICLR 2022 (https://arxiv.org/abs/2006.09365).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from baselines._common import PreAggregator, register_pre_aggregator

__all__ = ["Bucketing"]


@register_pre_aggregator("bucketing")
class Bucketing(PreAggregator):
    r"""Bucketing: shuffle the submissions at random, split them into ``ceil(n/s)`` buckets of
    ``s`` (the last may be smaller) and pass each bucket's mean to the rule behind.

    A linear map (``[ceil(n/s), n]`` mixing matrix, rows on the simplex). Each Byzantine worker
    taints at most one bucket, so the rule behind is built for ``ceil(n/s)`` inputs and the same
    ``f`` (``baselines.make`` does this). A bucket holding a non-finite row is non-finite. The
    shuffle comes from a private ``torch.Generator`` seeded with ``seed`` and reseeded by
    ``reset(seed)``; a new permutation is drawn each round.

    Parameters
    ----------
    s : int, default 2
        Bucket size.
    seed : int, default 0
        Seed of the shuffle.

    Raises
    ------
    ValueError
        If ``s`` is not a positive integer.

    References
    ----------
    Karimireddy, He, Jaggi, "Byzantine-Robust Learning on Heterogeneous Datasets via Bucketing",
    ICLR 2022, https://arxiv.org/abs/2006.09365

    Examples
    --------
    >>> import torch
    >>> grads = torch.tensor([[0.0], [2.0], [4.0], [6.0]])
    >>> mixed, mixing = Bucketing(s=2).mix(grads)
    >>> mixed.shape, mixing.sum(dim=1)
    (torch.Size([2, 1]), tensor([1., 1.], dtype=torch.float64))
    >>> float(mixed.mean())
    3.0
    """

    name = "bucketing"

    def __init__(self, *, s: int = 2, seed: int = 0) -> None:
        if isinstance(s, bool) or not isinstance(s, int) or s < 1:
            raise ValueError(f"Bucketing: s (bucket size) must be a positive integer, got {s!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"Bucketing: seed must be a non-negative integer, got {seed!r}")
        self.s, self.seed = s, seed
        self._generator = torch.Generator().manual_seed(seed)

    def out_workers(self, n: int) -> int:
        return math.ceil(n / self.s)

    def reset(self, seed: int | None = None) -> None:
        """Restart the shuffle stream from ``seed`` (default: the constructor's)."""
        self._generator = torch.Generator().manual_seed(self.seed if seed is None else int(seed))

    def mixing(self, grads: Tensor, distances: Tensor | None) -> Tensor:
        n = grads.shape[0]
        m = self.out_workers(n)
        permutation = torch.randperm(n, generator=self._generator).to(grads.device)
        bucket = torch.arange(n, device=grads.device) // self.s  # bucket of each shuffled position
        sizes = torch.bincount(bucket, minlength=m).to(torch.float64)
        matrix = torch.zeros(m, n, dtype=torch.float64, device=grads.device)
        matrix[bucket, permutation] = 1.0 / sizes[bucket]
        return matrix

    def __repr__(self) -> str:
        return f"Bucketing(s={self.s}, seed={self.seed})"
