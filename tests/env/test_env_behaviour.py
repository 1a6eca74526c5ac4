"""Semantics of one env: rewards, actions, info, termination, rendering, and the headline numbers."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from agents import Oracle, Uniform
from byz_gym.env import ByzantineAggregationEnv
from byz_gym.experiments import run_episode
from tests.utils import SMALL, make_small

N = SMALL["n_workers"]
INFO_KEYS = {
    "round",
    "credit",
    "byzantine_mask",
    "byzantine_credit",
    "qv_loss_before",
    "qv_loss_after",
    "test_accuracy",
    "test_accuracy_round",
    "termination_reason",
}


@pytest.fixture
def env() -> ByzantineAggregationEnv:
    env = make_small("ByzGym/Digits-v0").unwrapped
    env.reset(seed=0)
    return env


def test_reward_is_the_qv_loss_drop_recomputed_independently(env):
    sim = env.sim
    for _ in range(4):
        state = env._state  # test-only peek at the private state to recompute the reward
        action = env.action_space.sample()
        credit = torch.softmax(env.temperature * torch.from_numpy(action).double(), 0).float()
        x, y = sim.qv_batch(state)
        model = sim.model
        before = torch.nn.functional.cross_entropy(model(state.theta, x), y)
        theta_next = state.theta - 0.05 * (credit[:, None] * state.submissions).sum(0)
        after = torch.nn.functional.cross_entropy(model(theta_next, x), y)
        _, reward, terminated, truncated, info = env.step(action)
        assert reward == pytest.approx(float(before - after), abs=1e-5)
        assert info["qv_loss_before"] == pytest.approx(float(before), abs=1e-6)
        assert info["qv_loss_after"] == pytest.approx(float(after), abs=1e-5)
        np.testing.assert_allclose(info["credit"], credit.numpy(), atol=1e-6)
        assert not terminated and not truncated


def test_info_has_the_same_keys_and_types_on_reset_and_step(env):
    _, info_reset = env.reset(seed=1)
    *_, info_step = env.step(env.action_space.sample())
    for info in (info_reset, info_step):
        assert set(info) == INFO_KEYS
        assert info["credit"].dtype == np.float32 and info["credit"].shape == (N,)
        assert info["byzantine_mask"].dtype == bool and info["byzantine_mask"].sum() == round(0.3 * N)
        assert isinstance(info["byzantine_credit"], float) and isinstance(info["test_accuracy"], float)
        assert info["termination_reason"] == ""
    np.testing.assert_allclose(info_reset["credit"], np.full(N, 1 / N))
    assert info_reset["test_accuracy_round"] == 0 and info_step["round"] == 1


def test_byzantine_credit_is_the_mass_on_byzantine_workers(env):
    _, info = env.reset(seed=2)
    mask = info["byzantine_mask"]
    credit = np.where(mask, 0.5 / mask.sum(), 0.5 / (~mask).sum())
    *_, info = env.step_credit(credit)
    assert info["byzantine_credit"] == pytest.approx(0.5, abs=1e-6)


def test_test_accuracy_is_evaluated_on_cadence_and_at_the_horizon():
    env = make_small("ByzGym/Digits-v0", horizon=7, eval_every=5)
    env.reset(seed=0)
    rounds = [env.step(env.action_space.sample())[4]["test_accuracy_round"] for _ in range(7)]
    assert rounds == [0, 0, 0, 0, 5, 5, 7]


@pytest.mark.parametrize(
    "action, message",
    [
        (np.zeros(N + 1, np.float32), rf"action must have shape \({N},\)"),
        (np.full(N, np.nan, np.float32), "contains NaN or Inf"),
        (np.full(N, 2.0, np.float32), "action must lie in Box"),
        ("left", "action must be an array"),
    ],
)
def test_invalid_softmax_actions_raise(env, action, message):
    with pytest.raises(ValueError, match=message):
        env.step(action)


@pytest.mark.parametrize(
    "credit, message",
    [
        (np.full(N, 0.5), "credit must lie on the simplex"),
        (np.r_[-0.5, np.full(N - 1, 1.5 / (N - 1))], "credit must lie on the simplex"),
        (np.full(N - 1, 1 / (N - 1)), rf"action must have shape \({N},\) for Simplex"),
        (np.r_[np.nan, np.full(N - 1, 1 / (N - 1))], "NaN or Inf"),
    ],
)
def test_simplex_mode_rejects_points_off_the_simplex(credit, message):
    env = make_small("ByzGym/Digits-v0", action_mode="simplex")
    env.reset(seed=0)
    with pytest.raises(ValueError, match=message):
        env.step(credit)


def test_simplex_mode_applies_the_action_as_credit():
    env = make_small("ByzGym/Digits-v0", action_mode="simplex")
    env.reset(seed=0)
    assert env.action_space.contains(env.action_space.sample())
    credit = np.random.default_rng(0).dirichlet(np.ones(N)).astype(np.float32)
    *_, info = env.step(credit)
    np.testing.assert_allclose(info["credit"], credit / credit.sum(), atol=1e-7)


def test_softmax_temperature_sharpens_the_credit():
    action = np.linspace(-1, 1, N, dtype=np.float32)
    cold = make_small("ByzGym/Digits-v0").unwrapped.credit_from_action(action)
    hot = make_small("ByzGym/Digits-v0", temperature=10.0).unwrapped.credit_from_action(action)
    assert hot.max() > cold.max() and hot.sum() == pytest.approx(1.0) and cold.sum() == pytest.approx(1.0)


def test_step_before_reset_is_a_clear_error():
    env = make_small("ByzGym/Digits-v0").unwrapped
    with pytest.raises(RuntimeError, match=r"call reset\(\) before step"):
        env.step(np.zeros(N, np.float32))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"action_mode": "logits"}, "action_mode must be one of"),
        ({"temperature": 0.0}, "temperature must be a finite positive"),
        ({"render_mode": "human"}, "render_mode must be one of"),
        ({"n_worker": 5}, r"unknown key\(s\) \['n_worker'\]"),
        ({"scenario": "Nope"}, "unknown scenario 'Nope'; presets: Digits-Clean, Digits"),
        ({"features": "tiny"}, "unknown feature set 'tiny'"),
        ({"features": ["log_norm", "cos_mode"]}, "at least one per-worker feature"),
    ],
)
def test_bad_constructor_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ByzantineAggregationEnv(**kwargs)


def test_divergence_terminates_with_a_reason_and_the_penalty(env):
    obs, reward, terminated, truncated, info = env.step_update(torch.full((env.sim.dim,), float("inf")))
    assert terminated and not truncated
    assert info["termination_reason"] == "non-finite parameters"
    assert reward == -10.0
    assert np.all(np.isfinite(obs)) and env.observation_space.contains(obs)


def test_update_steps_report_nan_credit(env):
    update = env.submissions.median(dim=0).values
    *_, info = env.step_update(update)
    assert np.isnan(info["credit"]).all() and np.isnan(info["byzantine_credit"])


def test_submissions_are_a_copy(env):
    rows = env.submissions
    rows.fill_(0.0)
    assert env.submissions.abs().sum() > 0


def test_render_modes():
    env = make_small("ByzGym/Digits-v0", render_mode="ansi")
    _, info = env.reset(seed=0)
    text = env.render()
    assert text.count(" B ") == info["byzantine_mask"].sum() and text.startswith("round 0")
    rgb = make_small("ByzGym/Digits-v0", render_mode="rgb_array")
    rgb.reset(seed=0)
    mask = np.zeros(N, bool)
    credit = np.full(N, 1 / N)
    *_, info = rgb.unwrapped.step_credit(credit)
    image = rgb.render()
    assert image.dtype == np.uint8 and image.shape == (120, N * 6, 3)
    red = (image == [204, 0, 0]).all(axis=2).any(axis=0)
    assert red.reshape(N, 6).any(axis=1).sum() == info["byzantine_mask"].sum() or mask.any() is False


def test_observation_never_contains_raw_gradients(env):
    obs, *_ = env.step(env.action_space.sample())
    assert obs.shape == (N * 7 + 3,) < (env.sim.dim,)


# -- headline numbers (README): the default episode on digits, n = 50 ------------------------------
@pytest.fixture(scope="module")
def headline():
    results = {}
    for seed in (0, 1):
        results[("clean", seed)] = run_episode("ByzGym/Digits-Clean-v0", Uniform(), seed=seed)
        results[("uniform", seed)] = run_episode("ByzGym/Digits-v0", Uniform(), seed=seed)
        results[("oracle", seed)] = run_episode("ByzGym/Digits-v0", Oracle(), seed=seed)
    return {k: r.final_test_accuracy for k, r in results.items()}


@pytest.mark.parametrize("seed", [0, 1])
def test_clean_uniform_reaches_90_percent_in_the_default_episode(headline, seed):
    assert headline[("clean", seed)] >= 0.90


@pytest.mark.parametrize("seed", [0, 1])
def test_random_fault_wrecks_averaging_while_the_oracle_holds(headline, seed):
    clean = headline[("clean", seed)]
    assert headline[("uniform", seed)] <= clean - 0.40
    assert headline[("oracle", seed)] >= clean - 0.03


def test_registered_default_episode_length():
    assert gym.spec("ByzGym/Digits-v0").max_episode_steps == 300


def test_sim_state_is_the_current_round(env):
    *_, info = env.step(env.action_space.sample())
    state = env.sim_state
    assert state.round_index == info["round"] == 1
    assert np.array_equal(state.byzantine_mask.numpy(), info["byzantine_mask"])
    assert torch.equal(state.submissions, env.submissions)


@pytest.mark.parametrize("env_id", ["ByzGym/Digits-v0", "ByzGym/Digits-Majority-v0"])
def test_compact_observation_is_the_full_observations_columns_step_for_step(env_id):
    full = make_small(env_id).unwrapped
    compact = make_small(env_id, features="compact").unwrapped
    k = len(compact.worker_features)
    assert compact.worker_features == ("log_norm", "cos_mean", "cos_qv", "previous_credit")
    assert compact.observation_space.shape == (k * N + 3,)
    columns = [0, 1, 3, 6]  # of the full observation's 7 per-worker features
    keep = np.concatenate([(np.arange(N)[:, None] * 7 + np.array(columns)).ravel(), 7 * N + np.arange(3)])
    np.testing.assert_array_equal(compact.observation_space.low, full.observation_space.low[keep])
    np.testing.assert_array_equal(compact.observation_space.high, full.observation_space.high[keep])
    obs_full, _ = full.reset(seed=3)
    obs_compact, _ = compact.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(4):
        np.testing.assert_array_equal(obs_compact, obs_full[keep])
        assert compact.observation_space.contains(obs_compact)
        action = rng.uniform(-1, 1, N).astype(np.float32)
        obs_full, reward_full, *_ = full.step(action)
        obs_compact, reward_compact, *_ = compact.step(action)
        assert reward_compact == reward_full


def test_compact_env_passes_the_gymnasium_checker():
    from gymnasium.utils.env_checker import check_env

    check_env(make_small("ByzGym/Digits-v0", features=["cos_qv", "distance_score"]).unwrapped)


def test_the_scenario_horizon_truncates_the_episode_without_a_matching_time_limit():
    env = gym.make("ByzGym/Digits-v0", n_workers=6, horizon=3)  # the registered TimeLimit stays 300
    env.reset(seed=0)
    flags = [env.step(env.action_space.sample())[2:4] for _ in range(3)]
    assert flags == [(False, False), (False, False), (False, True)]
    env = gym.make("ByzGym/Digits-v0", n_workers=6, horizon=12, max_episode_steps=2)  # the shorter one wins
    env.reset(seed=0)
    assert [env.step(env.action_space.sample())[3] for _ in range(2)] == [False, True]
