"""Geometric median by the smoothed Weiszfeld algorithm (robust federated aggregation, RFA).

References: Krishna Pillutla, Sham M. Kakade, Zaid Harchaoui, "Robust Aggregation for Federated
Learning", IEEE Transactions on Signal Processing 2022 (https://arxiv.org/abs/1912.13445);
Endre Weiszfeld, "Sur le point pour lequel la somme des distances de n points donnés est minimum",
Tohoku Mathematical Journal 1937; Yehuda Vardi, Cun-Hui Zhang, "The multivariate L1-median and
associated data depth", PNAS 2000 (https://doi.org/10.1073/pnas.97.4.1423). For the GAA paper's
medoid form see ``geomed``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from baselines._common import (
    GAR,
    Aggregate,
    bad_rows_np,
    coordinate_median,
    finite_rows,
    register_gar,
    weighted_sum,
)
from byz_gym.sim.geometry import one_blas_thread

__all__ = ["GeometricMedian"]


@register_gar("geometric_median")
class GeometricMedian(GAR):
    r"""Geometric median :math:`\arg\min_z \sum_i \lVert z - V_i \rVert`, approximated by the
    smoothed Weiszfeld iteration

    .. math:: z_{t+1} = \frac{\sum_i w_i V_i}{\sum_i w_i}, \qquad
              w_i = \frac{1}{\max(\nu, \lVert z_t - V_i \rVert)},

    started at the mean of the finite rows and stopped when the objective changes by less than
    ``tol`` relative to itself, or after ``max_iter`` iterations. An iterate within ``nu`` of data
    points takes the Vardi-Zhang step instead, so it does not stall on a point that is not the
    median. Every iterate is a convex combination :math:`z = \sum_j c_j V_j`, so the iteration runs
    on the coefficients c with the round's shared squared distances D:
    :math:`\lVert V_i - z \rVert^2 = (Dc)_i - \tfrac12 c^\top D c` — O(n²) per iteration, and one
    pass over the d coordinates at the end. (Rounds whose farthest pair is more than 1e10 times the
    median squared distance, i.e. enormous attacker rows, iterate on the vectors instead, from the
    coordinate-wise median.) Near a data point, or where the objective is nearly
    flat (almost collinear rows), Weiszfeld crawls: the result is an approximation whose objective
    is typically within 1e-6 (relative) of the minimum, and on such degenerate rounds within about
    1e-3 after ``max_iter`` iterations.

    Non-linear as far as the env is concerned (``credit`` is ``None``, the update goes through
    ``step_update``), as the design lists it. Rows with NaN or Inf are at infinite distance and get
    weight 0; enormous rows get a tiny weight. Breakdown point 1/2: with at most ``f < n/2`` bad
    rows the result stays near the honest ones; a Byzantine majority pulls it into their cluster.
    Permutation invariant and translation equivariant (up to the stopping tolerance).

    Parameters
    ----------
    f : int
        Number of Byzantine workers the rule is told to expect (only used to check ``n >= 2f+1``).
    n : int, optional
        Number of workers; when given, feasibility is checked now.
    nu : float, default 1e-6
        Smoothing: distances below ``nu`` count as ``nu``, and rows that close to the iterate
        count as coinciding with it.
    tol : float, default 1e-10
        Relative change of the objective below which the iteration stops (iterations on the
        coefficients cost O(n²), so a tight tolerance is cheap).
    max_iter : int, default 200
        Iteration cap.

    Raises
    ------
    ValueError
        If ``n < 2f + 1`` or a knob is not positive.

    References
    ----------
    Pillutla, Kakade, Harchaoui, "Robust Aggregation for Federated Learning", IEEE TSP 2022,
    https://arxiv.org/abs/1912.13445

    Examples
    --------
    >>> import torch
    >>> grads = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [100.0, 100.0]])
    >>> GeometricMedian(f=1).aggregate(grads).update
    tensor([0.5000, 0.5000])
    """

    name = "geometric_median"
    uses_distances = True
    bound = "n >= 2f+1"

    def __init__(
        self, *, f: int, n: int | None = None, nu: float = 1e-6, tol: float = 1e-10, max_iter: int = 200
    ) -> None:
        for knob, value in (("nu", nu), ("tol", tol)):
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not (math.isfinite(value) and value > 0)
            ):
                raise ValueError(f"GeometricMedian: {knob} must be a finite positive number, got {value!r}")
        if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
            raise ValueError(f"GeometricMedian: max_iter must be a positive integer, got {max_iter!r}")
        self.nu, self.tol, self.max_iter = float(nu), float(tol), max_iter
        super().__init__(f=f, n=n)

    @classmethod
    def min_workers(cls, f: int) -> int:
        return 2 * f + 1

    def _params(self) -> dict:
        return {**super()._params(), "nu": self.nu, "tol": self.tol, "max_iter": self.max_iter}

    def _aggregate(self, grads: Tensor, distances: Tensor | None) -> Aggregate:
        if well_scaled(distances):
            coefficients, _ = weiszfeld(distances, nu=self.nu, tol=self.tol, max_iter=self.max_iter)
            return Aggregate(update=weighted_sum(coefficients, grads))
        z, _ = weiszfeld_direct(grads, nu=self.nu, tol=self.tol, max_iter=self.max_iter)
        return Aggregate(update=z.to(grads.dtype))


SPREAD_LIMIT = 1e10  # largest / median finite squared distance for the coefficient form


def well_scaled(distances: Tensor) -> bool:
    """Whether ‖Vᵢ − z‖² = (Dc)ᵢ − ½ cᵀDc is accurate: it subtracts terms as large as the
    farthest pair, so rows a million times farther than typical (enormous attacker rows) would
    drown the honest distances in rounding; those rounds take ``weiszfeld_direct``."""
    n = distances.shape[0]
    if n < 3:
        return True
    off = distances[~torch.eye(n, dtype=torch.bool, device=distances.device)]
    off = off[torch.isfinite(off)]
    if off.numel() == 0:
        return True
    typical = float(off.median())
    return float(off.max()) <= SPREAD_LIMIT * max(typical, 1e-300) or float(off.max()) == 0.0


def _smoothed_weiszfeld(
    start: np.ndarray,
    *,
    finite: np.ndarray,
    distances_to: Callable[[np.ndarray], np.ndarray],
    combine: Callable[[np.ndarray], np.ndarray],
    separation: Callable[[np.ndarray, np.ndarray], float],
    nu: float,
    tol: float,
    max_iter: int,
) -> tuple[np.ndarray, int]:
    """The smoothed Weiszfeld iteration with the Vardi-Zhang correction, on any representation of
    the iterate: ``distances_to(point)`` gives ‖Vᵢ − z‖ for every row, ``combine(w)`` the point
    Σ wᵢ Vᵢ for weights w on the simplex, ``separation(p, q)`` the distance ‖p − q‖ between two points."""
    point = start
    dist = distances_to(point)
    objective = float(dist[finite].sum())
    iterations = 0
    for iterations in range(1, max_iter + 1):  # noqa: B007  (reported to the caller)
        coincident = finite & (dist <= nu)
        weights = np.where(finite & ~coincident, 1.0 / np.maximum(dist, nu), 0.0)
        total = float(weights.sum())
        if total == 0.0:  # every finite row coincides with z
            break
        step = combine(weights / total)
        multiplicity = float(coincident.sum())
        if multiplicity > 0:  # Vardi & Zhang (2000): move off a data point only if it is not the median
            pull = total * separation(step, point)  # ‖Σ (Vᵢ − z)/‖Vᵢ − z‖‖ over the other rows
            keep = min(1.0, multiplicity / pull) if pull > 0 else 1.0
            step = (1.0 - keep) * step + keep * point
        point = step
        dist = distances_to(point)
        new_objective = float(dist[finite].sum())
        if abs(objective - new_objective) <= tol * max(new_objective, 1e-300):
            break
        objective = new_objective
    return point, iterations


def weiszfeld(distances: Tensor, *, nu: float, tol: float, max_iter: int) -> tuple[Tensor, int]:
    """``(c, iterations)``: simplex coefficients of the geometric median ``z = c @ V`` of the
    finite rows, from their ``[n, n]`` squared distances (float64, on the distances' device).

    Smoothed Weiszfeld steps (Pillutla et al.) with the Vardi-Zhang correction for an iterate that
    coincides (within ``nu``) with data points: the plain step would stall there even when the
    point is not the median; the corrected step leaves it unless the pull of the other points,
    ``‖Σ (Vᵢ − z)/‖Vᵢ − z‖‖``, is at most the coincident multiplicity (then it is the median).
    Distances to z come from ‖Vᵢ − z‖² = (Dc)ᵢ − ½ cᵀDc, valid for any c summing to 1. The
    iteration runs in numpy: its [n, n] products are too small for torch's per-call overhead.
    """
    dist_np = distances.detach().cpu().numpy()
    finite = ~bad_rows_np(dist_np)
    d = np.where(np.isfinite(dist_np), dist_np, 0.0)
    mask = finite.astype(np.float64)

    def distances_to(coefficients: np.ndarray) -> np.ndarray:
        dc = d @ coefficients
        return np.sqrt(np.maximum(dc - 0.5 * (coefficients @ dc), 0.0))

    def separation(p: np.ndarray, q: np.ndarray) -> float:  # ‖(p − q) @ V‖ for coefficient vectors
        w = p - q
        return math.sqrt(max(float(-0.5 * (w @ (d @ w))), 0.0))

    c, iterations = _smoothed_weiszfeld(
        mask / mask.sum(),
        finite=finite,
        distances_to=distances_to,
        combine=lambda w: w,
        separation=separation,
        nu=nu,
        tol=tol,
        max_iter=max_iter,
    )
    return torch.from_numpy(c).to(distances.device), iterations


def weiszfeld_direct(grads: Tensor, *, nu: float, tol: float, max_iter: int) -> tuple[Tensor, int]:
    """``(z, iterations)``: the same iteration on the d-dimensional vectors in float64, started at
    the coordinate-wise median (robust to enormous rows, O(nd) per iteration)."""
    finite_t = finite_rows(grads)
    finite = finite_t.cpu().numpy()
    x = grads.detach().to(torch.float64)
    if not bool(finite_t.all()):
        x = torch.where(finite_t[:, None], x, torch.zeros_like(x))
    x = x.cpu().numpy()
    start = coordinate_median(grads).to(torch.float64)
    start = torch.where(torch.isfinite(start), start, torch.zeros_like(start)).cpu().numpy()
    with one_blas_thread():  # its [n] x [n, d] products must not fight torch's threads for the cores
        z, iterations = _smoothed_weiszfeld(
            start,
            finite=finite,
            distances_to=lambda point: np.linalg.norm(x - point, axis=1),
            combine=lambda w: w @ x,
            separation=lambda p, q: float(np.linalg.norm(p - q)),
            nu=nu,
            tol=tol,
            max_iter=max_iter,
        )
    return torch.from_numpy(z).to(grads.device), iterations
