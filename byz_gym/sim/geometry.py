"""Pairwise geometry of the submitted gradients, computed once per round and shared."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

import numpy as np
import torch
from threadpoolctl import ThreadpoolController
from torch import Tensor

__all__ = ["finite_rows", "gram", "one_blas_thread", "pairwise_sq_distances", "symlog"]


def finite_rows(grads: Tensor) -> Tensor:
    """``bool[n]``: rows whose entries are all finite. One row sum instead of an ``[n, d]`` boolean
    pass; rows whose sum is not finite are re-checked entry by entry, so a row of enormous finite
    values whose sum merely overflows is still finite."""
    suspect = ~torch.isfinite(grads.sum(dim=1))  # NaN/Inf entries, or a finite row whose sum overflows
    if not bool(suspect.any()):
        return ~suspect
    finite = ~suspect
    finite[suspect] = torch.isfinite(grads[suspect]).all(dim=1)
    return finite


def gram(rows: Tensor, others: Tensor | None = None) -> Tensor:
    """``rows @ others.T`` (``others`` defaults to ``rows``) in the input's precision. With one
    torch thread on CPU, a Gram matrix (or many ``others``) runs in NumPy's BLAS on one thread: for
    these short, wide matrices (50 x 25,450) that is faster than torch's single-threaded product,
    and one thread keeps it from fighting torch's threads for the cores (with both pools at 2
    threads on 2 cores a round ran several times slower). With more torch threads, torch's own
    parallel product is used. Detached; the result is on the input's device."""
    others = rows if others is None else others
    if rows.device.type != "cpu" or torch.get_num_threads() > 1:
        # torch's product runs in torch's own thread pool: with 2 threads on 2 cores it took 1.1 ms
        # for 50 x 25,450, against 1.8 ms for single-threaded BLAS
        return rows.detach() @ others.detach().T
    if others is not rows and others.shape[0] <= _FEW_REFERENCES:
        # a few reference vectors against the rows: torch's product with the references on the left
        # streams the rows once (about 2x faster than BLAS's GEMM packing for 50 x 25,450 by 3)
        return (others.detach() @ rows.detach().T).T
    a, b = rows.detach().numpy(), others.detach().numpy()
    with one_blas_thread(), np.errstate(over="ignore", invalid="ignore"):  # callers check Inf/NaN
        return torch.from_numpy(a @ b.T)


_FEW_REFERENCES = 4


@lru_cache(maxsize=1)
def _numpy_blas() -> ThreadpoolController:
    """NumPy's BLAS thread pool, found once."""
    return ThreadpoolController().select(user_api="blas")


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """NumPy's BLAS on one thread within the block, then as it was. Calls the libraries' own
    get/set directly: threadpoolctl's ``limit`` context re-reads every library's state and cost
    50-130 µs per call between big products (a few µs this way)."""
    libraries = _numpy_blas().lib_controllers
    previous = [library.get_num_threads() for library in libraries]
    for library, threads in zip(libraries, previous, strict=True):
        if threads != 1:
            library.set_num_threads(1)
    try:
        yield
    finally:
        for library, threads in zip(libraries, previous, strict=True):
            if threads != 1:
                library.set_num_threads(threads)


REFINE_BELOW = 1e-2  # Gram distances below this share of ‖Vᵢ‖² + ‖Vⱼ‖² are recomputed, centred on their group
_FLOAT32_SAFE = 1e36  # squared norms above this could overflow a float32 Gram matrix


def pairwise_sq_distances(grads: Tensor) -> Tensor:
    """``[n, n]`` float64 squared distances ‖Vᵢ − Vⱼ‖², exactly symmetric, computed once per round
    (detached: rules and features read them under ``no_grad``).

    Rows with NaN or Inf are at +inf from every other row, the diagonal is 0, and tight clusters
    keep their tiny distances (Krum and Brute-Force hinge on them).

    The Gram form ‖Vᵢ‖² + ‖Vⱼ‖² − 2⟨Vᵢ, Vⱼ⟩ errs by about ε·√d·(‖Vᵢ‖² + ‖Vⱼ‖²), which swamps
    the distance of a tight pair (a Random-Fault cluster: 1e-5 apart at norm 25). So every pair
    closer than ``REFINE_BELOW`` times that norm sum is recomputed: its connected group of close
    rows is centred on its mean and gets a Gram matrix of the (small) differences, in the
    input's precision (float64 again if the centred norms still dwarf a pair's distance).
    float32 input takes the Gram matrices in float32 (about 2.5x faster on CPU; a relative error
    below 1e-4 on every pair, tight or far, at d = 25,450); float64 input, and float32 rows with
    enormous or non-finite entries, take them in float64.
    """
    if grads.dtype != torch.float32:
        return _sq_distances_float64(grads)
    products = gram(grads).to(torch.float64)
    sq_norms = products.diagonal()
    if not bool(torch.isfinite(sq_norms).all()) or float(sq_norms.max()) > _FLOAT32_SAFE:
        return _sq_distances_float64(grads)  # non-finite or enormous rows: the careful path
    dist, norm_sums = _gram_sq_distances(products)
    return _refined(grads, dist, norm_sums)


