"""GeoMed as used in the GAA paper: the medoid, the submission minimising the sum of distances.

References: Yudong Chen, Lili Su, Jiaming Xu, "Distributed Statistical Machine Learning in
Adversarial Settings: Byzantine Gradient Descent", POMACS 2017 (https://arxiv.org/abs/1705.05491);
Pan et al., "Justinian's GAAvernor", USENIX Security 2020
(https://www.usenix.org/conference/usenixsecurity20/presentation/pan), which uses the medoid form.
For the Weiszfeld approximation of the true geometric median see ``geometric_median``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from baselines._common import GAR, Aggregate, argmin_tiebreak, bad_rows, one_hot, register_gar, weighted_sum

__all__ = ["GeoMed"]


@register_gar("geomed")
class GeoMed(GAR):
    r"""Medoid ("GeoMed" in the GAA paper): the submission with the smallest sum of Euclidean
    distances to all others,

    .. math:: u = V_{i^*}, \qquad i^* = \arg\min_i \sum_j \lVert V_i - V_j \rVert .

    Linear: one-hot credit on :math:`i^*`. Exact ties (two rows at n = 2, symmetric
    configurations) go to the smaller sum of squared distances, then to the lexicographically
    smaller row, so the choice never depends on the row order. (In one dimension with even n the
    two middle points have the same sum in exact arithmetic; rounding then picks one of them.) A row with NaN or Inf is
    at +inf distance from every row; since that adds the same +inf to every candidate's sum, sums
    run over the finite rows only and non-finite rows are never chosen. With at most ``f < n/2``
    bad rows the medoid is an ordinary row. With a Byzantine majority (β ≥ 0.5) in a tight
    cluster, the medoid is one of theirs.

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
    Chen, Su, Xu, POMACS 2017, https://arxiv.org/abs/1705.05491; Pan et al., USENIX Security 2020.

    Examples
    --------
    >>> import torch
    >>> grads = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [6.0, 6.0]])
    >>> GeoMed(f=1).aggregate(grads).credit
    tensor([0., 1., 0., 0.])
    """

    name = "geomed"
    linear = True
    uses_distances = True
    bound = "n >= 2f+1"

    @classmethod
    def min_workers(cls, f: int) -> int:
        return 2 * f + 1

    def _aggregate(self, grads: Tensor, distances: Tensor | None) -> Aggregate:
        n = grads.shape[0]
        scores = medoid_scores(distances)
        totals = (
            torch.where(torch.isfinite(distances), distances, torch.zeros_like(distances)).sort(dim=1).values.sum(1)
        )
        credit = one_hot(argmin_tiebreak(scores, totals, grads), n, grads)
        return Aggregate(update=weighted_sum(credit, grads), credit=credit)


def medoid_scores(distances: Tensor) -> Tensor:
    """``[n]`` sum of Euclidean distances to the finite rows; +inf for non-finite rows."""
    bad = bad_rows(distances)
    dist = distances.clamp_min(0.0).sqrt()
    dist = torch.where(bad[None, :], torch.zeros_like(dist), dist)
    scores = dist.sort(dim=1).values.sum(dim=1)  # sorted: the sum does not depend on the row order
    return torch.where(bad | ~torch.isfinite(scores), torch.full_like(scores, float("inf")), scores)
