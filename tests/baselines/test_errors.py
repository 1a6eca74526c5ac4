"""Infeasible (n, f), bad parameters and bad inputs raise errors that say what was wrong and how to
fix it."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import baselines
from baselines import GARS

BOUNDS = {
    "mean": "n >= f+1",
    "median": "n >= 2f+1",
    "trimmed_mean": "n >= 2f+1",
    "krum": "n >= 2f+3",
    "multi_krum": "n >= 2f+3",
    "brute": "n >= 2f+1",
    "geomed": "n >= 2f+1",
    "geometric_median": "n >= 2f+1",
    "bulyan": "n >= 4f+3",
    "centered_clipping": "n >= 2f+1",
    "norm_clipping": "n >= 2f+1",
}


def test_bounds_table_covers_every_rule() -> None:
    assert sorted(BOUNDS) == baselines.available()


@pytest.mark.parametrize("name", baselines.available())
@pytest.mark.parametrize("f", [1, 4])
def test_infeasible_n_f_raises_at_construction_naming_the_bound(name: str, f: int) -> None:
    cls = GARS.get(name)
    need = cls.min_workers(f)
    assert cls.bound == BOUNDS[name]
    with pytest.raises(ValueError, match=re.escape(f"needs {BOUNDS[name]}; got n={need - 1}, f={f}")) as info:
        baselines.make(name, n=need - 1, f=f)
    assert f"at most {cls.max_f(need - 1)}" in str(info.value)
    baselines.make(name, n=need, f=f)  # the bound itself is feasible
    assert cls.max_f(need) >= f


@pytest.mark.parametrize("name", baselines.available())
def test_infeasible_rows_raise_at_aggregate_when_n_was_not_given(name: str) -> None:
    cls = GARS.get(name)
    rule = baselines.make(name, f=2)
    with pytest.raises(ValueError, match=re.escape(BOUNDS[name])):
        rule.aggregate(torch.zeros(cls.min_workers(2) - 1, 3))


@pytest.mark.parametrize("name", baselines.available())
def test_sized_rule_rejects_another_number_of_rows(name: str) -> None:
    rule = baselines.make(name, n=20, f=1)
    with pytest.raises(ValueError, match="built for n=20 workers but got 21 rows"):
        rule.aggregate(torch.zeros(21, 3))


@pytest.mark.parametrize("bad", [-1, 1.5, True, "2", None])
def test_f_must_be_a_non_negative_integer(bad: object) -> None:
    with pytest.raises(ValueError, match="f"):
        baselines.Krum(f=bad)  # type: ignore[arg-type]


def test_make_rejects_unknown_names_params_and_missing_f() -> None:
    with pytest.raises(ValueError, match="unknown aggregation rule 'krumm'; available: brute, bulyan"):
        baselines.make("krumm", n=10, f=1)
    with pytest.raises(ValueError, match=r"got unknown parameter\(s\) \['mm'\]; valid: \['m'\]"):
        baselines.make("multi_krum", n=10, f=1, mm=3)
    with pytest.raises(ValueError, match="'krum' needs f"):
        baselines.make("krum", n=10)
    assert baselines.make("mean", n=10).f == 0  # mean does not need f
    with pytest.raises(ValueError, match="unknown pre-aggregator 'nnn'"):
        baselines.make("krum", n=10, f=1, pre=["nnn"])
    with pytest.raises(ValueError, match="a pre-aggregator is a name"):
        baselines.make("krum", n=10, f=1, pre=[{"nam": "nnm"}])


def test_rule_knobs_are_validated() -> None:
    with pytest.raises(ValueError, match=r"MultiKrum needs 1 <= m <= n - f; got m=10, n=10, f=1"):
        baselines.make("multi_krum", n=10, f=1, m=10)
    with pytest.raises(ValueError, match="m must be a positive integer"):
        baselines.make("multi_krum", n=10, f=1, m=0)
    with pytest.raises(ValueError, match="max_nodes"):
        baselines.make("brute", n=10, f=1, max_nodes=0)
    with pytest.raises(ValueError, match="tau"):
        baselines.make("centered_clipping", n=10, f=1, tau=float("inf"))
    with pytest.raises(ValueError, match="center must be one of"):
        baselines.make("centered_clipping", n=10, f=1, center="mean")
    with pytest.raises(ValueError, match="tau"):
        baselines.make("norm_clipping", n=10, f=1, tau=-1.0)
    with pytest.raises(ValueError, match="max_iter"):
        baselines.make("geometric_median", n=10, f=1, max_iter=0)
    with pytest.raises(ValueError, match="bucket size"):
        baselines.make("krum", n=10, f=1, pre=[{"name": "bucketing", "params": {"s": 0}}])


def test_pre_aggregators_resize_the_rule_and_check_the_bound() -> None:
    # bucketing with s = 2 leaves ceil(50 / 2) = 25 rows: Krum then needs 25 >= 2f + 3, so f <= 11
    assert baselines.make("krum", n=50, f=11, pre=["bucketing"]).rule.n == 25
    with pytest.raises(ValueError, match=re.escape("Krum needs n >= 2f+3; got n=25, f=12")):
        baselines.make("krum", n=50, f=12, pre=["bucketing"])
    with pytest.raises(ValueError, match=re.escape("NNM needs n >= 2f+1; got n=10, f=5")):
        baselines.make("median", n=10, f=5, pre=["nnm"])


@pytest.mark.parametrize(
    ("grads", "error", "message"),
    [
        (np.zeros((4, 3)), TypeError, "takes a \\[n, d\\] torch.Tensor, got ndarray"),
        ([[0.0]], TypeError, "got list"),
        (torch.zeros(4), ValueError, "shape \\[n, d\\]"),
        (torch.zeros(4, 0), ValueError, "shape \\[n, d\\]"),
        (torch.zeros(4, 3, dtype=torch.int64), ValueError, "floating tensor"),
    ],
)
def test_bad_inputs_say_what_was_expected(grads: object, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        baselines.make("krum", f=0).aggregate(grads)  # type: ignore[arg-type]


def test_wrong_shared_distances_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"distances must be the \[n, n\] = \[5, 5\]"):
        baselines.make("krum", n=5, f=1).aggregate(torch.zeros(5, 2), distances=torch.zeros(4, 4))
