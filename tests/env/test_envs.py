"""Registry-wide checks: every registered ``ByzGym/...`` id, as HighwayEnv and Minigrid test theirs."""

from __future__ import annotations

import copy
import json
import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env, data_equivalence

from byz_gym.sim import Scenario
from tests.utils import BYZ_SPECS, SMALL, make_small, unexpected


@pytest.mark.parametrize("spec", BYZ_SPECS, ids=lambda s: s.id)
def test_gymnasium_check_env(spec):
    env = make_small(spec, render_mode="rgb_array").unwrapped
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, skip_render_check=False)
    assert unexpected(caught) == []


@pytest.mark.parametrize("spec", BYZ_SPECS, ids=lambda s: s.id)
def test_sb3_check_env(spec):
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = make_small(spec)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sb3_check_env(env, warn=True)
    assert unexpected(caught) == []


@pytest.mark.parametrize("spec", BYZ_SPECS, ids=lambda s: s.id)
def test_passive_checker_through_make(spec):
    env = make_small(spec)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        obs, info = env.reset(seed=3)
        for _ in range(3):
            obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert unexpected(caught) == []
    assert env.observation_space.contains(obs)


@pytest.mark.parametrize("spec", BYZ_SPECS, ids=lambda s: s.id)
def test_same_seed_same_rollout(spec):
    env_a, env_b = make_small(spec, horizon=20), make_small(spec, horizon=20)
    obs_a, info_a = env_a.reset(seed=7)
    obs_b, info_b = env_b.reset(seed=7)
    assert data_equivalence(obs_a, obs_b, exact=True) and data_equivalence(info_a, info_b, exact=True)
    actions = np.random.default_rng(0).uniform(-1, 1, (20, SMALL["n_workers"])).astype(np.float32)
    for action in actions:
        step_a, step_b = env_a.step(action), env_b.step(action)
        assert data_equivalence(step_a, step_b, exact=True)


@pytest.mark.parametrize("spec", BYZ_SPECS, ids=lambda s: s.id)
def test_different_seeds_differ(spec):
    env = make_small(spec)
    obs_a, _ = env.reset(seed=1)
    obs_b, _ = env.reset(seed=2)
    assert not np.array_equal(obs_a, obs_b)


@pytest.mark.parametrize("spec", BYZ_SPECS, ids=lambda s: s.id)
@pytest.mark.parametrize("clone", [lambda e: pickle.loads(pickle.dumps(e)), copy.deepcopy], ids=["pickle", "deepcopy"])
def test_clones_continue_identically(spec, clone):
    env = make_small(spec)
    env.reset(seed=5)
    env.step(env.action_space.sample())
    twin = clone(env)
    for action in np.random.default_rng(1).uniform(-1, 1, (3, SMALL["n_workers"])).astype(np.float32):
        assert data_equivalence(env.step(action), twin.step(action), exact=True)


@pytest.mark.parametrize("spec", BYZ_SPECS, ids=lambda s: s.id)
def test_spec_and_scenario_json_round_trip(spec):
    assert gym.spec(spec.id).to_json() == spec.to_json()
    assert gym.envs.registration.EnvSpec.from_json(spec.to_json()) == spec
    scenario = make_small(spec).unwrapped.scenario
    assert Scenario.from_json(scenario.to_json()) == scenario
    assert json.loads(scenario.to_json())["n_workers"] == SMALL["n_workers"]


@pytest.mark.parametrize("spec", BYZ_SPECS, ids=lambda s: s.id)
def test_truncates_at_max_episode_steps(spec):
    env = gym.make(spec.id, n_workers=SMALL["n_workers"], max_episode_steps=6)
    env.reset(seed=0)
    flags = [env.step(env.action_space.sample())[3] for _ in range(6)]
    assert flags == [False] * 5 + [True]


@pytest.mark.parametrize("spec", BYZ_SPECS, ids=lambda s: s.id)
def test_registered_horizon_is_the_scenario_horizon(spec):
    env = gym.make(spec.id)
    assert spec.max_episode_steps == env.unwrapped.scenario.horizon


@pytest.mark.parametrize("spec", BYZ_SPECS, ids=lambda s: s.id)
def test_sync_vector_env_stacks_infos(spec):
    envs = gym.vector.SyncVectorEnv([lambda: make_small(spec) for _ in range(2)])
    obs, info = envs.reset(seed=[0, 1])
    assert obs.shape == (2, *envs.single_observation_space.shape)
    obs, reward, terminated, truncated, info = envs.step(envs.action_space.sample())
    assert info["credit"].shape == (2, SMALL["n_workers"])
    assert info["byzantine_mask"].dtype == bool
    assert reward.dtype == np.float64 and np.all(np.isfinite(reward))
    envs.close()


def test_async_make_vec_steps():
    # Forked workers must not hang in torch's thread pool (byz_gym makes forked children single-threaded).
    envs = gym.make_vec("ByzGym/Digits-v0", 2, vectorization_mode="async", **SMALL)
    try:
        envs.reset_async(seed=0)
        obs, _ = envs.reset_wait(timeout=120)
        envs.step_async(envs.action_space.sample())
        obs2, reward, *_ = envs.step_wait(timeout=120)
        assert obs2.shape == obs.shape == (2, SMALL["n_workers"] * 7 + 3)
        assert np.all(np.isfinite(reward))
    finally:
        envs.close(terminate=True)


def test_module_prefixed_make_in_a_fresh_interpreter():
    import subprocess
    import sys

    code = "import gymnasium as gym; env = gym.make('byz_gym:ByzGym/Digits-v0', n_workers=4); print(env.reset(seed=0)[0].shape)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "(31,)"


def test_registration_is_idempotent():
    import importlib

    import byz_gym

    before = {k for k in gym.registry if k.startswith("ByzGym/")}
    importlib.reload(byz_gym)
    assert {k for k in gym.registry if k.startswith("ByzGym/")} == before
    assert set(byz_gym.registered_env_ids()) == before
    assert {"ByzGym/Digits-Clean-v0", "ByzGym/Digits-v0", "ByzGym/Digits-Majority-v0"} <= before
