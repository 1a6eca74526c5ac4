from __future__ import annotations

import pickle

import pytest
import torch

from byz_gym.sim import TASKS, Scenario, Simulator, make_task
from byz_gym.sim.model import FlatModel


def test_synthetic_is_registered_with_its_parameters():
    assert "synthetic" in TASKS
    assert {"input_dim", "num_classes", "hidden", "samples_per_worker", "qv_pool_size", "test_size"} <= set(
        TASKS.parameters("synthetic")
    )


def test_default_shapes_and_the_paper_mnist_model_size():
    task = make_task("synthetic", n_workers=5)
    assert task.name == "synthetic" and task.num_classes == 10
    assert task.shard_x.shape == (5, 64, 784) and task.shard_y.shape == (5, 64)
    assert task.qv_x.shape == (100, 784) and task.qv_y.shape == (100,)
    assert task.test_x.shape == (500, 784) and task.test_y.shape == (500,)
    assert task.shard_x.dtype == torch.float32 and task.shard_y.dtype == torch.int64
    assert FlatModel(task.model_factory).dim == 784 * 32 + 32 + 32 * 10 + 10 == 25_450
    for labels in (task.shard_y, task.qv_y, task.test_y):
        assert labels.min() >= 0 and labels.max() < 10
    assert torch.bincount(task.test_y, minlength=10).tolist() == [50] * 10  # balanced classes


def test_custom_sizes_shape_data_and_model():
    params = dict(input_dim=20, num_classes=3, hidden=4, samples_per_worker=6, qv_pool_size=9, test_size=12)
    task = make_task("synthetic", n_workers=4, **params)
    assert task.shard_x.shape == (4, 6, 20) and task.qv_x.shape == (9, 20) and task.test_x.shape == (12, 20)
    assert task.num_classes == 3 and int(task.shard_y.max()) < 3
    assert FlatModel(task.model_factory).dim == 20 * 4 + 4 + 4 * 3 + 3


def test_split_seed_fixes_the_data():
    a = make_task("synthetic", n_workers=3, input_dim=16, split_seed=7)
    b = make_task("synthetic", n_workers=3, input_dim=16, split_seed=7)
    c = make_task("synthetic", n_workers=3, input_dim=16, split_seed=8)
    for name in ("shard_x", "shard_y", "qv_x", "qv_y", "test_x", "test_y"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), rtol=0, atol=0)
    assert not torch.equal(a.shard_x, c.shard_x)


def test_label_skew_gives_each_worker_about_two_classes():
    task = make_task("synthetic", n_workers=10, input_dim=8, partition="label_skew")
    assert task.shard_x.shape == (10, 64, 8)
    classes = [len(torch.unique(row)) for row in task.shard_y]
    assert max(classes) <= 4 and sum(classes) / len(classes) <= 3


@pytest.mark.parametrize(
    "params",
    [{"input_dim": 0}, {"num_classes": 1}, {"separation": -1.0}, {"partition": "dirichlet"}, {"test_size": 1.5}],
)
def test_bad_parameters_raise(params):
    with pytest.raises(ValueError):
        make_task("synthetic", n_workers=3, **params)


def test_unknown_parameter_lists_the_valid_ones():
    with pytest.raises(ValueError, match="samples_per_worker"):
        make_task("synthetic", n_workers=3, samples=10)


def test_a_synthetic_scenario_runs_in_the_simulator_and_pickles():
    sim = Simulator(
        Scenario(
            task={"name": "synthetic", "params": {"input_dim": 12, "hidden": 5}},
            n_workers=6,
            byzantine_fraction=0.5,
        )
    )
    state = sim.reset(0)
    assert state.submissions.shape == (6, sim.dim) == (6, 12 * 5 + 5 + 5 * 10 + 10)
    assert int(state.byzantine_mask.sum()) == 3
    state = sim.apply(state, torch.full((6,), 1 / 6))
    assert state.round_index == 1 and torch.isfinite(state.theta).all()
    clone = pickle.loads(pickle.dumps(sim))
    torch.testing.assert_close(clone.reset(0).theta, sim.reset(0).theta)


def test_uniform_credit_learns_the_default_task():
    n = 10
    sim = Simulator(Scenario(task={"name": "synthetic"}, n_workers=n))
    assert sim.dim == 25_450
    state = sim.reset(0)
    before = sim.test_accuracy(state)
    credit = torch.full((n,), 1.0 / n)
    for _ in range(50):
        state = sim.apply(state, credit)
    after = sim.test_accuracy(state)
    assert before < 0.2
    assert after > 0.3  # about 0.46 with these seeds; chance is 0.1
