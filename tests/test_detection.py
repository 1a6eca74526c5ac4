"""GAA+ / GeoMed+ detection flags and precision/recall (paper Table 4)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from byz_gym.experiments import DetectionTracker, gaa_plus_flags, geomed_plus_flags, precision_recall
from byz_gym.experiments.detection import gaa_plus_order, geomed_plus_order


def random_fault_round(n: int = 50, beta: float = 0.7, d: int = 64, seed: int = 0):
    """Honest rows spread around 0; Byzantine rows a tight Random-Fault cluster N(0.5, (2e-6)²)."""
    g = torch.Generator().manual_seed(seed)
    n_byz = round(beta * n)
    byz = torch.zeros(n, dtype=torch.bool)
    byz[torch.randperm(n, generator=g)[:n_byz]] = True
    grads = 0.3 * torch.randn(n, d, generator=g)
    grads[byz] = 0.5 + 2e-6 * torch.randn(n_byz, d, generator=g)
    return grads, byz.numpy()


def test_geomed_plus_flags_clear_outlier_first():
    grads = torch.tensor([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1], [10.0, 10.0], [0.1, 0.1]])
    assert geomed_plus_order(grads, 1).tolist() == [3]
    assert geomed_plus_flags(grads, 1).tolist() == [False, False, False, True, False]


def test_geomed_plus_matches_brute_force_procedure():
    grads = torch.randn(9, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    dist = torch.cdist(grads, grads).numpy()
    remaining, expected = list(range(9)), []
    for _ in range(6):
        sums = [dist[i, remaining].sum() for i in remaining]
        worst = remaining[int(np.argmax(sums))]
        expected.append(worst)
        remaining.remove(worst)
    assert geomed_plus_order(grads, 6).tolist() == expected


def test_geomed_plus_flags_honest_under_random_fault_majority():
    grads, byz = random_fault_round(beta=0.7)
    p1, _ = precision_recall(geomed_plus_flags(grads, 1), byz)
    p10, _ = precision_recall(geomed_plus_flags(grads, 10), byz)
    p35, r35 = precision_recall(geomed_plus_flags(grads, 35), byz)
    assert p1 == 0.0 and p10 == 0.0
    assert p35 == pytest.approx(20 / 35)  # the 15 honest go first: 57.1 %, as in Table 4
    assert r35 == pytest.approx(20 / 35)


def test_geomed_plus_catches_minority_random_fault_outliers():
    g = torch.Generator().manual_seed(1)
    grads = 0.1 * torch.randn(10, 16, generator=g)
    grads[[2, 7]] = 25.0 + 1e-5 * torch.randn(2, 16, generator=g)
    assert set(geomed_plus_order(grads, 2).tolist()) == {2, 7}


def test_gaa_plus_zero_credit_byzantine_precision_one():
    _, byz = random_fault_round(beta=0.7)
    credit = np.where(byz, 0.0, 1.0 / (~byz).sum())
    for k in (1, 10, 35):
        precision, recall = precision_recall(gaa_plus_flags(credit, k), byz)
        assert precision == 1.0
        assert recall == pytest.approx(k / 35)


def test_gaa_plus_ties_by_index_and_nan_first():
    assert gaa_plus_order([0.2, 0.1, 0.1, 0.6], 2).tolist() == [1, 2]
    assert gaa_plus_flags(torch.tensor([0.2, 0.1, 0.1, 0.6]), 1).tolist() == [False, True, False, False]
    assert gaa_plus_order([0.2, float("nan"), 0.1], 1).tolist() == [1]
    assert gaa_plus_flags([0.5, 0.5], 10).tolist() == [True, True]  # k clipped to n
    assert not gaa_plus_flags([0.5, 0.5], 0).any()
    with pytest.raises(ValueError):
        gaa_plus_flags([0.5, 0.5], -1)


def test_geomed_plus_ties_by_index():
    grads = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])  # all sums equal
    assert geomed_plus_order(grads, 2).tolist()[0] == 0


def test_permutation_consistency():
    g = torch.Generator().manual_seed(7)
    grads = torch.randn(12, 8, generator=g)
    grads[4] += 5.0
    credit = torch.rand(12, generator=g).numpy()
    perm = torch.randperm(12, generator=g)
    inv = torch.argsort(perm)
    for k in (1, 3, 7, 12):
        flags = geomed_plus_flags(grads, k)
        assert (geomed_plus_flags(grads[perm], k)[inv.numpy()] == flags).all()
        gflags = gaa_plus_flags(credit, k)
        assert (gaa_plus_flags(credit[perm.numpy()], k)[inv.numpy()] == gflags).all()


def test_geomed_plus_nan_and_inf_rows_flagged_first():
    grads = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    grads[5, 0] = float("nan")
    grads[1, 2] = float("inf")
    grads[3] += 100.0  # a finite far outlier comes only after the non-finite rows
    assert geomed_plus_order(grads, 3).tolist() == [1, 5, 3]
    many_nan = torch.full((4, 3), float("nan"))
    many_nan[2] = 0.0
    assert sorted(geomed_plus_order(many_nan, 3).tolist()) == [0, 1, 3]


def test_geomed_plus_overflowing_finite_row_first():
    grads = torch.zeros(4, 3, dtype=torch.float64)
    grads[:, 0] = torch.tensor([0.0, 1.0, 2.0, 1e300])
    assert geomed_plus_order(grads, 1).tolist() == [3]


def test_precision_recall_edge_cases():
    assert precision_recall([False, False], [True, False]) == (1.0, 0.0)  # nothing flagged
    assert precision_recall([True, False], [False, False]) == (0.0, 1.0)  # no Byzantine
    assert precision_recall([False, False], [False, False]) == (1.0, 1.0)
    assert precision_recall([True, True, False], [True, False, True]) == (0.5, 0.5)
    assert precision_recall(torch.tensor([True]), torch.tensor([True])) == (1.0, 1.0)
    with pytest.raises(ValueError):
        precision_recall([True], [True, False])


def test_detection_tracker_means_per_k():
    grads, byz = random_fault_round(beta=0.7)
    geo = DetectionTracker("geomed+", ks=(1, 10, 35))
    gaa = DetectionTracker("gaa+")
    good = np.where(byz, 0.0, 1.0)
    bad = np.where(byz, 1.0, 0.0)
    for credit in (good, bad):
        geo.update(grads, byz)
        gaa.update(credit, byz)
    assert gaa.rounds == geo.rounds == 2
    s = gaa.summary()
    assert set(s) == {1, 10, 35}
    assert s[1]["precision"] == 0.5 and s[10]["precision"] == 0.5  # one perfect round, one all-wrong
    # K = 35 in the bad round flags the 15 honest, then 20 of the 35 Byzantine
    assert s[35]["precision"] == pytest.approx((1 + 20 / 35) / 2)
    assert s[35]["recall"] == pytest.approx((1 + 20 / 35) / 2)
    g = geo.summary()
    assert g[1]["precision"] == 0.0 and g[35]["precision"] == pytest.approx(20 / 35)
    assert math.isnan(DetectionTracker().summary()[1]["precision"])
    with pytest.raises(ValueError):
        DetectionTracker("krum+")
