"""The shared distance matrix: same contract as ``byz_gym.sim.geometry.pairwise_sq_distances``,
exact on tight Random-Fault clusters, finite-row detection, and one matrix shared by every rule."""

from __future__ import annotations

import pytest
import torch

import baselines
from baselines._common import finite_mask, sq_distances
from byz_gym.sim.geometry import finite_rows, pairwise_sq_distances


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
    got, want = sq_distances(grads), exact(grads)
    off = ~torch.eye(grads.shape[0], dtype=torch.bool)
    relative = ((got - want).abs() / want.clamp_min(1e-300))[off]
    assert float(relative.max()) < 1e-4  # the plain float32 Gram form is off by orders of magnitude here
    cluster = ((got - want).abs() / want.clamp_min(1e-300))[:10, :10][~torch.eye(10, dtype=torch.bool)]
    assert float(cluster.max()) < 1e-3


def test_matches_the_core_contract() -> None:
    grads = random_fault_round(seed=1)
    grads[4] = float("nan")
    grads[7, 3] = float("-inf")
    grads[9] = 1e30  # enormous but finite
    ours, core = sq_distances(grads), pairwise_sq_distances(grads)
    assert torch.equal(torch.isinf(ours), torch.isinf(core))
    assert torch.equal(ours.diagonal(), torch.zeros(30, dtype=torch.float64))
    assert torch.equal(ours, ours.T)
    finite = torch.isfinite(core)
    torch.testing.assert_close(ours[finite], core[finite], rtol=1e-3, atol=1e-12)
    assert ours.dtype == torch.float64


def test_finite_mask_equals_finite_rows() -> None:
    grads = torch.randn(8, 5, dtype=torch.float64)
    grads[1, 2] = float("nan")
    grads[3] = float("inf")
    grads[5] = 1e307  # its float64 sum overflows although every entry is finite
    assert torch.equal(finite_mask(grads), finite_rows(grads))
    assert bool(finite_mask(grads)[5])


def test_every_rule_accepts_one_shared_matrix() -> None:
    grads = random_fault_round(n=31, byzantine=6, d=400)
    shared = sq_distances(grads)
    for name in baselines.available():
        rule = baselines.make(name, n=31, f=6 if name != "bulyan" else 5)
        assert torch.equal(rule.aggregate(grads, distances=shared).update, rule.aggregate(grads).update) or not (
            baselines.GARS.get(name).uses_distances
        )
