"""Shared pieces of the aggregation rules: the result type, the rule and pre-aggregator base
classes, validation, and the tensor math several rules use (cf. Flower's ``aggregate.py``).

Conventions used throughout ``baselines/``:

- ``grads`` is a ``[n, d]`` floating tensor, one row per worker; results keep its dtype and device.
- Pairwise squared distances are ``[n, n]`` float64 in the Gram form, computed once per round
  (``pairwise_sq_distances`` here, the same contract as ``byz_gym.sim.geometry.pairwise_sq_distances``);
  a row with a NaN or Inf entry is at distance +inf from every other row.
- Coordinate-wise statistics read a NaN entry as +inf: an attacker's NaN counts as the most extreme
  value, so it is the first to be trimmed.
- Linear rules return a credit vector on the simplex and ``update == credit @ grads``, where rows
  with zero credit contribute nothing even if they hold NaN or Inf (as in the simulator's ``apply``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from byz_gym.registry import Registry
from byz_gym.sim.geometry import finite_rows, pairwise_sq_distances

__all__ = [
    "Aggregate",
    "GAR",
    "GARS",
    "PRE_AGGREGATORS",
    "PreAggregator",
    "apply_mixing",
    "argmin_tiebreak",
    "bad_rows",
    "bad_rows_np",
    "check_distances",
    "check_grads",
    "coordinate_median",
    "coordinate_sort",
    "finite_rows",
    "krum_scores",
    "krum_scores_np",
    "mixed_sq_distances",
    "one_hot",
    "rank_tiebreak",
    "register_gar",
    "register_pre_aggregator",
    "sort_rows",
    "sorted_columns",
    "pairwise_sq_distances",
    "uniform_over",
    "weighted_sum",
]


# -- result ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Aggregate:
    """What a rule returns for one round.

    Attributes
    ----------
    update : Tensor
        ``[d]`` aggregated gradient, in the dtype and on the device of the input.
    credit : Tensor or None
        ``[n]`` credit on the simplex for linear rules (``update == credit @ grads``, zero-credit
        rows excluded); ``None`` for non-linear rules.
    exact : bool
        ``False`` when a budgeted search (Brute-Force) stopped before proving its answer optimal.
    """

    update: Tensor
    credit: Tensor | None = None
    exact: bool = True


# -- validation ----------------------------------------------------------------------------------
def _check_count(value: Any, what: str, owner: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{owner}: {what} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_grads(grads: Any, owner: str) -> Tensor:
    """``grads`` as given if it is a ``[n, d]`` floating tensor with n, d >= 1; ``TypeError`` or
    ``ValueError`` saying what was expected otherwise."""
    if not isinstance(grads, Tensor):
        raise TypeError(
            f"{owner}.aggregate takes a [n, d] torch.Tensor, got {type(grads).__name__}; "
            "convert once at the boundary, e.g. torch.as_tensor(array, dtype=torch.float32)"
        )
    if grads.ndim != 2 or grads.shape[0] < 1 or grads.shape[1] < 1:
        raise ValueError(f"{owner}.aggregate expects grads of shape [n, d] with n, d >= 1, got {tuple(grads.shape)}")
    if not grads.is_floating_point():
        raise ValueError(f"{owner}.aggregate expects a floating tensor, got dtype {grads.dtype}")
    return grads


def check_distances(grads: Tensor, distances: Tensor | None, owner: str) -> Tensor:
    """The round's ``[n, n]`` float64 squared distances: ``distances`` if given (checked, then
    symmetrised so that ties are exact), else ``pairwise_sq_distances(grads)``."""
    if distances is None:
        return pairwise_sq_distances(grads)
    n = grads.shape[0]
    if not isinstance(distances, Tensor) or distances.shape != (n, n):
        shape = tuple(distances.shape) if isinstance(distances, Tensor) else type(distances).__name__
        raise ValueError(
            f"{owner}: distances must be the [n, n] = [{n}, {n}] squared-distance tensor of the same round, got {shape}"
        )
    distances = distances.to(device=grads.device, dtype=torch.float64)
    return 0.5 * (distances + distances.T)


# -- base classes ----------------------------------------------------------------------------------
class GAR:
    """Base class of a gradient aggregation rule.

    Subclasses set ``name`` (the registry key), ``linear``, ``uses_distances``, ``bound`` (the
    feasibility condition as text) and ``min_workers(f)``, and implement ``_aggregate``. The
    constructor validates ``f`` and, when ``n`` is given, feasibility; otherwise feasibility is
    checked on the first ``aggregate`` call against the number of rows.
    """

    name: ClassVar[str] = ""
    linear: ClassVar[bool] = False  # returns a credit vector on the simplex
    uses_distances: ClassVar[bool] = False  # reads the [n, n] pairwise squared distances
    bound: ClassVar[str] = "n >= f+1"

    def __init__(self, *, f: int, n: int | None = None) -> None:
        owner = type(self).__name__
        self.f = _check_count(f, "f (the number of Byzantine workers to tolerate)", owner, 0)
        self.n = None if n is None else _check_count(n, "n (the number of workers)", owner, 1)
        if self.n is not None:
            self.check_feasible(self.n)

    # -- feasibility --
    @classmethod
    def min_workers(cls, f: int) -> int:
        """Smallest n the rule accepts for ``f`` Byzantine workers."""
        return f + 1

    @classmethod
    def max_f(cls, n: int) -> int:
        """Largest f the rule accepts with ``n`` workers (-1 if none)."""
        f = -1
        while cls.min_workers(f + 1) <= n:
            f += 1
        return f

    def check_feasible(self, n: int) -> None:
        """``ValueError`` naming the bound, the values and a fix when ``(n, f)`` is infeasible."""
        need = self.min_workers(self.f)
        if n < need:
            largest = self.max_f(n)
            fix = f"lower f to at most {largest}" if largest >= 0 else "use more workers"
            raise ValueError(
                f"{type(self).__name__} needs {self.bound}; got n={n}, f={self.f}; {fix} or add workers (n >= {need})"
            )

    # -- protocol --
    @torch.no_grad()
    def aggregate(self, grads: Tensor, distances: Tensor | None = None) -> Aggregate:
        """Aggregate one round of ``[n, d]`` gradients.

        ``distances`` is the round's ``[n, n]`` squared-distance matrix if already computed
        (e.g. shared by several rules); it is computed here when a rule needs it and it is not given.
        """
        grads = check_grads(grads, type(self).__name__)
        n = grads.shape[0]
        if self.n is not None and n != self.n:
            raise ValueError(
                f"{type(self).__name__} was built for n={self.n} workers but got {n} rows; build it with n={n}"
            )
        if self.n is None:
            self.check_feasible(n)
        if self.uses_distances:
            distances = check_distances(grads, distances, type(self).__name__)
        return self._aggregate(grads, distances)

    __call__ = aggregate

    def _aggregate(self, grads: Tensor, distances: Tensor | None) -> Aggregate:
        raise NotImplementedError

    def reset(self, seed: int | None = None) -> None:
        """Forget state between episodes (stateful rules only); ``seed`` reseeds random ones."""

    def _params(self) -> dict[str, Any]:
        return {"f": self.f, "n": self.n}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        return f"{type(self).__name__}({args})"


class PreAggregator:
    """Base class of a pre-aggregator: a linear map of the ``n`` submissions to ``m`` mixed rows
    placed in front of any rule (``baselines.make("krum", ..., pre=["nnm"])``).

    ``mix`` returns the mixed rows and the ``[m, n]`` mixing matrix whose rows lie on the simplex,
    so a linear rule behind it stays linear (its credit is ``inner_credit @ mixing``). A mixed row
    that puts weight on a non-finite submission is itself non-finite (NaN).
    """

    name: ClassVar[str] = ""
    uses_distances: ClassVar[bool] = False

    def out_workers(self, n: int) -> int:
        """Number of rows ``mix`` returns for ``n`` submissions."""
        return n

    def check_feasible(self, n: int) -> None:
        """``ValueError`` if the pre-aggregator cannot take ``n`` submissions."""

    def mixing(self, grads: Tensor, distances: Tensor | None) -> Tensor:
        """``[m, n]`` float64 mixing matrix for this round (rows on the simplex)."""
        raise NotImplementedError

    @torch.no_grad()
    def mix(self, grads: Tensor, distances: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(mixed [m, d], mixing [m, n])`` for one round of ``[n, d]`` gradients."""
        grads = check_grads(grads, type(self).__name__)
        self.check_feasible(grads.shape[0])
        if self.uses_distances:
            distances = check_distances(grads, distances, type(self).__name__)
        matrix = self.mixing(grads, distances)
        return apply_mixing(matrix, grads), matrix

    def reset(self, seed: int | None = None) -> None:
        """Reseed (random pre-aggregators) at the start of an episode."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


GARS: Registry[GAR] = Registry("aggregation rule")
register_gar: Callable[[str], Callable] = GARS.register
PRE_AGGREGATORS: Registry[PreAggregator] = Registry("pre-aggregator")
register_pre_aggregator: Callable[[str], Callable] = PRE_AGGREGATORS.register


# -- linear combinations -----------------------------------------------------------------------------
def weighted_sum(credit: Tensor, grads: Tensor) -> Tensor:
    """``credit @ grads`` over the rows with non-zero credit only (so a NaN row with zero credit
    does not turn the sum into NaN), in the dtype of ``grads``."""
    credit = credit.to(grads.dtype)
    support = torch.nonzero(credit).squeeze(1)
    if support.numel() == grads.shape[0]:
        return credit @ grads
    if 2 * support.numel() > grads.shape[0]:
        # Copying most rows costs more than the product over all of them. A NaN or Inf anywhere,
        # even in a zero-credit row, leaves a NaN in the product, so a finite one is the answer.
        update = credit @ grads
        if bool(torch.isfinite(update).all()):
            return update
    return credit.index_select(0, support) @ grads.index_select(0, support)


def one_hot(index: int, n: int, like: Tensor) -> Tensor:
    """``[n]`` credit 1 at ``index``, in the dtype and on the device of ``like``."""
    credit = torch.zeros(n, dtype=like.dtype, device=like.device)
    credit[index] = 1.0
    return credit


def uniform_over(mask: Tensor, like: Tensor) -> Tensor:
    """``[n]`` credit 1/|S| on the rows where ``mask`` is True, 0 elsewhere."""
    mask = mask.to(like.device)
    return mask.to(like.dtype) / mask.sum().to(like.dtype)


def apply_mixing(matrix: Tensor, grads: Tensor) -> Tensor:
    """``matrix @ grads`` for a ``[m, n]`` mixing matrix; rows putting weight on a non-finite
    submission come out NaN (instead of the 0 * Inf = NaN of a plain product elsewhere). Equal
    rows of ``matrix`` (NNM often makes them) give bitwise equal mixed rows."""
    finite = finite_rows(grads)
    clean = grads if bool(finite.all()) else torch.where(finite[:, None], grads, torch.zeros_like(grads))
    unique, inverse = torch.unique(matrix, dim=0, return_inverse=True)
    mixed = (unique.to(grads.dtype) @ clean)[inverse]
    tainted = (matrix[:, ~finite] != 0).any(dim=1)
    if bool(tainted.any()):
        mixed[tainted] = float("nan")
    return mixed


def mixed_sq_distances(distances: Tensor, matrix: Tensor, bad: Tensor) -> Tensor:
    """Squared distances between the rows of ``matrix @ grads`` from those of ``grads``, without
    touching the d-dimensional vectors: for w = Mᵢ − Mⱼ (entries summing to 0),
    ‖w·V‖² = −½ wᵀ D w. ``bad`` flags the non-finite submissions; mixed rows putting weight on
    one of them are at +inf from every other row. Equal rows of ``matrix`` get bitwise equal
    distances (exact ties, which the rules' tie-breaks then resolve by value).
    """
    unique, inverse = torch.unique(matrix.to(torch.float64), dim=0, return_inverse=True)
    finite_d = torch.where(torch.isfinite(distances), distances, torch.zeros_like(distances))
    a = unique @ finite_d @ unique.T
    diag = torch.diagonal(a)
    small = (a - 0.5 * diag[:, None] - 0.5 * diag[None, :]).clamp_min_(0.0)
    small = 0.5 * (small + small.T)
    mixed = small[inverse][:, inverse]
    tainted = (matrix[:, bad] != 0).any(dim=1)
    mixed[tainted, :] = float("inf")
    mixed[:, tainted] = float("inf")
    return mixed.fill_diagonal_(0.0)


# -- coordinate-wise statistics ----------------------------------------------------------------------
def coordinate_sort(grads: Tensor) -> Tensor:
    """``[n, d]`` each column sorted ascending, with NaN read as +inf.

    On CPU (float32/float64) numpy's sort of the transposed rows is several times faster than
    ``torch.sort`` along dim 0 for the short columns of a round (n values each).
    """
    if grads.device.type == "cpu" and grads.dtype in (torch.float32, torch.float64):
        return torch.from_numpy(sorted_columns(grads)).T
    values = torch.nan_to_num(grads, nan=float("inf"), posinf=float("inf"), neginf=float("-inf"))
    return values.sort(dim=0).values


def sorted_columns(grads: Tensor) -> np.ndarray:
    """``[d, n]`` numpy array: column k of ``grads`` sorted ascending in row k, NaN read as +inf
    (numpy sorts NaN last, so only the last entries need a look)."""
    columns = np.array(grads.detach().numpy().T, order="C")  # a copy, sorted in place (one 5 MB copy less)
    columns.sort(axis=1)
    if np.isnan(columns[:, -1]).any():
        np.nan_to_num(columns, copy=False, nan=np.inf, posinf=np.inf, neginf=-np.inf)
    return columns


def coordinate_median(grads: Tensor, *, presorted: bool = False) -> Tensor:
    """``[d]`` coordinate-wise median (mean of the two middle values when n is even), NaN read as +inf."""
    values = grads if presorted else coordinate_sort(grads)
    n = values.shape[0]
    if n % 2:
        return values[n // 2].clone()
    return 0.5 * (values[n // 2 - 1] + values[n // 2])


# -- distance-based scores ------------------------------------------------------------------------------
def bad_rows(distances: Tensor) -> Tensor:
    """``bool[n]``: rows at +inf distance from every other row (the non-finite submissions)."""
    n = distances.shape[0]
    if n == 1:
        return torch.zeros(1, dtype=torch.bool, device=distances.device)
    return torch.isinf(distances).sum(dim=1) == n - 1


def krum_scores(
    distances: Tensor, neighbours: int, alive: Tensor | None = None, bad: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """``(scores, next_scores)``, both ``[n]`` float64.

    ``scores``: Krum's score of each row, the sum of its ``neighbours`` smallest squared distances
    to the other alive rows (``neighbours`` clipped to [1, alive − 1]; Blanchard et al. (2017) use
    n − f − 2). ``next_scores``: the same with one more neighbour, the tie-break between equal
    scores (mutual nearest neighbours always tie when ``neighbours`` is 1). Rows not alive, and
    non-finite rows (``bad``, computed from ``distances`` if not given), get +inf in both. Sums run
    over sorted values, so they do not depend on the row order.
    """
    d = distances.detach().cpu().numpy()
    n = d.shape[0]
    alive_np = np.ones(n, dtype=bool) if alive is None else alive.cpu().numpy()
    bad_np = bad_rows_np(d) if bad is None else bad.cpu().numpy()
    masked = d.copy()
    np.fill_diagonal(masked, np.inf)
    scores, next_scores = krum_scores_np(masked, neighbours, alive_np, bad_np)
    return torch.from_numpy(scores).to(distances.device), torch.from_numpy(next_scores).to(distances.device)


def bad_rows_np(d: np.ndarray) -> np.ndarray:
    n = d.shape[0]
    return np.isinf(d).sum(axis=1) == n - 1 if n > 1 else np.zeros(n, dtype=bool)


def krum_scores_np(
    masked: np.ndarray,
    neighbours: int,
    alive: np.ndarray,
    bad: np.ndarray,
    presorted: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``krum_scores`` on a float64 numpy matrix whose diagonal is already +inf (small [n, n]
    arrays are several times cheaper in numpy than in torch, which matters in Bulyan's loop).

    ``presorted`` is ``sort_rows(masked)``, for callers that score shrinking sets of alive rows
    on one matrix: the sums then run over each row's sorted distances with the dead columns
    zeroed, which adds the same values in the same order as sorting the alive ones anew.
    """
    n = masked.shape[0]
    count = int(alive.sum())
    if count <= 1:
        scores = np.zeros(n)
        next_scores = np.zeros(n)
    else:
        k = max(1, min(int(neighbours), count - 1))
        last = min(k + 1, count - 1)
        order, ordered = presorted if presorted is not None else sort_rows(masked)
        if count == n:
            sums = ordered[:, :last].cumsum(axis=1)
            scores, next_scores = sums[:, k - 1].copy(), sums[:, -1].copy()
        else:
            keep = alive[order]  # [n, n]: is the j-th nearest column of row i alive
            sums = np.where(keep, ordered, 0.0).cumsum(axis=1)
            seen = keep.cumsum(axis=1)  # alive columns among the j + 1 nearest
            rows = np.arange(n)
            scores = sums[rows, (seen < k).sum(axis=1)]
            next_scores = sums[rows, (seen < last).sum(axis=1)]
    out = ~alive | bad | ~np.isfinite(scores)
    scores[out] = np.inf
    next_scores[out] = np.inf
    return scores, next_scores


def sort_rows(masked: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(order, values)``: each row's column indices by increasing distance, and the sorted distances."""
    order = np.argsort(masked, axis=1, kind="stable")
    return order, np.take_along_axis(masked, order, axis=1)


def argmin_tiebreak(primary: Tensor | np.ndarray, secondary: Tensor | np.ndarray, grads: Tensor) -> int:
    """Index of the smallest ``primary``; exact ties go to the smallest ``secondary``, then to the
    row of ``grads`` that comes first in lexicographic order (then the lowest index, for identical
    rows). Every step depends on values only, so the chosen row does not depend on the row order.
    The loop runs over exactly tied rows only (symmetric configurations or duplicates)."""
    primary = primary.cpu().numpy() if isinstance(primary, Tensor) else primary
    secondary = secondary.cpu().numpy() if isinstance(secondary, Tensor) else secondary
    candidates = np.flatnonzero(primary == primary.min())
    if candidates.size > 1:
        second = secondary[candidates]
        candidates = candidates[second == second.min()]
    winner = int(candidates[0])
    for i in candidates[1:].tolist():
        differ = torch.nonzero(grads[i] != grads[winner])
        if differ.numel() and bool(grads[i, differ[0, 0]] < grads[winner, differ[0, 0]]):
            winner = i
    return winner


def rank_tiebreak(primary: Tensor, secondary: Tensor) -> Tensor:
    """Indices sorted by ``primary``, then ``secondary``, then index."""
    order = torch.sort(secondary, stable=True).indices
    return order[torch.sort(primary[order], stable=True).indices]
