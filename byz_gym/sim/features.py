"""Observation features of one round: per-worker statistics of the submissions, never raw gradients.

Shared by the Gymnasium env and by learned agents so that both see the same numbers. Every feature
is finite and bounded even when attackers send NaN, Inf or enormous gradients.

Speed (the env computes this every step): the QV statistics come from one ``Simulator.qv_probe``
call, and the geometry from two float32 matrix products, ``V [mean, median, ∇f_B]ᵀ`` (norms and
cosines) and the Gram matrix of the rows centred on their coordinate-wise median (distances); the
small [n]- and [n, n]-sized rest is float64 NumPy. Centring on the median makes tight clusters of
more than half the rows exact (the coordinate-wise median lies in such a cluster's bounding box, so
its centred rows are as small as it is tight). When a median of the distance score still picks a
pair that is tight relative to its centred norms (``PRECISE_ABOVE``), for instance inside a tight
honest minority, the round's distances are recomputed exactly with ``pairwise_sq_distances``.
Rounds with non-finite or enormous rows (norm above ``FAST_NORM_LIMIT``) take a float64 path.
A caller may ask for a subset of the per-worker features (``FEATURE_SETS``, e.g. "compact"); the
median, the distances and the n one-step losses are then computed only if a requested feature
needs them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from byz_gym.sim.geometry import finite_rows, gram, pairwise_sq_distances, symlog
from byz_gym.sim.simulator import SimState, Simulator

__all__ = [
    "FEATURE_SETS",
    "GLOBAL_FEATURES",
    "WORKER_FEATURES",
    "Feature",
    "RoundFeatures",
    "compute_round_features",
    "resolve_worker_features",
    "round_features",
]

SYMLOG_BOUND = 100.0  # symlog of any float32 is within ±88.8


@dataclass(frozen=True)
class Feature:
    name: str
    low: float
    high: float
    description: str


WORKER_FEATURES: tuple[Feature, ...] = (
    Feature("log_norm", -SYMLOG_BOUND, SYMLOG_BOUND, "symlog ‖Vᵢ‖"),
    Feature("cos_mean", -1.0, 1.0, "cosine of Vᵢ with the mean submission"),
    Feature("cos_median", -1.0, 1.0, "cosine of Vᵢ with the coordinate-wise median submission"),
    Feature("cos_qv", -1.0, 1.0, "cosine of Vᵢ with the QV-batch gradient ∇f_B(θ_t)"),
    Feature("qv_loss_change", -SYMLOG_BOUND, SYMLOG_BOUND, "symlog of (f_B(θ_t − λVᵢ) − f_B(θ_t)) / f_B(θ_t)"),
    Feature("distance_score", -SYMLOG_BOUND, SYMLOG_BOUND, "symlog of median_j ‖Vᵢ − Vⱼ‖ / median over all pairs"),
    Feature("previous_credit", 0.0, None, "n·α_{t−1,i}, the credit applied last round times n (1 = uniform)"),  # type: ignore[arg-type]
)

GLOBAL_FEATURES: tuple[Feature, ...] = (
    Feature("log_qv_loss", -SYMLOG_BOUND, SYMLOG_BOUND, "symlog f_B(θ_t)"),
    Feature("log_mean_norm", -SYMLOG_BOUND, SYMLOG_BOUND, "symlog ‖mean of Vᵢ‖"),
    Feature("log_qv_grad_norm", -SYMLOG_BOUND, SYMLOG_BOUND, "symlog ‖∇f_B(θ_t)‖"),
)


WORKER_FEATURE_NAMES: tuple[str, ...] = tuple(feature.name for feature in WORKER_FEATURES)
# Named per-worker feature sets. "compact" leaves out the three that cost most (the coordinate-wise
# median, the pairwise distances and the n one-step QV losses): on digits an env step then costs
# about 1.25-1.3x a simulator round instead of 1.5x (docs/env.md), and a GAA agent trained on it loses
# nothing on static attacks and Pretense, 3 points on the adaptive fault (docs/gaa.md, ablation).
FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "full": WORKER_FEATURE_NAMES,
    "compact": ("log_norm", "cos_mean", "cos_qv", "previous_credit"),
}


def resolve_worker_features(features: str | Sequence[str] | None) -> tuple[str, ...]:
    """Per-worker feature names, in ``WORKER_FEATURES`` order, from a set name in ``FEATURE_SETS``
    or a list of names (``None`` means "full"). ``ValueError`` for unknown or no names."""
    if features is None:
        return FEATURE_SETS["full"]
    if isinstance(features, str):
        if features not in FEATURE_SETS:
            raise ValueError(
                f"unknown feature set {features!r}; choose one of {sorted(FEATURE_SETS)} or a list of names "
                f"from {list(WORKER_FEATURE_NAMES)}"
            )
        return FEATURE_SETS[features]
    try:
        names = list(features)
    except TypeError:
        raise ValueError(
            f"features must be a feature set name {sorted(FEATURE_SETS)} or a list of names, got {features!r}"
        ) from None
    unknown = [name for name in names if name not in WORKER_FEATURE_NAMES]
    if unknown or not names:
        raise ValueError(
            f"features must name at least one per-worker feature from {list(WORKER_FEATURE_NAMES)}, got {names}"
        )
    return tuple(name for name in WORKER_FEATURE_NAMES if name in names)


FAST_NORM_LIMIT = 1e15  # rows with a larger norm (or non-finite) take the float64 path
# A float32-Gram squared distance below this share of ‖Cᵢ‖² + ‖Cⱼ‖² (centred rows) may be off by more
# than about 1e-5 relative; if a median of the distance score picks one, the round's distances are
# recomputed exactly with ``pairwise_sq_distances``.
PRECISE_ABOVE = 0.1


class RoundFeatures(NamedTuple):
    """``compute_round_features``'s result: the features and the QV loss they were computed from."""

    per_worker: Tensor  # [n, number of selected worker features] float32
    global_: Tensor  # [len(GLOBAL_FEATURES)] float32
    qv_loss: Tensor  # f_B(θ_t), float32 scalar (the env's reward reuses it)


