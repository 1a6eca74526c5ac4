from __future__ import annotations

import pytest
import torch

from byz_gym.scenarios import SCENARIOS
from byz_gym.sim import GLOBAL_FEATURES, WORKER_FEATURES, SimState, Simulator, round_features


@pytest.fixture(scope="module")
def sim() -> Simulator:
    return Simulator(SCENARIOS["Digits"].replace(n_workers=10))


def _with_submissions(state: SimState, submissions: torch.Tensor) -> SimState:
    return SimState(state.theta, state.round_index, state.seed, state.schedule_state, state.byzantine_mask, submissions)


@pytest.mark.parametrize("poison", [float("nan"), float("inf"), -float("inf"), 1e30, 3e38])
def test_features_are_finite_and_bounded_under_hostile_rows(sim, poison):
    state = sim.reset(0)
    submissions = state.submissions.clone()
    submissions[:3] = poison
    per_worker, global_ = round_features(sim, _with_submissions(state, submissions), torch.full((10,), 0.1))
    assert per_worker.shape == (10, len(WORKER_FEATURES)) and global_.shape == (len(GLOBAL_FEATURES),)
    assert torch.isfinite(per_worker).all() and torch.isfinite(global_).all()
    for j, feature in enumerate(WORKER_FEATURES):
        high = 10.0 if feature.high is None else feature.high
        assert per_worker[:, j].min() >= feature.low and per_worker[:, j].max() <= high, feature.name


def test_features_tell_random_fault_rows_apart_at_minority(sim):
    state = sim.reset(2)
    per_worker, _ = round_features(sim, state, torch.full((10,), 0.1))
    names = [f.name for f in WORKER_FEATURES]
    mask = state.byzantine_mask
    cos_qv = per_worker[:, names.index("cos_qv")]
    score = per_worker[:, names.index("distance_score")]
    assert cos_qv[~mask].min() > cos_qv[mask].max()  # honest gradients align with the QV gradient
    assert score[mask].min() > score[~mask].max()  # outliers are far from the rest


def test_one_step_loss_change_matches_a_direct_computation(sim):
    state = sim.reset(5)
    per_worker, global_ = round_features(sim, state, torch.full((10,), 0.1))
    names = [f.name for f in WORKER_FEATURES]
    before = sim.qv_loss(state)
    after = torch.stack([sim.qv_loss(state, state.theta - 0.05 * v) for v in state.submissions])
    relative = (after - before) / before
    expected = torch.sign(relative) * torch.log1p(relative.abs())
    torch.testing.assert_close(per_worker[:, names.index("qv_loss_change")], expected, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(global_[0], torch.log1p(before))
    torch.testing.assert_close(per_worker[:, names.index("previous_credit")], torch.ones(10))
