"""One Prepare / Execute / Assert test per rule and pre-aggregator on hand-checkable inputs."""

from __future__ import annotations

import math

import pytest
import torch

import baselines
from baselines import (
    NNM,
    Brute,
    Bucketing,
    Bulyan,
    CenteredClipping,
    GeoMed,
    GeometricMedian,
    Krum,
    Mean,
    Median,
    MultiKrum,
    NormClipping,
    TrimmedMean,
)


def t(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


def test_mean_averages_rows_with_uniform_credit() -> None:
    # Prepare
    grads = t([[1.0, 2.0], [3.0, 4.0], [5.0, 9.0]])
    # Execute
    result = Mean().aggregate(grads)
    # Assert
    assert torch.equal(result.update, t([[3.0, 5.0]])[0])
    assert torch.allclose(result.credit, torch.full((3,), 1 / 3))


def test_median_takes_middle_value_per_coordinate() -> None:
    grads = t([[1.0, 40.0], [7.0, -2.0], [3.0, 5.0], [100.0, 6.0]])
    result = Median(f=1).aggregate(grads)
    # sorted columns: [1, 3, 7, 100] -> (3 + 7) / 2; [-2, 5, 6, 40] -> (5 + 6) / 2
    assert torch.equal(result.update, t([[5.0, 5.5]])[0])
    assert result.credit is None


def test_trimmed_mean_drops_f_extremes_per_coordinate() -> None:
    grads = t([[1.0, 10.0], [2.0, -50.0], [3.0, 20.0], [4.0, 30.0], [-90.0, 0.0]])
    result = TrimmedMean(f=1).aggregate(grads)
    # column 0: drop -90 and 4 -> mean(1, 2, 3) = 2; column 1: drop -50 and 30 -> mean(0, 10, 20) = 10
    assert torch.equal(result.update, t([[2.0, 10.0]])[0])


def test_krum_selects_the_row_with_closest_neighbours() -> None:
    # Three honest rows around (1, 1), two far Byzantine rows; n = 7 >= 2f + 3 with f = 2.
    grads = t([[1.0, 1.0], [1.1, 1.0], [0.9, 1.0], [1.0, 1.2], [1.0, 0.9], [50.0, 50.0], [-50.0, 60.0]])
    result = Krum(f=2).aggregate(grads)
    # each row sums its n - f - 2 = 3 smallest squared distances; row 0 sits in the middle
    assert result.credit.tolist() == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert torch.equal(result.update, grads[0])


def test_multi_krum_averages_the_best_m_rows() -> None:
    grads = t([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0], [30.0, 30.0]])
    result = MultiKrum(f=1, m=4).aggregate(grads)
    # the four square corners beat the far row; their mean is the centre (1, 1)
    assert torch.allclose(result.credit, t([[0.25, 0.25, 0.25, 0.25, 0.0]])[0])
    assert torch.allclose(result.update, t([[1.0, 1.0]])[0])


def test_brute_averages_the_minimum_diameter_subset() -> None:
    # Points on a line; the 3-subset of smallest diameter is {0, 1, 3} (diameter 3).
    grads = t([[0.0], [1.0], [10.0], [3.0], [-8.0]])
    result = Brute(f=2).aggregate(grads)
    assert torch.allclose(result.credit, t([[1 / 3, 1 / 3, 0.0, 1 / 3, 0.0]])[0])
    assert torch.allclose(result.update, t([[4 / 3]])[0])
    assert result.exact


def test_geomed_picks_the_medoid() -> None:
    grads = t([[0.0, 0.0], [4.0, 0.0], [1.0, 0.0], [0.0, 3.0]])
    result = GeoMed(f=1).aggregate(grads)
    # distance sums: row 0: 4 + 1 + 3 = 8; row 1: 4 + 3 + 5 = 12; row 2: 1 + 3 + 3.16 = 7.16; row 3: 3 + 5 + 3.16
    assert result.credit.tolist() == [0.0, 0.0, 1.0, 0.0]
    assert torch.equal(result.update, grads[2])


def test_geometric_median_of_a_symmetric_cross_is_its_centre() -> None:
    grads = t([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0], [0.0, 0.0]])
    result = GeometricMedian(f=2, tol=1e-10).aggregate(grads + 5.0)
    assert torch.allclose(result.update, t([[5.0, 5.0]])[0], atol=1e-5)
    assert result.credit is None


def test_bulyan_selects_then_averages_around_the_median() -> None:
    grads = t([[0.0], [1.0], [2.0], [3.0], [4.0], [5.0], [1e6]])
    result = Bulyan(f=1).aggregate(grads)
    # Krum selection keeps theta = 5 of the small values (never 1e6); beta = 3 around their median
    assert result.update.item() in (2.0, 3.0)
    grads = t([[1.0], [2.0], [3.0], [4.0], [5.0], [6.0], [7.0], [8.0], [9.0], [10.0], [500.0]])
    # f = 2: theta = 7 selected among 1..10, beta = 3 nearest their median
    value = Bulyan(f=2).aggregate(grads).update.item()
    assert 3.0 <= value <= 8.0


