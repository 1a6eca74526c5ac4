"""Hostile input: with at most f rows of NaN, ±Inf or enormous values every rule but ``mean``
returns a finite update near the honest rows, and linear rules give those rows no credit."""

from __future__ import annotations

import pytest
import torch

import baselines
from baselines import GARS
from byz_gym.sim.geometry import pairwise_sq_distances

ROBUST = [name for name in baselines.available() if name != "mean"]
FLOAT32_MAX = torch.finfo(torch.float32).max


def poison(kind: str, rows: int, d: int) -> torch.Tensor:
    bad = torch.zeros(rows, d)
    if kind == "nan":
        bad[:] = float("nan")
    elif kind == "posinf":
        bad[:] = float("inf")
    elif kind == "neginf":
        bad[:] = float("-inf")
    elif kind == "mixed":  # one NaN entry, one +Inf entry, the rest ordinary values
        bad[:] = 0.1
        bad[:, 0] = float("nan")
        bad[:, -1] = float("inf")
    elif kind == "huge":
        bad[:] = 1e30
    elif kind == "float32_max":
        bad[:] = FLOAT32_MAX
        bad[::2] = -FLOAT32_MAX
    else:
        raise AssertionError(kind)
    return bad


KINDS = ["nan", "posinf", "neginf", "mixed", "huge", "float32_max"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", ROBUST)
@pytest.mark.parametrize(("n", "f"), [(11, 2), (23, 5)])
def test_at_most_f_bad_rows_leave_a_finite_update(name: str, kind: str, n: int, f: int) -> None:
    # Prepare: n - f honest rows around (1, ..., 1), f poisoned rows spread over the worker order
    generator = torch.Generator().manual_seed(n * 31 + f)
    d = 40
    grads = 1.0 + 0.1 * torch.randn(n, d, generator=generator)
    bad_index = torch.randperm(n, generator=generator)[:f]
    grads[bad_index] = poison(kind, f, d)
    honest = torch.ones(n, dtype=torch.bool)
    honest[bad_index] = False
    rule = baselines.make(name, n=n, f=f)
    # Execute
    result = rule.aggregate(grads)
    # Assert
    assert torch.isfinite(result.update).all(), f"{name} on {kind}: {result.update}"
    if name in ("norm_clipping", "centered_clipping"):  # bounded influence, not removal: f * tau / n at most
        limit = 1.0 + 10.0 * f / n + 1.0
        assert float(result.update.abs().max()) <= limit
    else:
        assert float((result.update - 1.0).abs().max()) < 0.5  # within the honest spread
    if GARS.get(name).linear:
        assert float(result.credit[bad_index].sum()) == 0.0
        assert torch.allclose(result.credit[honest].sum(), torch.tensor(1.0))


@pytest.mark.parametrize("name", ROBUST)
def test_bad_rows_through_pre_aggregators_stay_finite(name: str) -> None:
    generator = torch.Generator().manual_seed(7)
    n, f = 23, 2
    grads = torch.randn(n, 12, generator=generator)
    grads[3] = float("nan")
    grads[17, 4] = float("inf")
    nnm = baselines.make(name, n=n, f=f, pre=["nnm"])
    assert torch.isfinite(nnm.aggregate(grads).update).all()
    cls = GARS.get(name)
    s = 2 if cls.min_workers(f) <= 12 else 1  # bucketing keeps ceil(n/s) rows; the rule must accept them
    bucketed = baselines.make(name, n=n, f=f, pre=[{"name": "bucketing", "params": {"s": s}}])
    assert torch.isfinite(bucketed.aggregate(grads).update).all()


def test_mean_propagates_non_finite_rows() -> None:
    grads = torch.ones(5, 3)
    grads[2, 1] = float("nan")
    update = baselines.Mean().aggregate(grads).update
    assert torch.isnan(update[1]) and torch.isfinite(update[[0, 2]]).all()


def test_shared_distances_give_the_same_result_as_computing_them() -> None:
    generator = torch.Generator().manual_seed(0)
    grads = torch.randn(15, 20, generator=generator)
    grads[0] = float("inf")
    distances = pairwise_sq_distances(grads)
    for name in ROBUST:
        rule = baselines.make(name, n=15, f=3)
        shared = rule.aggregate(grads, distances=distances)
        own = baselines.make(name, n=15, f=3).aggregate(grads)
        assert torch.equal(shared.update, own.update), name


def _hostile_env(tampering: dict) -> dict:
    return {
        "n_workers": 12,
        "byzantine_fraction": 2 / 12,
        "horizon": 3,
        "eval_every": 3,
        "attack": {"schedule": "static", "tampering": tampering},
    }


@pytest.mark.parametrize(
    "tampering", [{"name": "nonfinite", "params": {"value": "mixed"}}, {"name": "huge", "params": {}}], ids=str
)
def test_on_the_env_robust_rules_survive_what_ends_the_mean(tampering: dict) -> None:
    from byz_gym.experiments import make_policy, run_episode
    from byz_gym.sim import TAMPERINGS

    if tampering["name"] not in TAMPERINGS:
        pytest.skip(f"tampering {tampering['name']!r} not registered in this checkout")
    env_kwargs = _hostile_env(tampering)
    mean = run_episode("ByzGym/Digits-v0", make_policy("mean"), seed=0, env_kwargs=env_kwargs)
    if tampering["name"] == "nonfinite":
        assert mean.terminated and mean.termination_reason  # NaN reaches θ
    for name in ("krum", "median", "brute", "geometric_median", "norm_clipping"):
        result = run_episode("ByzGym/Digits-v0", make_policy(name, f=2), seed=0, env_kwargs=env_kwargs)
        assert not result.terminated and result.rounds == 3, name
        assert result.final_test_accuracy > 0.0


@pytest.mark.parametrize("kind", ["nan", "posinf", "neginf", "mixed", "huge"])
@pytest.mark.parametrize("supported", [1, 3, 5])  # few, most, all-but-the-bad rows
def test_weighted_sum_ignores_zero_credit_rows_whatever_they_hold(kind: str, supported: int) -> None:
    from baselines._common import weighted_sum

    generator = torch.Generator().manual_seed(0)
    honest = torch.randn(5, 7, generator=generator)
    grads = torch.cat([poison(kind, 1, 7), honest])
    credit = torch.zeros(6)
    credit[1 : 1 + supported] = 1.0 / supported
    expected = credit[1 : 1 + supported] @ honest[:supported]
    torch.testing.assert_close(weighted_sum(credit, grads), expected, rtol=1e-6, atol=1e-7)
