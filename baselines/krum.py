"""Krum.

Reference: Peva Blanchard, El Mahdi El Mhamdi, Rachid Guerraoui, Julien Stainer, "Machine Learning
with Adversaries: Byzantine Tolerant Gradient Descent", NeurIPS 2017
(https://papers.nips.cc/paper/2017/hash/f4b9ec30ad9f68f89b29639786cb62ef-Abstract.html).
"""

from __future__ import annotations

from torch import Tensor

from baselines._common import GAR, Aggregate, argmin_tiebreak, krum_scores, one_hot, register_gar, weighted_sum

__all__ = ["Krum"]


@register_gar("krum")
class Krum(GAR):
    r"""Krum: the submission closest to its ``n - f - 2`` nearest neighbours.

    .. math:: s(i) = \sum_{j \in N_i} \lVert V_i - V_j \rVert^2, \qquad u = V_{i^*},\;
              i^* = \arg\min_i s(i),

    where :math:`N_i` holds the ``n - f - 2`` rows nearest to :math:`V_i` (other than itself).
    Linear: the credit is one-hot on :math:`i^*`. Equal scores (mutual nearest neighbours always
    tie when ``n - f - 2 = 1``) go to the smaller score with one more neighbour, then to the
    lexicographically smaller row, so the choice never depends on the row order. Distances are the
    round's float64 squared distances (shared, see ``aggregate(grads, distances)``); rows with a
    NaN or Inf entry are at +inf distance, so with at most ``f`` of them (or of enormous rows) the
    winner is a finite, ordinary row. When more than ``f`` workers are Byzantine and they submit
    nearly identical vectors (the paper's Random Fault), their cluster has the smallest scores and
    Krum selects one of them: this is why Krum fails at β = 0.7.

    Parameters
    ----------
    f : int
        Number of Byzantine workers the rule is told to expect.
    n : int, optional
        Number of workers; when given, feasibility is checked now.

    Raises
    ------
    ValueError
        If ``n < 2f + 3``.

    References
    ----------
    Blanchard et al., "Machine Learning with Adversaries: Byzantine Tolerant Gradient Descent",
    NeurIPS 2017, https://papers.nips.cc/paper/2017/hash/f4b9ec30ad9f68f89b29639786cb62ef-Abstract.html

    Examples
    --------
    >>> import torch
    >>> grads = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [9.0, 9.0]])
    >>> result = Krum(f=0).aggregate(grads)
    >>> result.update, result.credit
    (tensor([0., 0.]), tensor([1., 0., 0., 0.]))
    """

    name = "krum"
    linear = True
    uses_distances = True
    bound = "n >= 2f+3"

    @classmethod
    def min_workers(cls, f: int) -> int:
        return 2 * f + 3

    def _aggregate(self, grads: Tensor, distances: Tensor | None) -> Aggregate:
        n = grads.shape[0]
        scores, totals = krum_scores(distances, n - self.f - 2)
        credit = one_hot(argmin_tiebreak(scores, totals, grads), n, grads)
        return Aggregate(update=weighted_sum(credit, grads), credit=credit)
