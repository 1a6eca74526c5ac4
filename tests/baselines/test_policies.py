"""Every rule is a policy of the same name: construction, reset-time sizing, decisions, SB3-style
``predict`` and the CLI."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch

import baselines
import byz_gym
from byz_gym.experiments import make_policy
from byz_gym.policy import POLICIES

gym.register_envs(byz_gym)
SMALL = {"n_workers": 12, "horizon": 4, "eval_every": 2}  # 4 Byzantine workers (beta = 0.3)
ENV = "ByzGym/Digits-v0"


def make_env(**kwargs):
    return gym.make(ENV, **{**SMALL, **kwargs})


@pytest.mark.parametrize("name", baselines.available())
def test_every_rule_is_a_registered_policy_with_the_rule_knobs(name: str) -> None:
    assert name in POLICIES
    params = POLICIES.parameters(name)
    assert params[:2] == ["f", "pre"]
    rule_knobs = [p for p in baselines.GARS.parameters(name) if p not in ("f", "n")]
    assert params[2:] == rule_knobs
    policy = make_policy(name)
    assert policy.name == name and not policy.privileged


@pytest.fixture(scope="module")
def small_env():
    env = make_env()
    yield env
    env.close()


@pytest.mark.parametrize("name", baselines.available())
def test_rule_policies_decide_and_step(name: str, small_env) -> None:
    from byz_gym.policy import RoundInput

    observation, info = small_env.reset(seed=0)
    env = small_env.unwrapped
    f = min(2, baselines.GARS.get(name).max_f(SMALL["n_workers"]))
    policy = make_policy(name, f=f)
    policy.reset(env, 0)
    decision = policy.act(RoundInput(observation, info, lambda: env.submissions))
    if baselines.GARS.get(name).linear:
        assert decision.credit is not None and np.isclose(decision.credit.sum(), 1.0)
        _, _, terminated, _, info = env.step_credit(decision.credit)
        assert 0.0 <= info["byzantine_credit"] <= 1.0
    else:
        assert decision.update is not None and decision.update.shape == (env.sim.dim,)
        _, _, terminated, _, info = env.step_update(decision.update)
        assert np.isnan(info["credit"]).all()
    assert not terminated


def test_f_defaults_to_the_scenario_byzantine_count() -> None:
    env = make_env()
    env.reset(seed=0)
    policy = make_policy("krum")
    policy.reset(env.unwrapped, 0)
    assert policy.rule.f == env.unwrapped.scenario.n_byzantine == 4
    assert policy.rule.n == 12


def test_infeasible_f_at_reset_says_which_f_would_work() -> None:
    env = make_env()
    env.reset(seed=0)
    policy = make_policy("bulyan")  # f defaults to 4, Bulyan needs n >= 4f+3 = 19 > 12
    with pytest.raises(ValueError, match=r"policy 'bulyan' with n=12 workers and f=4 \(defaulted") as info:
        policy.reset(env.unwrapped, 0)
    assert "Bulyan needs n >= 4f+3" in str(info.value)
    assert "'{\"f\": 2}'" in str(info.value)


def test_unknown_policy_params_are_rejected_early() -> None:
    with pytest.raises(ValueError, match="unknown parameter"):
        make_policy("krum", m=3)
    with pytest.raises(ValueError, match="m must be a positive integer"):
        make_policy("multi_krum", m=0)


def test_linear_rules_decide_credit_and_non_linear_rules_an_update() -> None:
    env = make_env()
    observation, info = env.reset(seed=0)
    from byz_gym.policy import RoundInput

    round_input = RoundInput(observation, info, lambda: env.unwrapped.submissions)
    krum, median = make_policy("krum", f=2), make_policy("median", f=2)
    krum.reset(env.unwrapped, 0)
    median.reset(env.unwrapped, 0)
    credit = krum.act(round_input).credit
    assert credit.shape == (12,) and np.isclose(credit.sum(), 1.0) and credit.max() == 1.0
    assert not info["byzantine_mask"][int(np.argmax(credit))]  # Krum avoids the Random-Fault cluster here
    update = median.act(round_input).update
    assert isinstance(update, torch.Tensor) and update.shape == (env.unwrapped.sim.dim,)


def test_pre_aggregators_through_policy_kwargs(small_env) -> None:
    small_env.reset(seed=0)
    policy = make_policy("krum", f=2, pre=["nnm"])
    policy.reset(small_env.unwrapped, 0)
    assert policy.rule.name == "nnm+krum"


def test_predict_acts_like_an_sb3_model_on_a_simplex_env() -> None:
    env = make_env(action_mode="simplex")
    observation, _ = env.reset(seed=1)
    policy = make_policy("multi_krum", f=4)
    policy.bind(env)
    total = 0.0
    for _ in range(3):
        action, state = policy.predict(observation, deterministic=True)
        assert state is None and action.dtype == np.float32 and env.action_space.contains(action)
        observation, reward, terminated, truncated, info = env.step(action)
        total += info["byzantine_credit"]
    assert total == 0.0


def test_predict_with_a_dummy_vec_env() -> None:
    from stable_baselines3.common.vec_env import DummyVecEnv

    vec = DummyVecEnv([lambda: make_env(action_mode="simplex") for _ in range(2)])
    observations = vec.reset()
    policy = make_policy("krum", f=2)
    policy.bind(vec)
    actions, _ = policy.predict(observations)
    assert actions.shape == (2, 12)
    vec.step(actions)


def test_predict_refuses_softmax_envs_and_non_linear_rules() -> None:
    env = make_env()
    observation, _ = env.reset(seed=0)
    krum = make_policy("krum", f=2)
    krum.bind(env)
    with pytest.raises(ValueError, match="action_mode='simplex'"):
        krum.predict(observation)
    median = make_policy("median", f=2)
    median.bind(env)
    with pytest.raises(ValueError, match="non-linear rule"):
        median.predict(observation)
    with pytest.raises(RuntimeError, match="bind"):
        make_policy("geomed").predict(observation)


def test_cli_runs_a_rule_policy(capsys: pytest.CaptureFixture[str]) -> None:
    from byz_gym.cli import main

    argv = ["run", "--policy", "krum", "--policy-kwargs", '{"f": 2}', "--env-kwargs", json.dumps(SMALL)]
    assert main([*argv, "--rounds", "2", "--json"]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["policy"] == "krum" and record["rounds"] == 2
    assert main(["run", "--policy", "bulyan", "--env-kwargs", json.dumps(SMALL), "--rounds", "1"]) == 2
    assert "Bulyan needs n >= 4f+3" in capsys.readouterr().err
