"""Coordinate-wise trimmed mean.

Reference: Dong Yin, Yudong Chen, Kannan Ramchandran, Peter Bartlett, "Byzantine-Robust
Distributed Learning: Towards Optimal Statistical Rates", ICML 2018 (https://arxiv.org/abs/1803.01498).
"""

from __future__ import annotations

from torch import Tensor

from baselines._common import GAR, Aggregate, coordinate_sort, register_gar

__all__ = ["TrimmedMean"]


@register_gar("trimmed_mean")
class TrimmedMean(GAR):
    r"""Coordinate-wise trimmed mean: per coordinate, drop the ``f`` largest and ``f`` smallest
    values and average the remaining ``n - 2f``.

    .. math:: u_k = \frac{1}{n - 2f} \sum_{i=f+1}^{n-f} V_{(i)k},

    where :math:`V_{(1)k} \le \dots \le V_{(n)k}` are the sorted values of coordinate k.
    Non-linear. NaN counts as +inf, so up to ``f`` non-finite or enormous rows are trimmed away
    and the update stays finite. Permutation invariant and translation equivariant. With more
    than ``f`` Byzantine workers, the extra ones survive the trimming and move every coordinate.

    Parameters
    ----------
    f : int
        Values trimmed from each end of every coordinate.
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
    >>> grads = torch.tensor([[1.0, 0.0], [2.0, 4.0], [3.0, 8.0], [1e9, 2.0]])
    >>> TrimmedMean(f=1).aggregate(grads).update
    tensor([2.5000, 3.0000])
    """

    name = "trimmed_mean"
    bound = "n >= 2f+1"

    @classmethod
    def min_workers(cls, f: int) -> int:
        return 2 * f + 1

    def _aggregate(self, grads: Tensor, distances: Tensor | None) -> Aggregate:
        n, f = grads.shape[0], self.f
        kept = coordinate_sort(grads)[f : n - f]
        return Aggregate(update=kept.mean(dim=0))
