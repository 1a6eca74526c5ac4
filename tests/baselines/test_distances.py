"""The shared distance matrix (``byz_gym.sim.geometry.pairwise_sq_distances``): exact on tight
Random-Fault clusters, non-finite rows at +inf, finite-row detection, one matrix shared by every rule."""

from __future__ import annotations

import pytest
import torch

import baselines
from byz_gym.sim.geometry import _numpy_blas, finite_rows, gram, one_blas_thread, pairwise_sq_distances


def exact(grads: torch.Tensor) -> torch.Tensor:
    g = grads.to(torch.float64)
    return ((g[:, None, :] - g[None, :, :]) ** 2).sum(dim=-1)


def random_fault_round(n: int = 30, byzantine: int = 10, d: int = 3000, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    grads = 0.01 * torch.randn(n, d, generator=generator)
    grads[:byzantine] = 0.5 + 2e-6 * torch.randn(byzantine, d, generator=generator)
    return grads


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tight_clusters_keep_their_distances(dtype: torch.dtype) -> None:
    grads = random_fault_round().to(dtype)
    got, want = pairwise_sq_distances(grads), exact(grads)
    off = ~torch.eye(grads.shape[0], dtype=torch.bool)
    relative = ((got - want).abs() / want.clamp_min(1e-300))[off]
    assert float(relative.max()) < 1e-4  # the plain float32 Gram form is off by orders of magnitude here
    cluster = ((got - want).abs() / want.clamp_min(1e-300))[:10, :10][~torch.eye(10, dtype=torch.bool)]
    assert float(cluster.max()) < 1e-3


def test_a_long_chain_of_close_rows_keeps_its_small_steps() -> None:
    """Rows on a line, 1e-4 apart, far from the origin: neighbours are close both to the raw norms
    and to the norms centred on the chain's first row, so the group's Gram is retaken in float64."""
    generator = torch.Generator().manual_seed(1)
    base = 0.5 + 0.01 * torch.randn(2000, generator=generator)
    step = 1e-4 * torch.randn(2000, generator=generator)
    grads = (base + torch.arange(40.0)[:, None] * step).to(torch.float32)
    got, want = pairwise_sq_distances(grads), exact(grads)
    off = ~torch.eye(40, dtype=torch.bool)
    relative = ((got - want).abs() / want)[off]
    assert float(relative.max()) < 1e-4
    single_float32_gram = (grads[1:] - grads[0]) @ (grads[1:] - grads[0]).T  # what a float32-only refinement gives
    norms = single_float32_gram.diagonal()
    adjacent = (norms[:, None] + norms[None, :] - 2 * single_float32_gram).diagonal(offset=1).double()
    assert float(((adjacent - want.diagonal(offset=1)[1:]).abs() / want.diagonal(offset=1)[1:]).max()) > 1e-4


def test_non_finite_rows_are_infinitely_far_and_enormous_rows_are_not() -> None:
    grads = random_fault_round(seed=1)
    grads[4] = float("nan")
    grads[7, 3] = float("-inf")
    grads[9] = 1e30  # enormous but finite
    got = pairwise_sq_distances(grads)
    bad = torch.zeros(30, dtype=torch.bool)
    bad[[4, 7]] = True
    off = ~torch.eye(30, dtype=torch.bool)
    assert torch.isinf(got[bad][:, ~bad]).all() and torch.isinf(got[~bad][:, bad]).all()
    assert torch.isfinite(got[~bad][:, ~bad]).all()
    assert torch.equal(got.diagonal(), torch.zeros(30, dtype=torch.float64)) and torch.equal(got, got.T)
    keep = ~bad
    torch.testing.assert_close(
        got[keep][:, keep][off[keep][:, keep]], exact(grads[keep])[off[keep][:, keep]], rtol=1e-3, atol=1e-12
    )
    assert got.dtype == torch.float64


def test_finite_rows_survives_overflowing_row_sums() -> None:
    grads = torch.randn(8, 5, dtype=torch.float64)
    grads[1, 2] = float("nan")
    grads[3] = float("inf")
    grads[5] = 1e307  # its float64 sum overflows although every entry is finite
    assert finite_rows(grads).tolist() == [True, False, True, False, True, True, True, True]


def test_every_rule_accepts_one_shared_matrix() -> None:
    grads = random_fault_round(n=31, byzantine=6, d=400)
    shared = pairwise_sq_distances(grads)
    for name in baselines.available():
        rule = baselines.make(name, n=31, f=6 if name != "bulyan" else 5)
        assert torch.equal(rule.aggregate(grads, distances=shared).update, rule.aggregate(grads).update) or not (
            baselines.GARS.get(name).uses_distances
        )


def test_gram_runs_numpy_blas_on_one_thread_and_restores_it():
    libraries = _numpy_blas().lib_controllers
    before = [library.get_num_threads() for library in libraries]
    with one_blas_thread():
        assert all(library.get_num_threads() == 1 for library in libraries)
    assert [library.get_num_threads() for library in libraries] == before
    rows = torch.randn(6, 40, generator=torch.Generator().manual_seed(0))
    threads = torch.get_num_threads()
    try:
        for torch_threads in (1, 2):  # NumPy's BLAS on one torch thread, torch's own product on more
            torch.set_num_threads(torch_threads)
            torch.testing.assert_close(gram(rows), rows @ rows.T, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(gram(rows, rows[:2]), rows @ rows[:2].T, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(gram(rows, rows[:5]), rows @ rows[:5].T, rtol=1e-5, atol=1e-5)
            assert [library.get_num_threads() for library in libraries] == before
    finally:
        torch.set_num_threads(threads)
