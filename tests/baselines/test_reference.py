"""Exactness against straightforward reference implementations written here with plain loops and
the exact difference form of the distances; Brute-Force against exhaustive enumeration."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import baselines
from baselines import minimum_diameter_subset
from baselines._common import mixed_sq_distances
from byz_gym.sim.geometry import finite_rows, pairwise_sq_distances

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- references ------------------------------------------------------------------------------------
def sq_dist(a: np.ndarray, b: np.ndarray) -> float:
    return float(((a - b) ** 2).sum())


def ref_krum_scores(x: np.ndarray, f: int, alive: list[int] | None = None) -> dict[int, tuple[float, float]]:
    """Krum score and the score with one more neighbour, over the alive rows."""
    alive = list(range(len(x))) if alive is None else alive
    k = max(1, min(len(alive) - f - 2, len(alive) - 1))
    out = {}
    for i in alive:
        ds = sorted(sq_dist(x[i], x[j]) for j in alive if j != i)
        out[i] = (sum(ds[:k]), sum(ds[: min(k + 1, len(ds))]))
    return out


def ref_krum(x: np.ndarray, f: int) -> int:
    scores = ref_krum_scores(x, f)
    return min(scores, key=lambda i: (scores[i], i))


def ref_multi_krum(x: np.ndarray, f: int, m: int) -> list[int]:
    scores = ref_krum_scores(x, f)
    return sorted(scores, key=lambda i: (scores[i], i))[:m]


def ref_medoid_sums(x: np.ndarray) -> list[float]:
    return [sum(np.sqrt(sq_dist(x[i], x[j])) for j in range(len(x))) for i in range(len(x))]


def ref_median(x: np.ndarray) -> np.ndarray:
    return np.median(x, axis=0)


def ref_trimmed_mean(x: np.ndarray, f: int) -> np.ndarray:
    out = []
    for column in x.T:
        values = sorted(column)
        out.append(np.mean(values[f : len(values) - f]))
    return np.array(out)


def ref_bulyan(x: np.ndarray, f: int) -> np.ndarray:
    n = len(x)
    remaining, selected = list(range(n)), []
    for _ in range(n - 2 * f):
        scores = ref_krum_scores(x, f, remaining)
        best = min(remaining, key=lambda i: (scores[i], i))
        selected.append(best)
        remaining.remove(best)
    beta = n - 4 * f
    out = []
    for column in x[selected].T:
        median = np.median(column)
        nearest = sorted(column, key=lambda v: abs(v - median))[:beta]
        out.append(np.mean(nearest))
    return np.array(out)


def ref_brute(d: np.ndarray, f: int) -> tuple[int, ...]:
    """Exhaustive: the (n - f)-subset whose pairwise distances, sorted decreasingly, are smallest."""
    n = len(d)
    best_key, best = None, None
    for subset in itertools.combinations(range(n), n - f):
        key = sorted((d[i, j] for i, j in itertools.combinations(subset, 2)), reverse=True)
        if best_key is None or key < best_key:
            best_key, best = key, subset
    return best


def ref_weiszfeld(x: np.ndarray, iterations: int = 2_000) -> np.ndarray:
    z = np.median(x, axis=0)
    for _ in range(iterations):
        w = 1.0 / np.maximum(np.linalg.norm(x - z, axis=1), 1e-12)
        z = (w @ x) / w.sum()
    return z


# -- data ------------------------------------------------------------------------------------------
@st.composite
def instances(draw: st.DrawFn, min_workers: int, max_workers: int = 12, max_f: int | None = None):
    n = draw(st.integers(min_workers, max_workers))
    d = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    if draw(st.booleans()):  # a cluster of outliers
        k = draw(st.integers(1, max(1, n // 3)))
        x[:k] = rng.normal(size=d) * 8 + rng.normal(size=(k, d)) * 0.01
    return x


def as_tensor(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x).to(torch.float64)


# -- tests -----------------------------------------------------------------------------------------
@SETTINGS
@given(x=instances(3), data=st.data())
def test_krum_matches_reference(x: np.ndarray, data: st.DataObject) -> None:
    n = len(x)
    f = data.draw(st.integers(0, (n - 3) // 2))
    result = baselines.Krum(f=f).aggregate(as_tensor(x))
    assert int(result.credit.argmax()) == ref_krum(x, f)
    assert np.array_equal(result.update.numpy(), x[ref_krum(x, f)])


@SETTINGS
@given(x=instances(3), data=st.data())
def test_multi_krum_matches_reference(x: np.ndarray, data: st.DataObject) -> None:
    n = len(x)
    f = data.draw(st.integers(0, (n - 3) // 2))
    m = data.draw(st.integers(1, n - f))
    result = baselines.MultiKrum(f=f, m=m).aggregate(as_tensor(x))
    chosen = ref_multi_krum(x, f, m)
    assert sorted(torch.nonzero(result.credit).squeeze(1).tolist()) == sorted(chosen)
    np.testing.assert_allclose(result.update.numpy(), x[chosen].mean(axis=0), rtol=1e-12, atol=1e-12)


@SETTINGS
@given(x=instances(1))
def test_geomed_matches_reference(x: np.ndarray) -> None:
    result = baselines.GeoMed(f=(len(x) - 1) // 2).aggregate(as_tensor(x))
    sums = ref_medoid_sums(x)
    chosen = int(result.credit.argmax())
    # The medoid can be mathematically tied (e.g. the two middle points in 1-D with even n), so
    # compare the objective: the chosen row attains the minimum sum of distances.
    assert sums[chosen] <= min(sums) * (1 + 1e-12) + 1e-300
    assert np.array_equal(result.update.numpy(), x[chosen])


@SETTINGS
@given(x=instances(1))
def test_median_matches_numpy(x: np.ndarray) -> None:
    result = baselines.Median(f=(len(x) - 1) // 2).aggregate(as_tensor(x))
    np.testing.assert_allclose(result.update.numpy(), ref_median(x), rtol=0, atol=0)


@SETTINGS
@given(x=instances(1), data=st.data())
def test_trimmed_mean_matches_reference(x: np.ndarray, data: st.DataObject) -> None:
    f = data.draw(st.integers(0, (len(x) - 1) // 2))
    result = baselines.TrimmedMean(f=f).aggregate(as_tensor(x))
    np.testing.assert_allclose(result.update.numpy(), ref_trimmed_mean(x, f), rtol=1e-12, atol=1e-12)


@SETTINGS
@given(x=instances(3, max_workers=15), data=st.data())
def test_bulyan_matches_reference(x: np.ndarray, data: st.DataObject) -> None:
    f = data.draw(st.integers(0, (len(x) - 3) // 4))
    result = baselines.Bulyan(f=f).aggregate(as_tensor(x))
    np.testing.assert_allclose(result.update.numpy(), ref_bulyan(x, f), rtol=1e-12, atol=1e-12)


@SETTINGS
@given(x=instances(1, max_workers=12), data=st.data())
def test_brute_matches_exhaustive_enumeration(x: np.ndarray, data: st.DataObject) -> None:
    n = len(x)
    f = data.draw(st.integers(0, min((n - 1) // 2, 5)))
    grads = as_tensor(x)
    distances = pairwise_sq_distances(grads)
    result = baselines.Brute(f=f).aggregate(grads, distances=distances)
    kept = tuple(torch.nonzero(result.credit).squeeze(1).tolist())
    d = 0.5 * (distances + distances.T).numpy()
    expected = ref_brute(d, f)
    assert kept == expected
    np.testing.assert_allclose(result.update.numpy(), x[list(expected)].mean(axis=0), rtol=1e-12, atol=1e-12)
    assert result.exact


def _has_cover(edges: list[tuple[int, int]], k: int) -> bool:
    """Plain edge branching: can k vertices cover ``edges``?"""
    if not edges:
        return True
    if k == 0:
        return False
    u, v = edges[0]
    return _has_cover([e for e in edges if u not in e], k - 1) or _has_cover([e for e in edges if v not in e], k - 1)


@pytest.mark.parametrize("seed", range(4))
def test_brute_diameter_is_optimal_at_n50(seed: int) -> None:
    """At n = 50, f = 8: the returned diameter is achievable and no smaller one is (2^8 branching)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(50, 3 + seed))
    x[:5] += 4.0  # a loose outlier group
    d = pairwise_sq_distances(as_tensor(x)).numpy()
    kept, exact = minimum_diameter_subset(d, 8)
    assert exact and kept.sum() == 42
    diameter = d[np.ix_(kept, kept)].max()
    rows, cols = np.triu_indices(50, 1)
    farther = [(int(i), int(j)) for i, j in zip(rows, cols, strict=True) if d[i, j] >= diameter]
    farther.sort(key=lambda e: -d[e])
    assert not _has_cover(farther, 8)  # every pair at distance >= diameter cannot be removed


