from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from byz_gym.scenarios import SCENARIOS
from byz_gym.sim import Scenario, Simulator, make_task, pairwise_sq_distances


@pytest.fixture(scope="module")
def sim() -> Simulator:
    return Simulator(SCENARIOS["Digits"].replace(n_workers=12))


def test_sim_core_imports_without_gymnasium():
    code = (
        "import sys; sys.modules['gymnasium'] = None\n"  # any gymnasium import now raises ImportError
        "import byz_gym.sim as s\n"
        "sim = s.Simulator(s.Scenario(n_workers=4)); st = sim.reset(0); sim.apply(st, __import__('torch').full((4,), 0.25))\n"
        "print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_vectorised_gradients_match_the_per_worker_loop(sim):
    state = sim.reset(3)
    for _ in range(3):
        state = sim.apply(state, torch.full((12,), 1 / 12))
    fast = sim.honest_gradients(state.theta, state.seed, state.round_index)
    slow = sim.honest_gradients_reference(state.theta, state.seed, state.round_index)
    assert fast.shape == (12, sim.dim) == (12, 2410)
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-6)


def test_apply_is_the_credit_weighted_step(sim):
    state = sim.reset(0)
    credit = torch.softmax(torch.linspace(-1, 1, 12), 0)
    nxt = sim.apply(state, credit)
    expected = state.theta - 0.05 * (credit[:, None] * state.submissions).sum(0)
    torch.testing.assert_close(nxt.theta, expected)
    assert nxt.round_index == 1
    same = sim.apply_update(state, (credit[:, None] * state.submissions).sum(0))
    torch.testing.assert_close(same.theta, nxt.theta)


def test_zero_credit_rows_contribute_nothing_even_when_non_finite(sim):
    state = sim.reset(0)
    poisoned = state.submissions.clone()
    poisoned[0] = float("nan")
    poisoned[1] = float("inf")
    state = type(state)(state.theta, 0, state.seed, state.schedule_state, state.byzantine_mask, poisoned)
    credit = torch.zeros(12)
    credit[2:] = 0.1
    assert torch.isfinite(sim.apply(state, credit).theta).all()


def test_apply_keeps_the_graph_for_differentiable_credit(sim):
    state = sim.reset(0)
    logits = torch.zeros(12, requires_grad=True)
    nxt = sim.apply(state, torch.softmax(logits, 0))
    loss = sim.qv_loss(state, nxt.theta)
    (gradient,) = torch.autograd.grad(loss, logits)
    assert torch.isfinite(gradient).all() and gradient.abs().sum() > 0
    assert not nxt.submissions.requires_grad  # worker gradients are inputs by default


def test_same_seed_same_trajectory_bit_for_bit(sim):
    def roll(seed):
        state = sim.reset(seed)
        thetas = []
        for t in range(5):
            state = sim.apply(state, torch.softmax(torch.arange(12.0) * t / 10, 0))
            thetas.append(state.theta)
        return torch.stack(thetas), state.submissions

    a, b = roll(11), roll(11)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], roll(12)[0])


def test_common_random_numbers_across_policies():
    sim = Simulator(SCENARIOS["Digits"].replace(n_workers=12))
    uniform, skewed = sim.reset(4), sim.reset(4)
    for _ in range(4):
        uniform = sim.apply(uniform, torch.full((12,), 1 / 12))
        skewed = sim.apply(skewed, torch.softmax(torch.arange(12.0), 0))
    assert torch.equal(uniform.byzantine_mask, skewed.byzantine_mask)
    assert torch.equal(sim.qv_batch(uniform)[1], sim.qv_batch(skewed)[1])
    x_u, y_u = sim.worker_batches(uniform.seed, uniform.round_index)
    x_s, y_s = sim.worker_batches(skewed.seed, skewed.round_index)
    assert torch.equal(x_u, x_s) and torch.equal(y_u, y_s)
    # The honest gradients at the same θ are the same whichever policy led there.
    honest_u = sim.honest_gradients(uniform.theta, uniform.seed, uniform.round_index)
    honest_s = sim.honest_gradients(uniform.theta, skewed.seed, skewed.round_index)
    assert torch.equal(honest_u, honest_s)


def test_static_random_fault_rows(sim):
    state = sim.reset(1)
    mask = state.byzantine_mask
    assert mask.sum() == round(0.3 * 12) == 4
    bad = state.submissions[mask]
    assert (bad - 0.5).abs().max() < 2e-6 * 8  # N(0.5, (2e-6)^2) samples
    assert bad.std(dim=0).mean() > 0  # not identical rows
    honest = sim.honest_gradients(state.theta, state.seed, 0)
    assert torch.equal(state.submissions[~mask], honest[~mask])
    # Random-fault rows cluster tightly: the float64 distance keeps that.
    distances = pairwise_sq_distances(bad)
    off_diagonal = distances[~torch.eye(len(bad), dtype=torch.bool)]
    assert off_diagonal.max() < 4 * 2 * 2410 * (2e-6) ** 2


