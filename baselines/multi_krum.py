"""Multi-Krum.

Reference: Peva Blanchard, El Mahdi El Mhamdi, Rachid Guerraoui, Julien Stainer, "Machine Learning
with Adversaries: Byzantine Tolerant Gradient Descent", NeurIPS 2017, Section 5
(https://papers.nips.cc/paper/2017/hash/f4b9ec30ad9f68f89b29639786cb62ef-Abstract.html).
"""

from __future__ import annotations

import torch
from torch import Tensor

from baselines._common import GAR, Aggregate, krum_scores, rank_tiebreak, register_gar, uniform_over, weighted_sum

__all__ = ["MultiKrum"]


@register_gar("multi_krum")
class MultiKrum(GAR):
    r"""Multi-Krum: the average of the ``m`` submissions with the best Krum scores.

    Scores are Krum's (sum of squared distances to the ``n - f - 2`` nearest other rows); the
    ``m`` lowest are averaged; equal scores are ordered by the score with one more neighbour,
    then by index. Linear: credit ``1/m`` on the
    selected rows. ``m = 1`` is Krum; the default ``m = n - f`` is the paper's choice. Rows with
    NaN or Inf are at +inf distance, so with at most ``f`` of them they are never selected
    (``m <= n - f``). With more than ``f`` Byzantine workers forming a tight cluster, the cluster
    has the best scores and fills the selection.

    Parameters
    ----------
    f : int
        Number of Byzantine workers the rule is told to expect.
    n : int, optional
        Number of workers; when given, feasibility is checked now.
    m : int, optional
        Number of rows averaged, ``1 <= m <= n - f``; default ``n - f``.

    Raises
    ------
    ValueError
        If ``n < 2f + 3`` or ``m`` is outside ``[1, n - f]``.

    References
    ----------
    Blanchard et al., NeurIPS 2017, Section 5,
    https://papers.nips.cc/paper/2017/hash/f4b9ec30ad9f68f89b29639786cb62ef-Abstract.html

    Examples
    --------
    >>> import torch
    >>> grads = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [9.0, 9.0]])
    >>> result = MultiKrum(f=0, m=3).aggregate(grads)
    >>> result.update
    tensor([0.6667, 0.6667])
    >>> result.credit
    tensor([0.3333, 0.3333, 0.3333, 0.0000])
    """

    name = "multi_krum"
    linear = True
    uses_distances = True
    bound = "n >= 2f+3"

    def __init__(self, *, f: int, n: int | None = None, m: int | None = None) -> None:
        if m is not None and (isinstance(m, bool) or not isinstance(m, int) or m < 1):
            raise ValueError(f"MultiKrum: m must be a positive integer (rows averaged) or None, got {m!r}")
        self.m = m
        super().__init__(f=f, n=n)

    @classmethod
    def min_workers(cls, f: int) -> int:
        return 2 * f + 3

    def check_feasible(self, n: int) -> None:
        super().check_feasible(n)
        if self.m is not None and self.m > n - self.f:
            raise ValueError(f"MultiKrum needs 1 <= m <= n - f; got m={self.m}, n={n}, f={self.f}; lower m")

    def _params(self) -> dict:
        return {**super()._params(), "m": self.m}

    def _aggregate(self, grads: Tensor, distances: Tensor | None) -> Aggregate:
        n = grads.shape[0]
        m = n - self.f if self.m is None else self.m
        scores, totals = krum_scores(distances, n - self.f - 2)
        chosen = rank_tiebreak(scores, totals)[:m]
        mask = torch.zeros(n, dtype=torch.bool, device=grads.device)
        mask[chosen] = True
        credit = uniform_over(mask, grads)
        return Aggregate(update=weighted_sum(credit, grads), credit=credit)
