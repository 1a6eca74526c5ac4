"""Pairwise geometry of the submitted gradients, computed once per round and shared."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["finite_rows", "pairwise_sq_distances", "symlog"]


def finite_rows(grads: Tensor) -> Tensor:
    """``bool[n]``: rows whose entries are all finite."""
    return torch.isfinite(grads).all(dim=1)


def pairwise_sq_distances(grads: Tensor) -> Tensor:
    """``[n, n]`` squared Euclidean distances ‖Vᵢ − Vⱼ‖², float64.

    Uses the Gram form in float64: in float32 it loses the tight clusters that Random-Fault rows
    form (their distances would come out tens of times too large). Rows with a NaN or Inf entry
    are at distance +inf from every other row; the diagonal is 0.
    """
    finite = finite_rows(grads)
    g = torch.where(finite[:, None], grads, torch.zeros_like(grads)).to(torch.float64)
    sq_norms = (g * g).sum(dim=1)
    dist = (sq_norms[:, None] + sq_norms[None, :] - 2.0 * (g @ g.T)).clamp_min_(0.0)
    dist = torch.where(finite[:, None] & finite[None, :], dist, torch.full_like(dist, float("inf")))
    return dist.fill_diagonal_(0.0)


def symlog(x: Tensor) -> Tensor:
    """sign(x)·log(1 + |x|), with NaN -> 0 and ±Inf -> ±log(1 + float32 max) (about ±88.7)."""
    big = torch.finfo(torch.float32).max
    x = torch.nan_to_num(x.to(torch.float32), nan=0.0, posinf=big, neginf=-big)
    return torch.sign(x) * torch.log1p(x.abs())
