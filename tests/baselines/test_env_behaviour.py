"""Behaviour on the env (the paper's Fig. 4 finding): against a static Random Fault on digits the
classical robust rules learn at β = 0.3 and fail at β = 0.7, even with f set to the largest value
each rule accepts.

Full default horizon (300 rounds), one seed, the 11 episodes spread over two processes. The
margins come from measurements over seeds 0-3 recorded in docs/baselines.md: at β = 0.3 Brute,
the median and Bulyan end within 5 points of clean training; Krum and the medoid, which apply a
single worker's gradient each round, lag by 6-16 points at this horizon (the mean itself ends
near 30%). At β = 0.7 every rule's accuracy collapses to about 8.5% (a single class).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager

import pytest

import baselines
from byz_gym.experiments import RunResult, make_policy, run_episode

SEED = 0
N = 50  # workers in the digits presets
RULES = ["krum", "geomed", "median", "bulyan", "brute"]
CLEAN, MINORITY, MAJORITY = "ByzGym/Digits-Clean-v0", "ByzGym/Digits-v0", "ByzGym/Digits-Majority-v0"
# Points below clean accuracy allowed at beta = 0.3 (seed 0 measured: brute +0.3, median -1.7,
# bulyan -2.8, krum -5.6, geomed -6.1; worst over seeds 0-3: 1.1, 4.7, 3.9, 14.8, 15.6).
MARGIN = {"brute": 5.0, "median": 5.0, "bulyan": 5.0, "krum": 10.0, "geomed": 10.0}


def f_for(rule: str, beta: float) -> int:
    """The true Byzantine count capped at what the rule accepts (beta = 0.3), or the largest f
    the rule accepts (beta = 0.7)."""
    largest = baselines.GARS.get(rule).max_f(N)
    return min(round(beta * N), largest) if beta < 0.5 else largest


@contextmanager
def single_threaded_children() -> Iterator[None]:
    """Spawned workers read OMP_NUM_THREADS at start: one thread each, two workers on two cores."""
    old = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        yield
    finally:
        if old is None:
            del os.environ["OMP_NUM_THREADS"]
        else:
            os.environ["OMP_NUM_THREADS"] = old


@pytest.fixture(scope="module")
def results() -> dict[tuple[str, str], RunResult]:
    jobs = [(CLEAN, "mean", 0)]
    jobs += [(env, rule, f_for(rule, beta)) for env, beta in ((MINORITY, 0.3), (MAJORITY, 0.7)) for rule in RULES]
    context = multiprocessing.get_context("spawn")
    with single_threaded_children(), ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        futures = {
            (env, rule): pool.submit(run_episode, env, make_policy(rule, f=f), seed=SEED) for env, rule, f in jobs
        }
        return {key: future.result() for key, future in futures.items()}


def test_f_choices() -> None:
    assert [f_for(rule, 0.3) for rule in RULES] == [15, 15, 15, 11, 15]
    assert [f_for(rule, 0.7) for rule in RULES] == [23, 24, 24, 11, 24]


def test_runs_use_the_full_horizon(results: dict[tuple[str, str], RunResult]) -> None:
    for result in results.values():
        assert result.rounds == 300 and not result.terminated


@pytest.mark.parametrize("rule", RULES)
def test_robust_rules_learn_at_beta_0_3(rule: str, results: dict[tuple[str, str], RunResult]) -> None:
    clean = results[(CLEAN, "mean")].final_test_accuracy
    accuracy = results[(MINORITY, rule)].final_test_accuracy
    assert clean > 0.88
    assert accuracy >= clean - MARGIN[rule] / 100, f"{rule}: {accuracy:.3f} vs clean {clean:.3f}"
    if baselines.GARS.get(rule).linear:
        assert results[(MINORITY, rule)].byzantine_credit_mass == 0.0


@pytest.mark.parametrize("rule", RULES)
def test_robust_rules_fail_at_beta_0_7(rule: str, results: dict[tuple[str, str], RunResult]) -> None:
    accuracy = results[(MAJORITY, rule)].final_test_accuracy
    assert accuracy < 0.2, f"{rule} at beta = 0.7 reached {accuracy:.3f}; the Fig. 4 failure no longer reproduces"
    if baselines.GARS.get(rule).linear:
        assert results[(MAJORITY, rule)].byzantine_credit_mass > 0.99  # it follows the Byzantine cluster
