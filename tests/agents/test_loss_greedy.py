from __future__ import annotations

import numpy as np
import pytest
import torch

from agents import LossGreedy, relative_loss_changes
from byz_gym.experiments import make_policy, run_episode
from byz_gym.policy import RoundInput
from tests.utils import make_small


def _started(policy, env_id="ByzGym/Digits-v0", **kwargs):
    env = make_small(env_id, **kwargs).unwrapped
    obs, info = env.reset(seed=0)
    policy.reset(env, 0)
    return env, RoundInput(obs, info, lambda: env.submissions)


def test_loss_changes_read_back_from_the_observation_match_the_simulator():
    env, round_input = _started(LossGreedy())
    sim, state = env.sim, env.sim_state
    before = sim.qv_loss(state)
    after = sim.qv_losses_after(state, state.submissions)
    expected = ((after - before) / before).numpy()
    np.testing.assert_allclose(
        relative_loss_changes(round_input.observation, env.n_workers), expected, rtol=1e-4, atol=1e-7
    )


def test_top_mode_credits_the_n_minus_f_best_workers_uniformly():
    policy = LossGreedy()
    env, round_input = _started(policy)
    credit = policy.act(round_input).credit
    change = relative_loss_changes(round_input.observation, env.n_workers)
    keep = env.n_workers - env.scenario.n_byzantine
    assert np.count_nonzero(credit) == keep and credit.sum() == pytest.approx(1.0)
    assert change[credit > 0].max() <= change[credit == 0].min()
    # Random-Fault rows raise the QV loss: none of them is kept at β = 0.3.
    assert credit[round_input.info["byzantine_mask"]].sum() == 0


def test_softmax_mode_orders_credit_by_loss_drop():
    policy = LossGreedy(mode="softmax", temperature=0.05)
    env, round_input = _started(policy)
    credit = policy.act(round_input).credit
    change = relative_loss_changes(round_input.observation, env.n_workers)
    assert credit.sum() == pytest.approx(1.0)
    assert np.array_equal(np.argsort(-credit, kind="stable"), np.argsort(change, kind="stable"))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mode": "best"}, "mode must be 'top' or 'softmax'"),
        ({"f": -1}, "f must be a non-negative integer"),
        ({"temperature": 0.0}, "temperature must be a finite positive"),
    ],
)
def test_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LossGreedy(**kwargs)


def test_f_must_leave_a_worker():
    with pytest.raises(ValueError, match="needs f < n"):
        _started(LossGreedy(f=8))


def test_loss_greedy_holds_against_a_random_fault_majority():
    result = run_episode(
        "ByzGym/Digits-Majority-v0", make_policy("loss_greedy"), seed=0, rounds=60, env_kwargs={"n_workers": 20}
    )
    uniform = run_episode(
        "ByzGym/Digits-Majority-v0", make_policy("uniform"), seed=0, rounds=60, env_kwargs={"n_workers": 20}
    )
    assert result.byzantine_credit_mass < 0.05
    assert result.final_test_accuracy >= uniform.final_test_accuracy + 0.3
    assert torch.isfinite(torch.tensor(result.final_qv_loss))


def test_loss_greedy_reads_its_column_from_a_subset_observation_and_refuses_one_without_it():
    full_env, full_input = _started(LossGreedy())
    env, round_input = _started(LossGreedy(), features=["cos_qv", "qv_loss_change"])
    np.testing.assert_array_equal(
        relative_loss_changes(round_input.observation, env.n_workers, env.worker_features),
        relative_loss_changes(full_input.observation, full_env.n_workers),
    )
    with pytest.raises(ValueError, match=r"reads the qv_loss_change feature.*features='full'"):
        _started(LossGreedy(), features="compact")