class _Geometry(NamedTuple):
    """The round's geometry as float64 NumPy arrays; references are [mean, median, ∇f_B(θ_t)]
    (the median row is zero, and its cosines undefined, when it was not asked for)."""

    norms: np.ndarray  # [n] ‖Vᵢ‖ (NaN / Inf for non-finite rows)
    dots: np.ndarray  # [n, 3] ⟨Vᵢ, reference⟩
    ref_norms: np.ndarray  # [3] norms of the references (non-finite entries zeroed)
    global_norms: np.ndarray  # [2] ‖mean‖, ‖∇f_B(θ_t)‖ as they are (NaN / Inf kept)
    cos_ok: np.ndarray  # [n, 3] bool: row and reference finite, the cosine is defined
    sq_dist: np.ndarray | None  # [n, n] ‖Vᵢ − Vⱼ‖², +inf for non-finite rows, zero diagonal (if asked for)
    imprecise: np.ndarray | None  # [n, n] bool: entries of sq_dist that may be inaccurate


@torch.no_grad()
def round_features(
    sim: Simulator, state: SimState, previous_credit: Tensor, features: str | Sequence[str] | None = None
) -> tuple[Tensor, Tensor]:
    """``([n, k], [len(GLOBAL_FEATURES)])`` float32 features of round t; ``features`` selects the k
    per-worker columns (see ``resolve_worker_features``; default: all of ``WORKER_FEATURES``)."""
    result = compute_round_features(sim, state, previous_credit, features)
    return result.per_worker, result.global_