def test_brute_budget_warns_and_returns_best_found() -> None:
    rng = np.random.default_rng(0)
    grads = torch.from_numpy(rng.normal(size=(30, 2)))
    rule = baselines.Brute(f=12, max_nodes=1)
    with pytest.warns(baselines.BruteForceBudgetWarning, match="max_nodes=1"):
        result = rule.aggregate(grads)
    assert not result.exact
    assert int((result.credit > 0).sum()) == 18
    assert torch.isfinite(result.update).all()
    assert torch.allclose(result.credit @ grads, result.update)


def test_brute_recovers_a_tight_honest_cluster_against_a_tighter_byzantine_one() -> None:
    # 35 honest rows spread around 0, 15 Random-Fault rows within 1e-6 of 0.5: f = 15 removes them all.
    generator = torch.Generator().manual_seed(0)
    honest = 0.1 * torch.randn(35, 200, generator=generator)
    byzantine = 0.5 + 2e-6 * torch.randn(15, 200, generator=generator)
    grads = torch.cat([byzantine, honest])
    result = baselines.Brute(f=15).aggregate(grads)
    assert torch.equal(result.credit[:15], torch.zeros(15))
    assert torch.allclose(result.update, honest.mean(dim=0), atol=1e-6)


@settings(max_examples=15, deadline=None)
@given(x=instances(2, max_workers=10))
def test_geometric_median_matches_long_weiszfeld(x: np.ndarray) -> None:
    result = baselines.GeometricMedian(f=(len(x) - 1) // 2).aggregate(as_tensor(x))
    z = result.update.numpy()
    ref = ref_weiszfeld(x)

    def objective(p: np.ndarray) -> float:
        return float(np.linalg.norm(x - p, axis=1).sum())

    # Weiszfeld crawls on nearly collinear rows (the objective is almost flat there), so the
    # default max_iter can stop ~1e-4 (relative) above the minimum; typical rounds end within 1e-6.
    assert objective(z) <= objective(ref) * (1 + 1e-3) + 1e-12


@SETTINGS
@given(x=instances(1, max_workers=10), data=st.data())
def test_clipping_rules_match_loops(x: np.ndarray, data: st.DataObject) -> None:
    n = len(x)
    f = (n - 1) // 2
    tau = data.draw(st.sampled_from([0.1, 1.0, 10.0]))
    # norm clipping
    expected = sum(row * min(1.0, tau / np.linalg.norm(row)) if np.linalg.norm(row) > 0 else row for row in x) / n
    got = baselines.NormClipping(f=f, tau=tau).aggregate(as_tensor(x)).update.numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    # centered clipping, two iterations from 0
    v = np.zeros(x.shape[1])
    for _ in range(2):
        step = np.zeros_like(v)
        for row in x:
            gap = np.linalg.norm(row - v)
            step += (row - v) * (min(1.0, tau / gap) if gap > 0 else 1.0)
        v = v + step / n
    got = baselines.CenteredClipping(f=f, tau=tau, n_iter=2, center="zero").aggregate(as_tensor(x)).update.numpy()
    np.testing.assert_allclose(got, v, rtol=1e-12, atol=1e-12)


@SETTINGS
@given(x=instances(1, max_workers=10), data=st.data())
def test_nnm_matches_loops_and_mixed_distances_match_recomputation(x: np.ndarray, data: st.DataObject) -> None:
    n = len(x)
    f = data.draw(st.integers(0, (n - 1) // 2))
    grads = as_tensor(x)
    mixed, mixing = baselines.NNM(f=f).mix(grads)
    expected = []
    for i in range(n):
        nearest = sorted(range(n), key=lambda j: (sq_dist(x[i], x[j]), j))[: n - f]
        expected.append(x[nearest].mean(axis=0))
    np.testing.assert_allclose(mixed.numpy(), np.array(expected), rtol=1e-12, atol=1e-12)
    derived = mixed_sq_distances(pairwise_sq_distances(grads), mixing, ~finite_rows(grads))
    scale = float((grads**2).sum(dim=1).max()) + 1e-300
    torch.testing.assert_close(derived, pairwise_sq_distances(mixed), rtol=1e-6, atol=1e-9 * scale)