def test_sign_flip_sends_the_negated_honest_gradient():
    sim = Simulator(
        Scenario(
            n_workers=6, byzantine_fraction=0.5, attack={"tampering": {"name": "sign_flip", "params": {"scale": 2.0}}}
        )
    )
    state = sim.reset(0)
    honest = sim.honest_gradients(state.theta, state.seed, 0)
    torch.testing.assert_close(state.submissions[state.byzantine_mask], -2.0 * honest[state.byzantine_mask])


def test_clean_scenario_has_no_byzantine_worker():
    sim = Simulator(SCENARIOS["Digits-Clean"].replace(n_workers=6))
    state = sim.reset(0)
    assert not state.byzantine_mask.any()


def test_digits_task_split_is_disjoint_and_equal_sized():
    task = make_task("digits", n_workers=50)
    assert task.shard_x.shape == (50, 26, 64) and task.shard_y.shape == (50, 26)
    assert task.qv_x.shape == (100, 64) and task.test_x.shape == (359, 64)
    rows = {tuple(r.tolist()) for r in task.shard_x.reshape(-1, 64)}
    qv_rows = {tuple(r.tolist()) for r in task.qv_x}
    test_rows = {tuple(r.tolist()) for r in task.test_x}
    # A few digits images are exact duplicates in the data set; the split itself is disjoint.
    assert len(rows & qv_rows) <= 2 and len(rows & test_rows) <= 5
    assert task.shard_x.reshape(-1, 64).mean().abs() < 0.1  # standardised with training statistics


def test_label_skew_gives_each_worker_few_classes():
    iid = make_task("digits", n_workers=20)
    skew = make_task("digits", n_workers=20, partition="label_skew")
    classes = lambda task: torch.tensor([len(set(row.tolist())) for row in task.shard_y]).float().mean()  # noqa: E731
    assert classes(skew) <= 3.0 < classes(iid)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"partition": "dirichlet"}, "unknown partition 'dirichlet'"),
        ({"qv_pool_size": 0}, "qv_pool_size must be in"),
        ({"test_fraction": 1.0}, r"test_fraction must be in \(0, 1\)"),
        ({"bogus": 1}, r"unknown parameter\(s\) \['bogus'\]"),
    ],
)
def test_task_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_task("digits", n_workers=10, **kwargs)


def test_too_many_workers_for_the_data_is_a_clear_error():
    with pytest.raises(ValueError, match="cannot give each of n_workers=5000"):
        make_task("digits", n_workers=5000)


def test_unknown_components_list_the_available_ones():
    with pytest.raises(ValueError, match="unknown task 'mnist'; available: digits"):
        Simulator(Scenario(task="mnist"))
    with pytest.raises(ValueError, match="unknown tampering 'nope'"):
        Simulator(Scenario(attack={"tampering": "nope"}))
    with pytest.raises(ValueError, match=r"random_fault' got unknown parameter\(s\) \['sigma'\]"):
        Simulator(Scenario(attack={"tampering": {"name": "random_fault", "params": {"sigma": 1}}}))


def test_shared_partition_gives_every_worker_the_whole_training_set_without_copies():
    iid = make_task("digits", n_workers=50)
    shared = make_task("digits", n_workers=50, partition="shared")
    assert shared.shard_x.shape[0] == 50 and shared.shard_x.stride(0) == 0  # one copy, viewed 50 times
    assert torch.equal(shared.shard_x[0], shared.shard_x[49]) and torch.equal(shared.shard_y[0], shared.shard_y[49])
    assert shared.shard_size == 1338 >= 50 * iid.shard_size  # every training image, none dropped
    assert torch.equal(shared.test_x, iid.test_x) and torch.equal(shared.qv_x, iid.qv_x)  # same split otherwise
    sim = Simulator(Scenario(task={"name": "digits", "params": {"partition": "shared"}}))
    x, _ = sim.worker_batches(seed=0, round_index=0)
    assert x.shape == (50, 64, 64)
    for rows in x[:3]:  # without replacement within a worker's batch
        assert len({tuple(r.tolist()) for r in rows}) >= 63  # (a few digits images are exact duplicates)
    assert not torch.equal(x[0], x[1])  # workers draw their own batches