@torch.no_grad()
def compute_round_features(
    sim: Simulator, state: SimState, previous_credit: Tensor, features: str | Sequence[str] | None = None
) -> RoundFeatures:
    """``round_features`` plus f_B(θ_t), so that a caller needing both computes the loss once.
    Features that are not selected are not computed: the median only for ``cos_median`` and
    ``distance_score``, the distances only for ``distance_score``, the n one-step QV losses only
    for ``qv_loss_change``. Selected columns are the same numbers whatever else is selected."""
    names = resolve_worker_features(features)
    wants_distances = "distance_score" in names
    wants_median = wants_distances or "cos_median" in names
    grads = state.submissions.detach()
    n = grads.shape[0]
    probe = sim.qv_probe(state, grads if "qv_loss_change" in names else grads[:0])
    mean = grads.mean(dim=0)
    geometry = _geometry_float32(grads, mean, probe.gradient, wants_median, wants_distances) or _geometry_float64(
        grads, mean, probe.gradient, wants_median, wants_distances
    )

    with np.errstate(invalid="ignore", over="ignore"):  # Inf·0 of unusable rows is masked out
        denom = geometry.norms[:, None] * geometry.ref_norms[None, :]
        usable = geometry.cos_ok & (denom > 0)
    cosines = np.clip(np.divide(geometry.dots, denom, out=np.zeros_like(denom), where=usable), -1.0, 1.0)

    score = np.zeros(n)
    if geometry.sq_dist is not None:
        score, picked = _distance_score(geometry.sq_dist)
        if geometry.imprecise is not None and (geometry.imprecise & picked).any():
            score, _ = _distance_score(pairwise_sq_distances(grads).numpy())

    loss = probe.loss.numpy()  # float32 scalar; the loss change stays in float32
    change = np.zeros(n, dtype=np.float32)
    if probe.losses_after.shape[0] == n:
        change = (probe.losses_after.numpy() - loss) / np.maximum(loss, np.float32(1e-12))
    logged = symlog(np.concatenate([geometry.norms, change, score, [loss], geometry.global_norms]))

    per_worker = np.empty((n, len(WORKER_FEATURES)), dtype=np.float32)
    per_worker[:, 0] = logged[:n]
    per_worker[:, 1:4] = cosines
    per_worker[:, 4] = logged[n : 2 * n]
    per_worker[:, 5] = logged[2 * n : 3 * n]
    per_worker[:, 6] = n * previous_credit.detach().to(torch.float32).cpu().numpy()
    if len(names) < len(WORKER_FEATURES):
        per_worker = per_worker[:, [WORKER_FEATURE_NAMES.index(name) for name in names]]
    return RoundFeatures(torch.from_numpy(per_worker), torch.from_numpy(logged[3 * n :].copy()), probe.loss)


