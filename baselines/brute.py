"""Brute-Force, also called minimum-diameter averaging (MDA), computed exactly.

References: El Mahdi El Mhamdi, Rachid Guerraoui, Sébastien Rouault, "The Hidden Vulnerability of
Distributed Learning in Byzantium", ICML 2018 (https://arxiv.org/abs/1802.07927), which defines
Brute; El-Mhamdi, Guerraoui, Guirguis, Hoang, Rouault, "Genuinely Distributed Byzantine Machine
Learning", PODC 2020 (https://arxiv.org/abs/1905.03853), which calls it MDA. The search is a
branch and bound for bounded vertex cover (Chen, Kanj, Jia, "Vertex Cover: Further Observations
and Further Improvements", J. Algorithms 2001, https://doi.org/10.1006/jagm.2001.1186).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import Tensor

from baselines._common import GAR, Aggregate, register_gar, uniform_over, weighted_sum

__all__ = ["Brute", "BruteForceBudgetWarning", "minimum_diameter_subset"]


class BruteForceBudgetWarning(RuntimeWarning):
    """The Brute-Force search ran out of nodes and returned the best subset it had found."""


@register_gar("brute")
class Brute(GAR):
    r"""Brute-Force / minimum-diameter averaging: the mean of the ``n - f`` submissions whose
    diameter is smallest,

    .. math:: S^* = \arg\min_{|S| = n - f} \max_{i, j \in S} \lVert V_i - V_j \rVert,
              \qquad u = \frac{1}{n - f} \sum_{i \in S^*} V_i .

    Linear: credit ``1/(n - f)`` on :math:`S^*`. Computed exactly, not by enumerating the
    :math:`\binom{n}{f}` subsets: a subset has diameter at most D iff the removed rows cover every
    pair farther apart than D, so the search is a bounded vertex cover (at most ``f`` removals) on
    the round's distance matrix, solved by branch and bound (high-degree and degree-one
    reductions, branching on a vertex or its whole neighbourhood). When honest gradients cluster,
    the far pairs force the removals and the search takes a handful of nodes.

    Ties: among subsets of minimum diameter the rule picks the one whose pairwise distances,
    sorted in decreasing order, are lexicographically smallest (so it also minimises the second
    largest distance, and so on); this makes the choice independent of the row order whenever the
    pairwise distances are distinct. Among exactly equal distances (duplicate rows, e.g. behind
    NNM) pairs are taken in index order (i, j), so the choice may then depend on the row order;
    the minimum diameter never does.

    Rows with NaN or Inf are at +inf distance from all others, so with at most ``f`` of them they
    are always removed; enormous rows likewise. With more than ``f`` Byzantine workers in a tight
    cluster (β ≥ 0.5 Random Fault) the minimum-diameter subset lies inside their cluster.

    The search stops after ``max_nodes`` branch-and-bound nodes; it then warns
    (``BruteForceBudgetWarning``) and returns the best subset found with ``exact=False``.

    Parameters
    ----------
    f : int
        Number of submissions removed (the Byzantine workers the rule is told to expect).
    n : int, optional
        Number of workers; when given, feasibility is checked now.
    max_nodes : int, default 200_000
        Node budget of the search per round.

    Raises
    ------
    ValueError
        If ``n < 2f + 1`` or ``max_nodes < 1``.

    Warns
    -----
    BruteForceBudgetWarning
        When the node budget ran out (the result then has ``exact=False``).

    References
    ----------
    El Mhamdi, Guerraoui, Rouault, ICML 2018, https://arxiv.org/abs/1802.07927;
    El-Mhamdi et al., PODC 2020, https://arxiv.org/abs/1905.03853

    Examples
    --------
    >>> import torch
    >>> grads = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [5.0, 5.0]])
    >>> result = Brute(f=1).aggregate(grads)
    >>> result.credit
    tensor([0.3333, 0.3333, 0.3333, 0.0000])
    >>> result.update, result.exact
    (tensor([0.3333, 0.3333]), True)
    """

    name = "brute"
    linear = True
    uses_distances = True
    bound = "n >= 2f+1"

    def __init__(self, *, f: int, n: int | None = None, max_nodes: int = 200_000) -> None:
        if isinstance(max_nodes, bool) or not isinstance(max_nodes, int) or max_nodes < 1:
            raise ValueError(f"Brute: max_nodes must be a positive integer, got {max_nodes!r}")
        self.max_nodes = max_nodes
        super().__init__(f=f, n=n)

    @classmethod
    def min_workers(cls, f: int) -> int:
        return 2 * f + 1

    def _params(self) -> dict:
        return {**super()._params(), "max_nodes": self.max_nodes}

    def _aggregate(self, grads: Tensor, distances: Tensor | None) -> Aggregate:
        kept, exact = minimum_diameter_subset(distances.cpu().numpy(), self.f, max_nodes=self.max_nodes)
        if not exact:
            warnings.warn(
                f"Brute: the search stopped after max_nodes={self.max_nodes} nodes (n={grads.shape[0]}, f={self.f}); "
                "returning the best subset found (Aggregate.exact=False). Raise max_nodes for an exact answer.",
                BruteForceBudgetWarning,
                stacklevel=3,
            )
        credit = uniform_over(torch.from_numpy(kept), grads)
        return Aggregate(update=weighted_sum(credit, grads), credit=credit, exact=exact)


class _BudgetExhausted(Exception):
    pass


class _CoverSearch:
    """Bounded vertex cover on a graph held as Python-int bitsets (one adjacency mask per vertex)."""

    def __init__(self, n: int, max_nodes: int) -> None:
        self.adj = [0] * n
        self.nodes = 0
        self.max_nodes = max_nodes

    def add_edge(self, u: int, v: int) -> None:
        self.adj[u] |= 1 << v
        self.adj[v] |= 1 << u

    def remove_edge(self, u: int, v: int) -> None:
        self.adj[u] &= ~(1 << v)
        self.adj[v] &= ~(1 << u)

    def neighbours(self, vertices: int) -> int:
        out = 0
        while vertices:
            low = vertices & -vertices
            out |= self.adj[low.bit_length() - 1]
            vertices ^= low
        return out

    def feasible(self, kept: int, everyone: int, budget: int) -> int | None:
        """A removal set of at most ``budget`` vertices covering every edge and avoiding ``kept``."""
        forced = self.neighbours(kept)  # an edge touching a kept vertex needs its other end removed
        if forced & kept or forced.bit_count() > budget:
            return None
        rest = self.cover(everyone & ~kept & ~forced, budget - forced.bit_count())
        return None if rest is None else forced | rest

    def cover(self, alive: int, k: int) -> int | None:
        """A vertex cover of the edges inside ``alive`` with at most ``k`` vertices, or ``None``."""
        self.nodes += 1
        if self.nodes > self.max_nodes:
            raise _BudgetExhausted
        adj = self.adj
        chosen = 0
        while True:  # reductions until none applies
            changed = False
            best_degree, best, degree_sum = 0, -1, 0
            pending = alive
            while pending:
                low = pending & -pending
                pending ^= low
                if not alive & low:
                    continue
                nbrs = adj[low.bit_length() - 1] & alive
                if not nbrs:  # isolated: never needed
                    alive &= ~low
                    continue
                degree = nbrs.bit_count()
                if degree > k or degree == 1:
                    # more neighbours than budget: the vertex itself must go; a leaf: take its neighbour
                    take = low if degree > k else nbrs
                    chosen |= take
                    alive &= ~take
                    k -= 1
                    changed = True
                    if k < 0:
                        return None
                    continue
                degree_sum += degree
                if degree > best_degree:
                    best_degree, best = degree, low.bit_length() - 1
            if not changed:
                break
        if best < 0:
            return chosen
        if k == 0 or degree_sum > 2 * k * best_degree:  # more edges than k vertices can cover
            return None
        low = 1 << best
        sub = self.cover(alive & ~low, k - 1)
        if sub is not None:
            return chosen | low | sub
        nbrs = adj[best] & alive
        if nbrs.bit_count() <= k:
            sub = self.cover(alive & ~nbrs & ~low, k - nbrs.bit_count())
            if sub is not None:
                return chosen | nbrs | sub
        return None


def minimum_diameter_subset(distances: np.ndarray, f: int, *, max_nodes: int = 200_000) -> tuple[np.ndarray, bool]:
    """``(kept, exact)``: the ``n - f`` rows of minimum diameter as a boolean mask, and whether
    the search finished within ``max_nodes`` nodes.

    ``distances`` is the ``[n, n]`` matrix of (squared) distances; only their order matters. Pairs
    are visited from the farthest down. Each pair is excluded from the subset (one end removed) if
    some removal set of at most ``f`` rows still covers it together with every pair excluded so
    far while keeping the pairs that had to be kept; otherwise both ends are kept. This greedy on
    the decreasing pair order yields the subset whose sorted pairwise distances are
    lexicographically smallest, minimum diameter first. A witness removal set is carried along, so
    only pairs it does not already cover start a search.
    """
    n = distances.shape[0]
    kept_mask = np.ones(n, dtype=bool)
    if f == 0:
        return kept_mask, True
    weights = np.nan_to_num(np.asarray(distances, dtype=np.float64), nan=np.inf)
    rows, cols = np.triu_indices(n, 1)
    w = weights[rows, cols]
    order = np.lexsort((cols, rows, -w))  # farthest first, ties by (i, j)
    everyone = (1 << n) - 1
    search = _CoverSearch(n, max_nodes)
    kept = forced = removal = 0
    exact = True
    position = 0
    try:
        order_list = order.tolist()
        for position in range(len(order_list)):
            e = order_list[position]
            u, v = int(rows[e]), int(cols[e])
            pair = (1 << u) | (1 << v)
            if (forced | removal) & pair:
                search.add_edge(u, v)  # already excluded by the current removal set
                continue
            if kept & pair == pair:
                continue  # both ends must stay: this distance is in the subset
            search.add_edge(u, v)
            witness = search.feasible(kept, everyone, f)
            if witness is not None:
                removal = witness
                continue
            search.remove_edge(u, v)
            kept |= pair
            forced = search.neighbours(kept)
            if kept.bit_count() == n - f:
                removal = everyone & ~kept
                break
            if forced.bit_count() == f:
                removal = forced
                break
    except _BudgetExhausted:
        exact = False
        # Best effort: keep the witness and, for the remaining pairs from the farthest, remove an
        # end that is not required to stay while removals are left.
        for e in order[position:].tolist():
            if removal.bit_count() >= f:
                break
            u, v = int(rows[e]), int(cols[e])
            if removal & ((1 << u) | (1 << v)):
                continue
            for end in (u, v):
                if not kept >> end & 1:
                    removal |= 1 << end
                    break
    # Defensive padding (unreachable when the search completes): remove the highest indices left.
    end = n - 1
    while removal.bit_count() < f and end >= 0:
        if not (kept | removal) >> end & 1:
            removal |= 1 << end
        end -= 1
    for i in range(n):
        kept_mask[i] = not removal >> i & 1
    return kept_mask, exact