def _sq_distances_float64(grads: Tensor) -> Tensor:
    finite = finite_rows(grads)
    g = grads.to(torch.float64)
    all_finite = bool(finite.all())
    if not all_finite:
        g = torch.where(finite[:, None], g, torch.zeros_like(g))
    dist, norm_sums = _gram_sq_distances(gram(g))
    if not all_finite:
        dist[~finite, :] = float("inf")
        dist[:, ~finite] = float("inf")
    return _refined(g, dist, norm_sums)


def _gram_sq_distances(products: Tensor) -> tuple[Tensor, Tensor]:
    """``(‖Vᵢ‖² + ‖Vⱼ‖² − 2⟨Vᵢ, Vⱼ⟩ clamped at 0, ‖Vᵢ‖² + ‖Vⱼ‖²)`` from a float64 Gram matrix."""
    sq_norms = products.diagonal()
    norm_sums = sq_norms[:, None] + sq_norms[None, :]
    dist = (norm_sums - 2.0 * products).clamp_min_(0.0)
    return 0.5 * (dist + dist.T), norm_sums  # exactly symmetric: d(i, j) and d(j, i) tie exactly


def _refined(grads: Tensor, dist: Tensor, norm_sums: Tensor) -> Tensor:
    """``dist`` with every pair closer than ``REFINE_BELOW`` of its norm sum recomputed exactly."""
    close = dist < REFINE_BELOW * norm_sums
    close.fill_diagonal_(False)
    if bool(close.any()):
        _refine_close_pairs(grads, dist, close)
    return dist.fill_diagonal_(0.0)


def _refine_close_pairs(grads: Tensor, dist: Tensor, close: Tensor) -> None:
    """Recompute, in place, the distances inside each connected group of close rows, centred on
    the group's mean (so the Gram form no longer cancels large norms). Subtracting one common
    vector from close rows is exact wherever entry and mean lie within a factor 2 (Sterbenz) and
    nearly so elsewhere; the Gram matrix of the differences is taken in the input's precision
    (float32 is several times faster on CPU) unless a pair is still close relative to its centred
    norms (a long chain of close rows): then in float64."""
    near = close.cpu().numpy()
    n = near.shape[0]
    reach = near | np.eye(n, dtype=bool)
    while True:  # transitive closure by repeated squaring (a few [n, n] products)
        wider = (reach.astype(np.float32) @ reach.astype(np.float32)) > 0
        if np.array_equal(wider, reach):
            break
        reach = wider
    labels = reach.argmax(axis=1)  # lowest index of each row's group
    groups, counts = np.unique(labels, return_counts=True)
    for label in groups[counts > 1].tolist():  # loops over groups of close rows, not over workers
        members = torch.from_numpy(np.flatnonzero(labels == label)).to(grads.device)
        centred = grads.index_select(0, members)  # a copy: centre it in place
        centred -= centred.mean(dim=0)
        # torch's product beats BLAS's syrk for a dozen rows or fewer (a 10-row Random-Fault cluster)
        products = centred @ centred.T if len(members) <= 12 else gram(centred)
        inner, norm_sums = _gram_sq_distances(products.to(torch.float64))
        if centred.dtype != torch.float64 and bool((inner < REFINE_BELOW * norm_sums).fill_diagonal_(False).any()):
            inner = _gram_sq_distances(gram(centred.to(torch.float64)))[0]
        dist[members[:, None], members[None, :]] = inner


def symlog(x: Tensor | np.ndarray) -> Tensor | np.ndarray:
    """sign(x)·log(1 + |x|) in float32, with NaN -> 0 and ±Inf -> ±log(1 + float32 max) (about ±88.7).
    A NumPy array gives a NumPy array (no torch dispatch for the small arrays of the features)."""
    big = torch.finfo(torch.float32).max
    if isinstance(x, np.ndarray):
        with np.errstate(over="ignore"):  # float64 beyond float32 range becomes ±Inf, then ±big
            x = np.nan_to_num(x.astype(np.float32), nan=0.0, posinf=big, neginf=-big)
        return np.sign(x) * np.log1p(np.abs(x))
    x = torch.nan_to_num(x.to(torch.float32), nan=0.0, posinf=big, neginf=-big)
    return torch.sign(x) * torch.log1p(x.abs())