def _distance_score(sq_dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(score [n], picked [n, n] bool)``: each row's lower-median distance to the others over the
    lower median of all finite off-diagonal distances, and the entries those medians picked.
    Medians are taken on squared distances (the square root is monotone) and rooted after."""
    n = sq_dist.shape[0]
    picked = np.zeros((n, n), dtype=bool)
    if n == 1:
        return np.ones(1), picked
    off_diagonal = ~np.eye(n, dtype=bool)
    flat = sq_dist[off_diagonal]  # row-major: row i holds entries i*(n-1) ... i*(n-1)+n-2
    k = (n - 2) // 2
    at = np.arange(n) * (n - 1) + np.argpartition(flat.reshape(n, n - 1), k, axis=1)[:, k]
    typical = np.flatnonzero(np.isfinite(flat))
    scale = 1.0
    if typical.size:
        middle = typical[np.argpartition(flat[typical], (typical.size - 1) // 2)[(typical.size - 1) // 2]]
        scale = float(np.sqrt(flat[middle]))
        at = np.append(at, middle)
    picked_flat = np.zeros(flat.shape, dtype=bool)
    picked_flat[at] = True
    picked[off_diagonal] = picked_flat
    return np.sqrt(flat[at[:n]]) / max(scale, 1e-300), picked


def _finite_median(grads: Tensor, finite: Tensor | None = None) -> Tensor:
    """Coordinate-wise lower median (``torch.median``'s) of the finite rows, NaN if there is none;
    the numbers of ``nanmedian`` with non-finite rows masked, by a sort in NumPy."""
    rows = grads if finite is None else grads[finite]
    if rows.shape[0] == 0:
        return torch.full_like(grads[0], float("nan"))
    columns = np.array(rows.numpy().T, order="C")  # a copy (sorted in place), contiguous rows: ~5x faster
    # An in-place sort (NumPy's SIMD sort) beat np.partition's copy and selection by 30-35% on
    # real rounds (5.2 against 7.4 ms at n = 50, d = 25,450); the k-th value is the same either way.
    columns.sort(axis=1)
    return torch.from_numpy(columns[:, (columns.shape[1] - 1) // 2].copy())


def _geometry_float32(
    grads: Tensor, mean: Tensor, qv_grad: Tensor, wants_median: bool = True, wants_distances: bool = True
) -> _Geometry | None:
    """Two float32 products: rows times the references, and the Gram matrix of the rows centred on
    their median. ``None`` when a row is non-finite or enormous, or a product is not finite."""
    norms = torch.linalg.vector_norm(grads, dim=1).numpy().astype(np.float64)
    if not (np.isfinite(norms).all() and norms.max(initial=0.0) <= FAST_NORM_LIMIT):
        return None
    median = _finite_median(grads) if wants_median else torch.zeros_like(mean)
    references = torch.stack([mean, median, qv_grad])
    dots = gram(grads, references).numpy().astype(np.float64)
    ref_norms = torch.linalg.vector_norm(references, dim=1).numpy().astype(np.float64)
    if not (np.isfinite(dots).all() and np.isfinite(ref_norms).all()):
        return None
    cos_ok = np.ones(dots.shape, dtype=bool)
    cos_ok[:, 1] = wants_median
    if not wants_distances:
        return _Geometry(norms, dots, ref_norms, ref_norms[[0, 2]], cos_ok, None, None)
    products = gram(grads - median).numpy().astype(np.float64)
    if not np.isfinite(products).all():
        return None
    sq_norms = products.diagonal()
    norm_sums = sq_norms[:, None] + sq_norms[None, :]
    sq_dist = np.maximum(norm_sums - 2.0 * products, 0.0)
    sq_dist = 0.5 * (sq_dist + sq_dist.T)
    np.fill_diagonal(sq_dist, 0.0)
    imprecise = sq_dist < PRECISE_ABOVE * norm_sums
    np.fill_diagonal(imprecise, False)
    return _Geometry(norms, dots, ref_norms, ref_norms[[0, 2]], cos_ok, sq_dist, imprecise)


def _geometry_float64(
    grads: Tensor, mean: Tensor, qv_grad: Tensor, wants_median: bool = True, wants_distances: bool = True
) -> _Geometry:
    """The careful path: float64 throughout, non-finite rows masked, exact pairwise distances."""
    finite = finite_rows(grads)
    norms = grads.to(torch.float64).norm(dim=1).numpy()
    median = _finite_median(grads, finite) if wants_median else torch.zeros_like(mean)
    references = torch.stack([mean, median, qv_grad]).to(torch.float64)
    ref_finite = torch.isfinite(references).all(dim=1)
    ref_finite[1] &= wants_median
    global_norms = references[[0, 2]].norm(dim=1).numpy()  # NaN / Inf kept: symlog maps them to 0 / ±88.7
    rows = torch.where(finite[:, None], grads.to(torch.float64), 0.0)
    references = torch.nan_to_num(references, nan=0.0, posinf=0.0, neginf=0.0)
    dots = gram(rows, references).numpy()
    ref_norms = references.norm(dim=1).numpy()
    cos_ok = (finite[:, None] & ref_finite[None, :]).numpy()
    sq_dist = pairwise_sq_distances(grads).numpy() if wants_distances else None
    return _Geometry(norms, dots, ref_norms, global_norms, cos_ok, sq_dist, None)
