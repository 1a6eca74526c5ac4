"""Attack schedules: each one's Byzantine set over rounds matches its definition."""

from __future__ import annotations

import math

import pytest
import torch

from byz_gym.sim import SCHEDULES, Scenario, Simulator, round_generator
from byz_gym.sim.simulator import _STREAM_SCHEDULE


def masks(schedule, n: int, k: int, seed: int, rounds: int) -> torch.Tensor:
    """``bool[rounds, n]``: the schedule driven exactly as the simulator drives it."""
    state = schedule.reset(n, k, round_generator(seed, 0, _STREAM_SCHEDULE))
    rows = [schedule.mask(state)]
    for t in range(1, rounds):
        state = schedule.advance(state, t, round_generator(seed, t, _STREAM_SCHEDULE))
        rows.append(schedule.mask(state))
    return torch.stack(rows)


def test_registry_holds_every_schedule():
    assert {"static", "pretense", "randomized", "periodic", "rotating", "ramp", "curve"} <= set(SCHEDULES.names())


def test_static_keeps_one_set():
    m = masks(SCHEDULES.make("static"), 20, 6, seed=3, rounds=30)
    assert (m == m[0]).all() and int(m[0].sum()) == 6


@pytest.mark.parametrize("honest_rounds", [0, 1, 7])
def test_pretense_is_clean_for_exactly_L_rounds(honest_rounds):
    for seed in range(5):
        m = masks(SCHEDULES.make("pretense", honest_rounds=honest_rounds), 10, 7, seed, rounds=20)
        assert not m[:honest_rounds].any()
        assert (m[honest_rounds:] == m[honest_rounds]).all() and int(m[honest_rounds].sum()) == 7


@pytest.mark.parametrize("q", [0.5, 0.2])
def test_randomized_flip_frequency_is_q(q):
    n, k, period, rounds, seeds = 20, 15, 5, 41, 200
    schedule = SCHEDULES.make("randomized", period=period, flip_probability=q, initial_fraction=0.4)
    flips = trials = 0
    for seed in range(seeds):
        m = masks(schedule, n, k, seed, rounds)
        compromised = schedule.reset(n, k, round_generator(seed, 0, _STREAM_SCHEDULE)).compromised
        assert int(compromised.sum()) == k and int(m[0].sum()) == math.floor(0.4 * k)
        assert not (m & ~compromised).any(), "an honest worker became Byzantine"
        changed = m[1:] ^ m[:-1]  # changed[t-1]: roles changed between t-1 and t
        flip_rounds = torch.arange(1, rounds) % period == 0
        assert not changed[~flip_rounds].any(), "roles changed outside the flip rounds"
        flips += int(changed[flip_rounds].sum())
        trials += int(flip_rounds.sum()) * k
    rate, sigma = flips / trials, math.sqrt(q * (1 - q) / trials)
    assert abs(rate - q) < 5 * sigma, f"flip rate {rate:.4f} vs q={q} (5σ = {5 * sigma:.4f})"


def test_periodic_swaps_every_role_each_period():
    schedule = SCHEDULES.make("periodic", period=4, initial_fraction=1.0)
    m = masks(schedule, 10, 9, seed=1, rounds=13)
    assert (m[0:4] == m[0]).all() and int(m[0].sum()) == 9
    assert not m[4:8].any() and (m[8:12] == m[0]).all() and not m[12].any()
    half = masks(SCHEDULES.make("periodic", period=3, initial_fraction=0.5), 10, 10, seed=2, rounds=7)
    assert int(half[0].sum()) == 5 and (half[3] == ~half[0]).all() and (half[6] == half[0]).all()


def test_rotating_redraws_every_period():
    n, k, period = 12, 4, 3
    m = masks(SCHEDULES.make("rotating", period=period), n, k, seed=0, rounds=300)
    assert (m.sum(dim=1) == k).all()
    blocks = m.view(100, period, n)
    assert (blocks == blocks[:, :1]).all(), "the set changed inside a period"
    distinct = {tuple(b[0].tolist()) for b in blocks}
    assert len(distinct) > 80  # fresh draws: C(12, 4) = 495 possible sets
    share = blocks[:, 0].float().mean(dim=0)  # each worker Byzantine in about k/n of the periods
    assert torch.allclose(share, torch.full((n,), k / n), atol=0.15)


def test_ramp_and_curve_follow_their_count():
    ramp = SCHEDULES.make("ramp", start_fraction=0.0, start_round=5, end_round=15)
    m = masks(ramp, 20, 10, seed=4, rounds=25)
    expected = [math.floor(min(max(t - 5, 0) / 10, 1.0) * 10 + 1e-9) for t in range(25)]
    assert m.sum(dim=1).tolist() == expected
    assert (m[:-1] <= m[1:]).all(), "a growing count must keep earlier Byzantine workers"

    curve = SCHEDULES.make("curve", points=[[0, 1.0], [10, 0.0], [20, 0.5]], interpolation="step")
    counts = masks(curve, 8, 8, seed=0, rounds=25).sum(dim=1).tolist()
    assert counts == [8] * 10 + [0] * 10 + [4] * 5
    linear = SCHEDULES.make("curve", points=[[0, 1.0], [10, 0.0]])
    assert masks(linear, 8, 8, seed=0, rounds=12).sum(dim=1).tolist() == [8, 7, 6, 5, 4, 4, 3, 2, 1, 0, 0, 0]


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("pretense", {"honest_rounds": -1}),
        ("randomized", {"period": 0}),
        ("randomized", {"flip_probability": 1.5}),
        ("periodic", {"initial_fraction": -0.1}),
        ("rotating", {"period": 2.5}),
        ("ramp", {"start_round": 10, "end_round": 10}),
        ("curve", {"points": [[5, 0.5], [5, 1.0]]}),
        ("curve", {"points": [[0, 2.0]]}),
        ("curve", {"points": []}),
        ("curve", {"interpolation": "cubic"}),
    ],
)
def test_bad_parameters_raise(name, params):
    with pytest.raises(ValueError):
        SCHEDULES.make(name, **params)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("pretense", {"honest_rounds": 3}),
        ("randomized", {"period": 2, "flip_probability": 0.5}),
        ("periodic", {"period": 2}),
        ("rotating", {"period": 1}),
        ("ramp", {"end_round": 4}),
    ],
)
def test_simulator_masks_are_reproducible_and_independent_of_the_policy(name, params):
    scenario = Scenario(n_workers=10, byzantine_fraction=0.6, attack={"schedule": {"name": name, "params": params}})
    assert Scenario.from_json(scenario.to_json()) == scenario
    runs = []
    for credit_seed in (0, 1):  # two different policies on the same episode seed
        sim = Simulator(scenario)
        state, seen = sim.reset(11), []
        credit_gen = torch.Generator().manual_seed(credit_seed)
        for _ in range(8):
            seen.append(state.byzantine_mask)
            credit = torch.rand(10, generator=credit_gen)
            state = sim.apply(state, credit / credit.sum())
        runs.append(torch.stack(seen))
    assert torch.equal(runs[0], runs[1])
    assert torch.equal(runs[0], masks(SCHEDULES.make(name, **params), 10, 6, seed=11, rounds=8))
