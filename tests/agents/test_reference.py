from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents import Oracle, RandomCredit, Uniform
from byz_gym.experiments import make_policy, run_episode
from byz_gym.policy import Decision, RoundInput


def _input(mask: np.ndarray) -> RoundInput:
    return RoundInput(np.zeros(3, np.float32), {"byzantine_mask": mask}, lambda: None)


@given(st.lists(st.booleans(), min_size=1, max_size=64))
def test_oracle_credit_is_uniform_over_honest_workers(mask_list):
    mask = np.array(mask_list)
    credit = Oracle().act(_input(mask)).credit
    assert credit.sum() == pytest.approx(1.0) and (credit >= 0).all()
    if (~mask).any():
        assert credit[mask].sum() == 0 and np.allclose(credit[~mask], 1 / (~mask).sum())
    else:
        assert np.allclose(credit, 1 / len(mask))  # all Byzantine: falls back to uniform


@settings(max_examples=25)
@given(st.integers(1, 64), st.integers(0, 2**31))
def test_uniform_and_random_credits_lie_on_the_simplex(n, seed):
    mask = np.zeros(n, bool)
    assert np.allclose(Uniform().act(_input(mask)).credit, 1 / n)
    policy = RandomCredit()
    policy.reset(None, seed)
    credit = policy.act(_input(mask)).credit
    assert credit.shape == (n,) and credit.sum() == pytest.approx(1.0) and (credit >= 0).all()


def test_random_policy_is_seeded():
    first, second = RandomCredit(), RandomCredit()
    first.reset(None, 4)
    second.reset(None, 4)
    mask = np.zeros(5, bool)
    assert np.array_equal(first.act(_input(mask)).credit, second.act(_input(mask)).credit)


def test_only_the_oracle_is_privileged():
    assert Oracle.privileged and not Uniform.privileged and not RandomCredit.privileged
    assert make_policy("oracle").privileged


def test_decision_holds_exactly_one_kind():
    with pytest.raises(ValueError, match="exactly one of action, credit, update"):
        Decision()
    with pytest.raises(ValueError, match="exactly one"):
        Decision(credit=np.ones(2) / 2, action=np.zeros(2))


def test_policies_see_identical_rounds_on_one_seed():
    kwargs = {"n_workers": 8, "eval_every": 2}
    a = run_episode("ByzGym/Digits-v0", Uniform(), seed=9, rounds=4, env_kwargs=kwargs)
    b = run_episode("ByzGym/Digits-v0", Oracle(), seed=9, rounds=4, env_kwargs=kwargs)
    assert a.accuracy_curve[0] == b.accuracy_curve[0]  # same θ₀
    assert a.byzantine_credit_mass == pytest.approx(0.25) and b.byzantine_credit_mass == 0.0
