"""The adaptive fault of Pan et al. (2020) against QV-based defences, and the QV-pool class restriction."""

from __future__ import annotations

import pytest
import torch
from torch.func import vmap

from byz_gym.scenarios import SCENARIOS
from byz_gym.sim import Scenario, Simulator, make_task
from byz_gym.sim.attacks import AdaptiveFault


def adaptive_sim(case: str = "A", qv_classes=None, **params) -> Simulator:
    task = {"name": "digits", "params": {} if qv_classes is None else {"qv_classes": qv_classes}}
    attack = {"tampering": {"name": "adaptive", "params": {"case": case, **params}}}
    return Simulator(Scenario(task=task, n_workers=20, byzantine_fraction=0.3, attack=attack))


def rounds(sim: Simulator, seed: int, checkpoints: tuple[int, ...]):
    """The states at ``checkpoints``, training in between with credit on the honest workers only."""
    state = sim.reset(seed)
    for t in range(max(checkpoints) + 1):
        if t in checkpoints:
            yield state
        state = sim.apply(state, (~state.byzantine_mask).float() / float((~state.byzantine_mask).sum()))


def losses_after_own_step(sim: Simulator, state, x, y) -> tuple[torch.Tensor, torch.Tensor]:
    """``(before [k], after [k])``: each Byzantine worker's loss on its own ``(x[i], y[i])`` before and
    after the server applies that worker's row alone (θ − λVᵢ)."""
    rows = state.submissions[state.byzantine_mask]
    thetas = state.theta - sim.scenario.learning_rate * rows
    before = vmap(sim.loss, in_dims=(None, 0, 0))(state.theta, x, y)
    after = vmap(sim.loss, in_dims=(0, 0, 0))(thetas, x, y)
    return before, after


@pytest.mark.parametrize("seed", [0, 1])
def test_case_a_lowers_the_qv_loss_alone_yet_raises_the_loss_on_the_own_shard(seed):
    sim = adaptive_sim("A")
    qv_x, qv_y = sim.task.qv_x, sim.task.qv_y
    for state in rounds(sim, seed, (0, 40, 80)):
        mask, k = state.byzantine_mask, int(state.byzantine_mask.sum())
        qv_before, qv_after = losses_after_own_step(sim, state, qv_x.expand(k, *qv_x.shape), qv_y.expand(k, -1))
        assert (qv_after < qv_before).all(), f"round {state.round_index}: the QV-pool loss must fall"
        shard_before, shard_after = losses_after_own_step(sim, state, sim.task.shard_x[mask], sim.task.shard_y[mask])
        assert (shard_after > shard_before).all(), f"round {state.round_index}: the own shard's loss must rise"
        honest_norms = sim.honest_gradients(state.theta, seed, state.round_index)[mask].norm(dim=1)
        assert torch.allclose(state.submissions[mask].norm(dim=1), honest_norms, rtol=1e-4)


def test_raw_formula_at_alpha_10_gives_itself_away_on_iid_data():
    # Why project=True is the default: unprojected, the D1 ascent dominates and also raises the QV loss.
    sim = adaptive_sim("A", project=False)
    state = sim.reset(0)
    k = int(state.byzantine_mask.sum())
    qv_x, qv_y = sim.task.qv_x, sim.task.qv_y
    before, after = losses_after_own_step(sim, state, qv_x.expand(k, *qv_x.shape), qv_y.expand(k, -1))
    assert (after > before).all()


def test_case_b_descends_present_classes_and_ascends_the_missing_ones():
    sim = adaptive_sim("B", qv_classes=[0, 1, 2, 3, 4])
    assert set(sim.task.qv_y.tolist()) == {0, 1, 2, 3, 4}
    assert AdaptiveFault.missing_classes(sim.task).tolist() == [5, 6, 7, 8, 9]
    qv_x, qv_y = sim.task.qv_x, sim.task.qv_y
    for state in rounds(sim, 0, (0, 40)):
        mask, k = state.byzantine_mask, int(state.byzantine_mask.sum())
        before, after = losses_after_own_step(sim, state, qv_x.expand(k, *qv_x.shape), qv_y.expand(k, -1))
        assert (after < before).all()
        x, y = sim.task.shard_x[mask], sim.task.shard_y[mask]
        weight = (y >= 5).float() / (y >= 5).float().sum(dim=1, keepdim=True)
        rows = state.submissions[mask]
        thetas = state.theta - sim.scenario.learning_rate * rows
        missing_before = vmap(sim.loss, in_dims=(None, 0, 0, 0))(state.theta, x, y, weight)
        missing_after = vmap(sim.loss, in_dims=(0, 0, 0, 0))(thetas, x, y, weight)
        assert (missing_after > missing_before).all()


def test_case_b_needs_missing_classes():
    with pytest.raises(ValueError, match="qv_classes"):
        adaptive_sim("B").reset(0)


def test_qv_class_restriction():
    task = make_task("digits", n_workers=10, qv_classes=[3])
    assert task.qv_y.unique().tolist() == [3] and task.qv_x.shape[0] == task.qv_y.shape[0] > 0
    full = make_task("digits", n_workers=10)
    assert torch.equal(task.shard_x, full.shard_x), "the restriction touches only the QV pool"
    for bad in ([], [10], ["3"], 3):
        with pytest.raises(ValueError, match="qv_classes"):
            make_task("digits", n_workers=10, qv_classes=bad)


def test_adaptive_preset_is_case_a():
    scenario = SCENARIOS["Digits-Adaptive"]
    assert scenario.attack.tampering.name == "adaptive" and scenario.attack.tampering.params["case"] == "A"
    assert scenario.attack.tampering.params["alpha"] == 10.0
