"""Smoke test of ``benchmarks/bench_env.py`` in its quick mode (speed is measured by the script,
not asserted here)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_env.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_env", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_measure_steps_reports_times_ratio_and_breakdown(bench) -> None:
    result = bench.measure_steps(n_workers=5, rounds=2, warmup=1)
    assert {"raw", "step", "ratio", "raw_mean", "step_mean", "breakdown", "n", "dim", "rounds"} <= set(result)
    assert result["n"] == 5 and result["dim"] == 2410 and result["rounds"] == 2
    assert set(result["breakdown"]) == set(bench.BREAKDOWN)
    for key in ("raw", "step", "ratio", "raw_mean", "step_mean", "observation_warm"):
        assert math.isfinite(result[key]) and result[key] > 0, key
    assert result["ratio"] == pytest.approx(result["step"] / result["raw"])
    # The parts (with "other" the remainder) add up to the mean step time.
    assert sum(result["breakdown"].values()) == pytest.approx(result["step_mean"], rel=1e-6)


def test_bench_env_is_the_ratio(bench) -> None:
    ratio = bench.bench_env(n_workers=4, rounds=1, warmup=0)
    assert math.isfinite(ratio) and ratio > 0


def test_main_quick_prints_the_table(bench, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert f"n = {bench.QUICK['n_workers']}, d = 2,410" in out
    assert "features='full'" in out and "features='compact'" in out  # both sets by default
    assert "raw simulator round" in out and "env.step" in out and "ratio env.step / raw round" in out
    for label in bench.BREAKDOWN.values():
        assert label in out
    assert "total (mean env.step)" in out
    assert "floor: the observation alone" in out
