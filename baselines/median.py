"""Coordinate-wise median.

Reference: Dong Yin, Yudong Chen, Kannan Ramchandran, Peter Bartlett, "Byzantine-Robust
Distributed Learning: Towards Optimal Statistical Rates", ICML 2018 (https://arxiv.org/abs/1803.01498).
"""

from __future__ import annotations

from torch import Tensor

from baselines._common import GAR, Aggregate, coordinate_median, register_gar

__all__ = ["Median"]


@register_gar("median")
class Median(GAR):
    r"""Coordinate-wise median: :math:`u_k = \operatorname{median}_i V_{ik}` for every coordinate k.

    With even n the two middle values are averaged. Non-linear (``credit`` is ``None``). A NaN
    entry counts as +inf, so with at most ``f < n/2`` non-finite or enormous rows every
    coordinate's median lies between honest values and the update is finite. Permutation invariant
    and translation equivariant. When more than ``n/2`` workers are Byzantine (β ≥ 0.5), the
    median of every coordinate is theirs to choose.

    Parameters
    ----------
    f : int
        Number of Byzantine workers the rule is told to expect (only used to check ``n >= 2f+1``).
    n : int, optional
        Number of workers; when given, feasibility is checked now.

    Raises
    ------
    ValueError
        If ``n < 2f + 1``.

    References
    ----------
    Yin et al., "Byzantine-Robust Distributed Learning: Towards Optimal Statistical Rates",
    ICML 2018, https://arxiv.org/abs/1803.01498

    Examples
    --------
    >>> import torch
    >>> grads = torch.tensor([[1.0, 5.0], [2.0, -1.0], [100.0, 0.0]])
    >>> Median(f=1).aggregate(grads).update
    tensor([2., 0.])
    >>> Median(f=1).aggregate(torch.tensor([[1.0], [2.0], [3.0], [float("nan")]])).update
    tensor([2.5000])
    """

    name = "median"
    bound = "n >= 2f+1"

    @classmethod
    def min_workers(cls, f: int) -> int:
        return 2 * f + 1

    def _aggregate(self, grads: Tensor, distances: Tensor | None) -> Aggregate:
        return Aggregate(update=coordinate_median(grads))
