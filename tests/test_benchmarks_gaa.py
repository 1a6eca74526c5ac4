"""Smoke test of ``benchmarks/bench_gaa.py`` with tiny sizes (speed is measured by the script,
not asserted here)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_gaa.py"
TINY = dict(n=5, input_dim=6, hidden=3, batch=4, task_params={"qv_pool_size": 8, "test_size": 10})


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_gaa", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_gaa_returns_finite_ratios(bench) -> None:
    ratios = bench.bench_gaa(**TINY, rounds=2, warmup=0, segment_length=2)
    assert set(ratios) == {*bench.ROUNDS, *bench.BREAKDOWN, "other", "features_warm"}
    assert ratios["mean"] == 1.0
    assert all(math.isfinite(value) for value in ratios.values())
    assert all(ratios[name] > 0 for name in (*bench.ROUNDS, *bench.BREAKDOWN, "features_warm"))


def test_measure_rounds_reports_sizes_and_a_consistent_breakdown(bench) -> None:
    seconds = bench.measure_rounds(**TINY, rounds=1, warmup=0, segment_length=1)
    assert seconds["dim"] == 6 * 3 + 3 + 3 * 10 + 10
    assert seconds["n"] == 5
    explained = sum(seconds[name] for name in bench.BREAKDOWN)
    assert seconds["other"] == pytest.approx(seconds["gaa"] - seconds["mean"] - explained)


def test_the_simulator_is_the_synthetic_task_under_random_fault(bench) -> None:
    sim = bench.build_simulator()
    assert sim.dim == 25_450 and sim.n_workers == 50 and sim.n_byzantine == 15
    assert sim.scenario.task.name == "synthetic"
    assert sim.scenario.attack.schedule.name == "static" and sim.scenario.attack.tampering.name == "random_fault"


def test_bad_sizes_raise(bench) -> None:
    with pytest.raises(ValueError, match="segment_length"):
        bench.measure_rounds(**TINY, rounds=1, segment_length=0)


def test_main_prints_rounds_and_breakdown(bench, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--n", "4", "--input-dim", "5", "--hidden", "2", "--rounds", "1", "--warmup", "0", "--segment-length", "1"]
    assert bench.main(argv) == 0
    out = capsys.readouterr().out
    assert "d = 42" in out and "x mean" in out
    assert "features='full'" in out and "features='compact'" in out  # both by default
    assert "floor: the features alone" in out
    for label in ("gaa (training)", "gaa (frozen)", "features", "agent_forward", "backward", "other", "gaa (online)"):
        assert label in out


def test_env_steps_are_timed_for_mean_and_online_gaa(bench) -> None:
    seconds = bench.measure_env_steps(**TINY, rounds=2, warmup=0)
    assert set(seconds) == {"mean_env", "gaa_env"}
    assert all(math.isfinite(v) and v > 0 for v in seconds.values())


def test_the_compact_agent_ignores_what_the_compact_env_leaves_out(bench) -> None:
    seconds = bench.measure_env_steps(**TINY, rounds=1, warmup=0, features="compact")
    assert all(math.isfinite(v) and v > 0 for v in seconds.values())
