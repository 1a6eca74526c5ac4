"""Smoke test of ``benchmarks/bench_gars.py`` with tiny sizes (speed is measured by the script,
not asserted here)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

import baselines

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_gars.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_gars", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_gars_returns_ratios_for_every_rule(bench) -> None:
    ratios = bench.bench_gars(n=7, f=1, input_dim=8, hidden=4, batch=4, rounds=2, warmup=0)
    assert sorted(ratios) == baselines.available()
    assert ratios["mean"] == 1.0
    assert all(math.isfinite(value) and value > 0 for value in ratios.values())


def test_measure_rounds_reports_dimension_and_exactness(bench) -> None:
    seconds = bench.measure_rounds(n=7, f=1, input_dim=8, hidden=4, batch=4, rounds=1, warmup=0, rules=["brute"])
    assert seconds["dim"] == 8 * 4 + 4 + 4 * 10 + 10
    assert seconds["brute_exact"] == 1.0
    assert set(seconds) == {"mean", "brute", "dim", "brute_exact"}


def test_main_prints_a_table(bench, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--n", "7", "--f", "1", "--rounds", "1", "--warmup", "0", "--rules", "krum"]) == 0
    out = capsys.readouterr().out
    assert "d = 25,450" in out and "krum" in out and "x mean" in out


def test_paired_ratios_divide_step_by_step(bench) -> None:
    times = {"mean": [1.0, 10.0, 1.0], "krum": [1.2, 12.0, 1.3]}  # a slow spell at step 2
    assert bench.paired_ratios(times) == {"mean": 1.0, "krum": pytest.approx(1.2)}
