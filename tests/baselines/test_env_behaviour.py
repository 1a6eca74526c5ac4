"""Behaviour on the env (the paper's Fig. 4 finding): against a static Random Fault on digits the
classical robust rules learn at β = 0.3 and fail at β = 0.7, even with f set to the largest value
each rule accepts.

Full default horizon (300 rounds), one seed, the 12 episodes spread over two processes. At β = 0.3
every worker samples its minibatches from the whole training set (partition ``"shared"``, the
i.i.d. setting of Krum's analysis): measured over seeds 0-4 (docs/baselines.md,
docs/results/baselines_fig4.jsonl) each rule ends within 4.2 points of clean training there. On the
default disjoint 26-image shards, Krum and the medoid, which apply one worker's gradient per
round and keep picking the same few workers, plateau 6-16 points lower; a test pins that too. At
β = 0.7 every rule's accuracy collapses to about 9% (a single class).
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
SHARED = {"task": {"name": "digits", "params": {"partition": "shared"}}}
# Points below clean accuracy allowed at beta = 0.3 on shared data (the bound). Measured at
# seed 0: brute 0.0, median -1.7, bulyan -1.4, krum -2.0, geomed -1.4; worst over seeds 0-4: 4.2 (geomed).
MARGIN = 5.0


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
def results() -> dict[tuple[str, str, bool], RunResult]:
    """``(env, rule, shared data)`` -> result."""
    jobs = [(CLEAN, "mean", 0, True), (MINORITY, "krum", f_for("krum", 0.3), False)]
    jobs += [(MINORITY, rule, f_for(rule, 0.3), True) for rule in RULES]
    jobs += [(MAJORITY, rule, f_for(rule, 0.7), False) for rule in RULES]
    context = multiprocessing.get_context("spawn")
    with single_threaded_children(), ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        futures = {
            (env, rule, shared): pool.submit(
                run_episode, env, make_policy(rule, f=f), seed=SEED, env_kwargs=SHARED if shared else None
            )
            for env, rule, f, shared in jobs
        }
        return {key: future.result() for key, future in futures.items()}


def test_f_choices() -> None:
    assert [f_for(rule, 0.3) for rule in RULES] == [15, 15, 15, 11, 15]
    assert [f_for(rule, 0.7) for rule in RULES] == [23, 24, 24, 11, 24]


def test_runs_use_the_full_horizon(results: dict[tuple[str, str, bool], RunResult]) -> None:
    for result in results.values():
        assert result.rounds == 300 and not result.terminated


@pytest.mark.parametrize("rule", RULES)
def test_robust_rules_learn_at_beta_0_3(rule: str, results: dict[tuple[str, str, bool], RunResult]) -> None:
    clean = results[(CLEAN, "mean", True)].final_test_accuracy
    accuracy = results[(MINORITY, rule, True)].final_test_accuracy
    assert clean > 0.9
    assert accuracy >= clean - MARGIN / 100, f"{rule}: {accuracy:.3f} vs clean {clean:.3f}"
    if baselines.GARS.get(rule).linear:
        assert results[(MINORITY, rule, True)].byzantine_credit_mass == 0.0


def test_krum_plateaus_on_small_disjoint_shards(results: dict[tuple[str, str, bool], RunResult]) -> None:
    """Krum keeps selecting the same few workers, so on 26-image shards it learns from little data
    (seed 0 measured: 0.864 on disjoint shards, 0.905 on shared data)."""
    disjoint = results[(MINORITY, "krum", False)]
    assert disjoint.byzantine_credit_mass == 0.0  # robust all the same: never a Byzantine worker
    assert 0.75 < disjoint.final_test_accuracy < results[(MINORITY, "krum", True)].final_test_accuracy - 0.02


@pytest.mark.parametrize("rule", RULES)
def test_robust_rules_fail_at_beta_0_7(rule: str, results: dict[tuple[str, str, bool], RunResult]) -> None:
    accuracy = results[(MAJORITY, rule, False)].final_test_accuracy
    assert accuracy < 0.2, f"{rule} at beta = 0.7 reached {accuracy:.3f}; the Fig. 4 failure no longer reproduces"
    if baselines.GARS.get(rule).linear:
        assert results[(MAJORITY, rule, False)].byzantine_credit_mass > 0.99  # it follows the Byzantine cluster
