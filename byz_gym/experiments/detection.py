"""Detecting Byzantine workers: the paper's GAA+ and GeoMed+ (Procedure 1) flags, and their
precision/recall against the true Byzantine mask, per round and averaged over a run.

Conventions (used by every helper here):

- ``k`` is clipped to ``[0, n]``; a negative ``k`` is an error.
- Ties are broken by worker index: the lower index is flagged first.
- ``precision_recall``: precision with nothing flagged is 1.0 (no false alarm was raised), and
  recall with no Byzantine worker is 1.0 (none was missed). Both are 1.0 when both are empty.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from byz_gym.sim.geometry import finite_rows, pairwise_sq_distances

__all__ = [
    "DETECTION_METHODS",
    "PAPER_KS",
    "DetectionTracker",
    "gaa_plus_flags",
    "gaa_plus_order",
    "geomed_plus_flags",
    "geomed_plus_order",
    "precision_recall",
]

PAPER_KS: tuple[int, ...] = (1, 10, 35)  # the K of the paper's Table 4
DETECTION_METHODS: tuple[str, ...] = ("gaa+", "geomed+")


def _to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _check_k(k: int, n: int) -> int:
    k = int(k)
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    return min(k, n)


def _flags_from_order(order: np.ndarray, n: int) -> np.ndarray:
    flags = np.zeros(n, dtype=bool)
    flags[order] = True
    return flags


def gaa_plus_order(credit: Any, k: int) -> np.ndarray:
    """Indices of the ``k`` workers with the smallest credit, smallest first (ties: lower index
    first). NaN credit counts as the smallest of all."""
    c = _to_numpy(credit).astype(np.float64).reshape(-1)
    k = _check_k(k, c.shape[0])
    key = np.where(np.isnan(c), -np.inf, c)
    return np.argsort(key, kind="stable")[:k]


def gaa_plus_flags(credit: Any, k: int) -> np.ndarray:
    """GAA+: ``bool[n]`` flagging the ``k`` workers with the smallest credit (ties by index)."""
    c = _to_numpy(credit).reshape(-1)
    return _flags_from_order(gaa_plus_order(c, k), c.shape[0])


def geomed_plus_order(grads: Tensor, k: int) -> np.ndarray:
    """GeoMed+ (the paper's Procedure 1) removal order: ``k`` times, remove the remaining worker
    with the largest sum of distances to the other remaining workers.

    Distances come from one call to ``pairwise_sq_distances`` (square-rooted); the sums are then
    updated by subtracting the removed worker's column, never recomputed. Infinite distances
    (rows with NaN/Inf, or finite rows whose distance overflows) are counted apart from the finite
    sum, so the key is (non-finite row, number of infinite distances, finite distance sum): rows
    with NaN or Inf go first, then the most distant. Ties: lower index first.
    """
    grads = torch.as_tensor(grads)
    if grads.dim() != 2:
        raise ValueError(f"grads must be [n, d], got shape {tuple(grads.shape)}")
    n = grads.shape[0]
    k = _check_k(k, n)
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    dist = pairwise_sq_distances(grads).sqrt().cpu().numpy()
    nonfinite = ~finite_rows(grads).cpu().numpy()
    is_inf = np.isinf(dist)
    finite_dist = np.where(is_inf, 0.0, dist)
    inf_count = is_inf.sum(axis=1).astype(np.int64)
    finite_sum = finite_dist.sum(axis=1)
    remaining = np.ones(n, dtype=bool)
    order = np.empty(k, dtype=np.int64)
    for step in range(k):
        candidates = remaining & nonfinite
        if not candidates.any():
            counts = np.where(remaining, inf_count, -1)
            candidates = remaining & (counts == counts.max())
        sums = np.where(candidates, finite_sum, -np.inf)
        r = int(np.argmax(sums))  # first maximum: ties go to the lower index
        order[step] = r
        remaining[r] = False
        inf_count -= is_inf[:, r]
        finite_sum -= finite_dist[:, r]
    return order


def geomed_plus_flags(grads: Tensor, k: int) -> np.ndarray:
    """GeoMed+: ``bool[n]`` flagging the ``k`` workers removed first by Procedure 1."""
    n = torch.as_tensor(grads).shape[0]
    return _flags_from_order(geomed_plus_order(grads, k), n)


def precision_recall(flags: Any, byzantine_mask: Any) -> tuple[float, float]:
    """``(precision, recall)`` of ``flags`` against the true ``byzantine_mask``.

    Precision = |flagged ∩ Byzantine| / |flagged|, defined as 1.0 when nothing is flagged;
    recall = |flagged ∩ Byzantine| / |Byzantine|, defined as 1.0 when no worker is Byzantine.
    """
    f = _to_numpy(flags).astype(bool).reshape(-1)
    b = _to_numpy(byzantine_mask).astype(bool).reshape(-1)
    if f.shape != b.shape:
        raise ValueError(f"flags {f.shape} and byzantine_mask {b.shape} differ in shape")
    hits = int(np.count_nonzero(f & b))
    n_flagged = int(np.count_nonzero(f))
    n_byz = int(np.count_nonzero(b))
    precision = hits / n_flagged if n_flagged else 1.0
    recall = hits / n_byz if n_byz else 1.0
    return precision, recall


@dataclass
class DetectionTracker:
    """Accumulates per-round detection over a run, for each ``K``.

    ``method`` is ``"gaa+"`` (``update`` takes the round's credit ``[n]``) or ``"geomed+"``
    (``update`` takes the round's gradients ``[n, d]``). ``summary()`` maps each K to the mean
    precision and recall over the rounds seen (NaN before any round). K larger than n flags all.
    """

    method: str = "gaa+"
    ks: tuple[int, ...] = PAPER_KS
    _precision: dict[int, list[float]] = field(default_factory=dict, init=False, repr=False)
    _recall: dict[int, list[float]] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.method not in DETECTION_METHODS:
            raise ValueError(f"unknown detection method {self.method!r}; use one of {DETECTION_METHODS}")
        self.ks = tuple(int(k) for k in self.ks)
        for k in self.ks:
            if k < 0:
                raise ValueError(f"K must be >= 0, got {k}")
        self._precision = {k: [] for k in self.ks}
        self._recall = {k: [] for k in self.ks}

    @property
    def rounds(self) -> int:
        return len(self._precision[self.ks[0]]) if self.ks else 0

    def update(self, observation: Any, byzantine_mask: Any) -> dict[int, tuple[float, float]]:
        """Score one round; returns ``{K: (precision, recall)}`` for that round."""
        mask = _to_numpy(byzantine_mask).astype(bool).reshape(-1)
        n = mask.shape[0]
        k_max = max(self.ks, default=0)
        if self.method == "gaa+":
            order = gaa_plus_order(observation, k_max)
        else:
            order = geomed_plus_order(observation, k_max)
        out: dict[int, tuple[float, float]] = {}
        for k in self.ks:
            pr = precision_recall(_flags_from_order(order[: min(k, n)], n), mask)
            self._precision[k].append(pr[0])
            self._recall[k].append(pr[1])
            out[k] = pr
        return out

    def extend(self, observations: Iterable[Any], byzantine_masks: Iterable[Any]) -> None:
        for obs, mask in zip(observations, byzantine_masks, strict=True):
            self.update(obs, mask)

    def summary(self) -> dict[int, dict[str, float]]:
        """``{K: {"precision": mean, "recall": mean, "rounds": count}}``."""
        out: dict[int, dict[str, float]] = {}
        for k in self.ks:
            p, r = self._precision[k], self._recall[k]
            out[k] = {
                "precision": float(np.mean(p)) if p else float("nan"),
                "recall": float(np.mean(r)) if r else float("nan"),
                "rounds": len(p),
            }
        return out
