"""Nearest-neighbour mixing (NNM), a pre-aggregator.

Reference: Youssef Allouah, Sadegh Farhadkhani, Rachid Guerraoui, Nirupam Gupta, Rafaël Pinot,
John Stephan, "Fixing by Mixing: A Recipe for Optimal Byzantine ML under Heterogeneity",
AISTATS 2023 (https://arxiv.org/abs/2302.01772).
"""

from __future__ import annotations

import torch
from torch import Tensor

from baselines._common import PreAggregator, register_pre_aggregator

__all__ = ["NNM"]


@register_pre_aggregator("nnm")
class NNM(PreAggregator):
    r"""Nearest-neighbour mixing: replace every submission by the mean of its ``n - f`` nearest
    submissions (itself included),

    .. math:: \tilde V_i = \frac{1}{n - f} \sum_{j \in N_i} V_j .

    A linear map with a ``[n, n]`` mixing matrix whose rows lie on the simplex, so a linear rule
    behind it stays linear. Nearest means smallest squared distance in the round's shared matrix,
    ties to the lower index. With at most ``f`` non-finite rows, every finite row's neighbours are
    finite; a non-finite row mixes with itself and stays non-finite (the rule behind it discards it).

    Parameters
    ----------
    f : int
        Number of Byzantine workers to expect; each row averages its ``n - f`` nearest.

    Raises
    ------
    ValueError
        If ``n < 2f + 1`` at mixing time, or ``f`` is not a non-negative integer.

    References
    ----------
    Allouah et al., "Fixing by Mixing: A Recipe for Optimal Byzantine ML under Heterogeneity",
    AISTATS 2023, https://arxiv.org/abs/2302.01772

    Examples
    --------
    >>> import torch
    >>> grads = torch.tensor([[0.0], [1.0], [2.0], [10.0]])
    >>> mixed, mixing = NNM(f=1).mix(grads)
    >>> mixed.squeeze(1)
    tensor([1.0000, 1.0000, 1.0000, 4.3333])
    """

    name = "nnm"
    uses_distances = True

    def __init__(self, *, f: int) -> None:
        if isinstance(f, bool) or not isinstance(f, int) or f < 0:
            raise ValueError(f"NNM: f must be a non-negative integer, got {f!r}")
        self.f = f

    def check_feasible(self, n: int) -> None:
        if n < 2 * self.f + 1:
            raise ValueError(
                f"NNM needs n >= 2f+1; got n={n}, f={self.f}; lower f to at most {(n - 1) // 2} or add workers"
            )

    def mixing(self, grads: Tensor, distances: Tensor | None) -> Tensor:
        n = grads.shape[0]
        k = n - self.f
        # stable sort: among equal distances the lower index comes first; the row itself (0) leads
        order = torch.sort(distances, dim=1, stable=True).indices[:, :k]
        matrix = torch.zeros(n, n, dtype=torch.float64, device=grads.device)
        matrix.scatter_(1, order, 1.0 / k)
        return matrix

    def __repr__(self) -> str:
        return f"NNM(f={self.f})"
