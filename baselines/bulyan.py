"""Bulyan.

Reference: El Mahdi El Mhamdi, Rachid Guerraoui, Sébastien Rouault, "The Hidden Vulnerability of
Distributed Learning in Byzantium", ICML 2018 (https://arxiv.org/abs/1802.07927).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from baselines._common import (
    GAR,
    Aggregate,
    argmin_tiebreak,
    bad_rows_np,
    coordinate_median,
    coordinate_sort,
    krum_scores_np,
    register_gar,
    sort_rows,
    sorted_columns,
)

__all__ = ["Bulyan"]


@register_gar("bulyan")
class Bulyan(GAR):
    r"""Bulyan: Krum-based selection of ``θ = n - 2f`` submissions, then per coordinate the mean
    of the ``β = θ - 2f`` selected values closest to their median.

    1. Selection: repeat θ times: on the ``n'`` rows not yet selected, take the Krum winner
       (smallest sum of squared distances to its ``n' - f - 2`` nearest remaining rows; at least
       one neighbour in the last rounds, where ``n' < 2f + 3``); equal scores go to the smaller
       score with one more neighbour, then to the lexicographically smaller row.
    2. Aggregation: for each coordinate k, with :math:`m_k` the median of the θ selected values,
       :math:`u_k` is the mean of the β selected values nearest to :math:`m_k`.

    Non-linear. The selection runs on the round's ``[n, n]`` distance matrix only; the
    d-dimensional work is one median and one top-k. Rows with NaN or Inf are at +inf distance and
    never selected while at most ``f`` rows are bad; an enormous row that slips into the
    selection is removed coordinate-wise in step 2. With more than ``f`` Byzantine workers in a
    tight cluster, the selection fills with them and the median lies in their cluster.

    Parameters
    ----------
    f : int
        Number of Byzantine workers the rule is told to expect.
    n : int, optional
        Number of workers; when given, feasibility is checked now.

    Raises
    ------
    ValueError
        If ``n < 4f + 3``.

    References
    ----------
    El Mhamdi, Guerraoui, Rouault, "The Hidden Vulnerability of Distributed Learning in
    Byzantium", ICML 2018, https://arxiv.org/abs/1802.07927

    Examples
    --------
    >>> import torch
    >>> grads = torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [9.0, 9.0]])
    >>> Bulyan(f=0).aggregate(grads).update  # f = 0: the median of all five, then their mean
    tensor([3., 3.])
    >>> grads = torch.tensor([[0.0], [1.0], [2.0], [3.0], [4.0], [5.0], [1e6]])
    >>> Bulyan(f=1).aggregate(grads).update  # selects 1..5 (θ = 5), averages 2, 3, 4 (β = 3)
    tensor([3.])
    """

    name = "bulyan"
    uses_distances = True
    bound = "n >= 4f+3"

    @classmethod
    def min_workers(cls, f: int) -> int:
        return 4 * f + 3

    def _aggregate(self, grads: Tensor, distances: Tensor | None) -> Aggregate:
        n, f = grads.shape[0], self.f
        theta, beta = n - 2 * f, n - 4 * f
        chosen = bulyan_selection(distances, f, theta, grads)
        selected = grads.index_select(0, chosen)
        return Aggregate(update=closest_to_median_mean(selected, beta))


def bulyan_selection(distances: Tensor, f: int, count: int, grads: Tensor) -> Tensor:
    """Indices of ``count`` rows chosen one by one by Krum on the rows not yet chosen."""
    d = distances.detach().cpu().numpy().copy()
    n = d.shape[0]
    bad = bad_rows_np(d)
    np.fill_diagonal(d, np.inf)
    alive = np.ones(n, dtype=bool)
    presorted = sort_rows(d)  # sorted once; each step zeroes the chosen columns instead of re-sorting
    chosen = []
    for step in range(count):  # loops over selections on the [n, n] matrix, not over d
        scores, next_scores = krum_scores_np(d, n - step - f - 2, alive, bad, presorted)
        if not np.isfinite(scores).any():  # only possible with more than f bad rows
            scores = np.where(alive, 0.0, np.inf)
        winner = argmin_tiebreak(scores, next_scores, grads)
        chosen.append(winner)
        alive[winner] = False
    return torch.tensor(chosen, dtype=torch.long, device=grads.device)


def closest_to_median_mean(values: Tensor, beta: int) -> Tensor:
    """``[d]``: per column of ``[m, d]`` values, the mean of the ``beta`` entries nearest the column
    median (NaN read as +inf).

    In a sorted column the ``beta`` values nearest any point form a contiguous window, the one whose
    farther end is nearest; so the ``m - beta + 1`` windows are compared at once and the chosen one
    is gathered, without a per-column top-k.
    """
    m = values.shape[0]
    starts = m - beta + 1
    if values.device.type == "cpu" and values.dtype in (torch.float32, torch.float64):
        ordered = torch.from_numpy(sorted_columns(values))  # [d, m]: numpy sorts short rows fastest
        median = ordered[:, m // 2] if m % 2 else 0.5 * (ordered[:, m // 2 - 1] + ordered[:, m // 2])
        # window s spans ordered[:, s] .. ordered[:, s + beta - 1]; its reach is its farther end's gap
        reach = torch.maximum(median[:, None] - ordered[:, :starts], ordered[:, beta - 1 :] - median[:, None])
        start = reach.nan_to_num(nan=float("inf")).argmin(dim=1)  # ties: the lower window
        index = start[:, None] + torch.arange(beta)
        return (ordered.gather(1, index).sum(dim=1, dtype=torch.float64) / beta).to(values.dtype)
    ordered = coordinate_sort(values)
    median = coordinate_median(ordered, presorted=True)
    low, high = ordered[:starts], ordered[beta - 1 :]  # window s spans ordered[s] .. ordered[s + beta - 1]
    reach = torch.maximum(median - low, high - median).nan_to_num(nan=float("inf"))
    start = reach.argmin(dim=0, keepdim=True)
    index = start + torch.arange(beta, device=values.device)[:, None]
    window = ordered.gather(0, index).sum(dim=0, dtype=torch.float64)
    return (window / beta).to(values.dtype)
