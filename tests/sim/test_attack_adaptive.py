"""The adaptive fault of Pan et al. (2020) against QV-based defences, and the QV-pool class restriction."""

from __future__ import annotations

import pytest
import torch
from torch.func import vmap

from byz_gym.scenarios import SCENARIOS
from byz_gym.sim import Scenario, Simulator, TamperContext, make_task
from byz_gym.sim.attacks import AdaptiveFault


def adaptive_sim(case: str = "A", qv_classes=None, **params) -> Simulator:
    task = {"name": "digits", "params": {} if qv_classes is None else {"qv_classes": qv_classes}}
    attack = {"tampering": {"name": "adaptive", "params": {"case": case, **params}}}
    return Simulator(Scenario(task=task, n_workers=20, byzantine_fraction=0.3, attack=attack))


MASK = torch.arange(20) % 3 == 0  # 7 Byzantine workers of 20


def checkpoints(qv_classes=None, seed: int = 0, at: tuple[int, ...] = (0, 40, 80)):
    """``(sim, context)`` at rounds ``at`` of a clean run (uniform credit, no attack computed on the
    way, to keep the test fast); the context is built as the simulator builds it."""
    task = {"name": "digits", "params": {} if qv_classes is None else {"qv_classes": qv_classes}}
    sim = Simulator(Scenario(task=task, n_workers=20, byzantine_fraction=0.0))
    state = sim.reset(seed)
    for t in range(max(at) + 1):
        if t in at:
            x, y = sim.worker_batches(seed, t)
            yield (
                sim,
                TamperContext(
                    honest=sim.honest_gradients(state.theta, seed, t),
                    mask=MASK,
                    theta=state.theta,
                    generator=torch.Generator().manual_seed(t),
                    batch_x=x,
                    batch_y=y,
                    task=sim.task,
                    gradient_fn=sim.gradient,
                    loss_fn=sim.loss,
                    round_index=t,
                ),
            )
        state = sim.apply(state, torch.full((20,), 1 / 20))


def losses_after_own_step(sim: Simulator, ctx: TamperContext, rows, x, y, weight=None):
    """``(before [k], after [k])``: each Byzantine worker's loss on its own ``(x[i], y[i])`` before and
    after the server applies that worker's row alone (θ − λVᵢ)."""
    thetas = ctx.theta - sim.scenario.learning_rate * rows
    args = (x, y) if weight is None else (x, y, weight)
    dims = (0,) * len(args)
    before = vmap(sim.loss, in_dims=(None, *dims))(ctx.theta, *args)
    after = vmap(sim.loss, in_dims=(0, *dims))(thetas, *args)
    return before, after


def qv_pool(sim: Simulator, k: int):
    return sim.task.qv_x.expand(k, *sim.task.qv_x.shape), sim.task.qv_y.expand(k, -1)


@pytest.mark.parametrize("seed", [0, 1])
def test_case_a_lowers_the_qv_loss_alone_yet_raises_the_loss_on_the_own_shard(seed):
    attack = AdaptiveFault(case="A", alpha=10.0)
    for sim, ctx in checkpoints(seed=seed):
        rows, k = attack(ctx), ctx.n_byzantine
        qv_before, qv_after = losses_after_own_step(sim, ctx, rows, *qv_pool(sim, k))
        assert (qv_after < qv_before).all(), f"round {ctx.round_index}: the QV-pool loss must fall"
        shard = sim.task.shard_x[MASK], sim.task.shard_y[MASK]
        shard_before, shard_after = losses_after_own_step(sim, ctx, rows, *shard)
        assert (shard_after > shard_before).all(), f"round {ctx.round_index}: the own shard's loss must rise"
        assert torch.allclose(rows.norm(dim=1), ctx.honest[MASK].norm(dim=1), rtol=1e-4), "honest-sized rows"


def test_raw_formula_at_alpha_10_gives_itself_away_on_iid_data():
    # Why project=True is the default: unprojected, the D1 ascent dominates and also raises the QV loss.
    sim, ctx = next(checkpoints(at=(0,)))
    rows = AdaptiveFault(case="A", project=False)(ctx)
    before, after = losses_after_own_step(sim, ctx, rows, *qv_pool(sim, ctx.n_byzantine))
    assert (after > before).all()


def test_case_b_descends_present_classes_and_ascends_the_missing_ones():
    attack = AdaptiveFault(case="B")
    for sim, ctx in checkpoints(qv_classes=[0, 1, 2, 3, 4], at=(0, 40)):
        assert set(sim.task.qv_y.tolist()) == {0, 1, 2, 3, 4}
        assert AdaptiveFault.missing_classes(sim.task).tolist() == [5, 6, 7, 8, 9]
        rows, k = attack(ctx), ctx.n_byzantine
        before, after = losses_after_own_step(sim, ctx, rows, *qv_pool(sim, k))
        assert (after < before).all()
        x, y = sim.task.shard_x[MASK], sim.task.shard_y[MASK]
        weight = (y >= 5).float() / (y >= 5).float().sum(dim=1, keepdim=True)
        missing_before, missing_after = losses_after_own_step(sim, ctx, rows, x, y, weight)
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