def test_centered_clipping_clips_far_rows_around_the_center() -> None:
    grads = t([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [300.0, 400.0]])
    result = CenteredClipping(f=1, tau=5.0, center="zero").aggregate(grads)
    # the far row (norm 500) is scaled to norm 5: (3, 4); mean of (1,0), (0,1), (1,1), (3,4)
    assert torch.allclose(result.update, t([[1.25, 1.5]])[0])


def test_centered_clipping_previous_center_is_stateful_and_reset() -> None:
    rule = CenteredClipping(f=0, tau=1.0)
    grads = t([[10.0, 0.0], [10.0, 0.0], [10.0, 0.0]])
    first = rule.aggregate(grads).update  # from 0, each row clipped to norm 1
    second = rule.aggregate(grads).update  # from the previous output
    assert torch.allclose(first, t([[1.0, 0.0]])[0])
    assert torch.allclose(second, t([[2.0, 0.0]])[0])
    rule.reset()
    assert torch.allclose(rule.aggregate(grads).update, first)


def test_norm_clipping_bounds_each_row() -> None:
    grads = t([[3.0, 4.0], [0.0, 1.0], [0.0, -2.0], [600.0, 800.0]])
    assert torch.allclose(NormClipping(f=1, tau=5.0).aggregate(grads).update, t([[1.5, 1.75]])[0])
    # default tau: the median norm (lower middle of 1, 2, 5, 1000 is 2)
    expected = (t([[3.0, 4.0]])[0] * 2 / 5 + t([[0.0, 1.0]])[0] + t([[0.0, -2.0]])[0] + t([[0.6, 0.8]])[0] * 2) / 4
    assert torch.allclose(NormClipping(f=1).aggregate(grads).update, expected)


def test_nnm_mixes_each_row_with_its_nearest() -> None:
    grads = t([[0.0], [1.0], [2.0], [10.0]])
    mixed, mixing = NNM(f=1).mix(grads)
    assert torch.allclose(mixed.squeeze(1), t([[1.0, 1.0, 1.0, 13 / 3]])[0])
    assert torch.allclose(mixing.sum(dim=1), torch.ones(4, dtype=torch.float64))


def test_bucketing_averages_buckets_of_s() -> None:
    grads = t([[0.0], [10.0], [20.0], [30.0], [40.0]])
    mixed, mixing = Bucketing(s=2, seed=3).mix(grads)
    assert mixed.shape == (3, 1)  # ceil(5 / 2) buckets
    assert sorted((mixing > 0).sum(dim=1).tolist()) == [1, 2, 2]
    assert torch.allclose(mixing.sum(dim=1), torch.ones(3, dtype=torch.float64))
    assert ((mixing > 0).sum(dim=0) == 1).all()  # every worker in exactly one bucket
    assert math.isclose(float(mixing.sum(dim=0) @ grads[:, 0].double()), float((mixing @ grads.double()).sum()))


def test_pre_aggregators_compose_in_front_of_a_rule() -> None:
    grads = t([[0.0], [1.0], [2.0], [3.0], [4.0], [100.0], [101.0]])
    rule = baselines.make("krum", n=7, f=2, pre=["nnm"])
    result = rule.aggregate(grads)
    assert rule.name == "nnm+krum"
    assert result.credit is not None and torch.allclose(result.credit.sum(), torch.tensor(1.0))
    assert float(result.credit[5:].sum()) == 0.0
    assert torch.allclose(result.update, (result.credit @ grads))


@pytest.mark.parametrize("name", baselines.available())
def test_every_rule_is_exported_and_named_like_its_key(name: str) -> None:
    cls = baselines.GARS.get(name)
    assert cls.name == name
    assert getattr(baselines, cls.__name__) is cls
    assert cls.__module__ == f"baselines.{name}"


def test_weiszfeld_on_coefficients_and_on_vectors_agree() -> None:
    """The two forms of the iteration (over the distance matrix, for ordinary rounds; over the
    d-dimensional rows, for rounds with enormous rows) share one loop and find the same median."""
    from baselines.geometric_median import weiszfeld, weiszfeld_direct
    from byz_gym.sim.geometry import pairwise_sq_distances

    g = torch.Generator().manual_seed(3)
    grads = torch.randn(9, 40, generator=g, dtype=torch.float64)
    grads[:3] = grads[0]  # three coincident rows: the Vardi-Zhang correction is exercised
    coefficients, _ = weiszfeld(pairwise_sq_distances(grads), nu=1e-9, tol=1e-14, max_iter=2000)
    direct, _ = weiszfeld_direct(grads, nu=1e-9, tol=1e-14, max_iter=2000)
    torch.testing.assert_close(coefficients @ grads, direct, rtol=1e-6, atol=1e-6)
