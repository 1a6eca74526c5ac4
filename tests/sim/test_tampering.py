"""Tamperings: shape, dtype and definition of every registered one, reproducibility, ALIE's band,
label flip training on flipped labels. The adaptive fault and the line searches have their own
files (``test_attack_adaptive.py``, ``test_attack_line_search.py``)."""

from __future__ import annotations

import pytest
import torch

from byz_gym.sim import TAMPERINGS, Scenario, Simulator, TamperContext
from byz_gym.sim.attacks import alie_z


def coordinate_median(grads: torch.Tensor) -> torch.Tensor:
    return grads.median(dim=0).values


# Parameters for the tamperings that need some; the rest run with their defaults.
PARAMS = {"alie_line_search": {"gar": coordinate_median}, "ipm_line_search": {"gar": coordinate_median}}


def simulator(tampering: str, *, n: int = 10, beta: float = 0.3, **params) -> Simulator:
    sim = Simulator(Scenario(n_workers=n, byzantine_fraction=beta))
    sim.tampering = TAMPERINGS.make(tampering, **{**PARAMS.get(tampering, {}), **params})
    return sim


def context(sim: Simulator, seed: int = 0) -> tuple[TamperContext, torch.Tensor]:
    """The round-0 context of ``sim`` and its honest gradients, built as the simulator builds it."""
    state = sim.reset(seed)
    honest = sim.honest_gradients(state.theta, seed, 0)
    x, y = sim.worker_batches(seed, 0)
    ctx = TamperContext(
        honest=honest,
        mask=state.byzantine_mask,
        theta=state.theta,
        generator=torch.Generator().manual_seed(5),
        batch_x=x,
        batch_y=y,
        task=sim.task,
        gradient_fn=sim.gradient,
        loss_fn=sim.loss,
    )
    return ctx, honest


def test_registry_holds_every_tampering():
    expected = {
        "random_fault", "sign_flip", "zero", "constant", "scaled", "gaussian_noise", "label_flip", "nonfinite",
        "huge", "alie", "ipm", "mimic", "alie_line_search", "ipm_line_search", "adaptive",
    }  # fmt: skip
    assert expected <= set(TAMPERINGS.names())


@pytest.mark.parametrize("name", TAMPERINGS.names())
def test_shape_dtype_and_reproducibility(name):
    sims = [simulator(name), simulator(name)]
    states = [sim.reset(3) for sim in sims]
    for _ in range(2):  # credit on the honest workers only, so that θ stays finite under any attack
        states = [sim.apply(s, (~s.byzantine_mask).float() / 7) for sim, s in zip(sims, states, strict=True)]
    a, b = states
    assert a.submissions.shape == (10, sims[0].dim) and a.submissions.dtype == torch.float32
    assert torch.equal(a.byzantine_mask, b.byzantine_mask) and int(a.byzantine_mask.sum()) == 3
    assert torch.allclose(a.submissions, b.submissions, rtol=0, atol=0, equal_nan=True)
    honest = sims[0].honest_gradients(a.theta, 3, 2)
    assert torch.equal(a.submissions[~a.byzantine_mask], honest[~a.byzantine_mask])
    ctx, _ = context(sims[0])
    rows = sims[0].tampering(ctx)
    assert rows.shape == (ctx.n_byzantine, sims[0].dim) and rows.dtype == torch.float32


def test_simple_faults_match_their_definition():
    ctx, honest = context(simulator("zero"))
    own = honest[ctx.mask]
    assert torch.equal(TAMPERINGS.make("zero")(ctx), torch.zeros_like(own))
    assert torch.equal(TAMPERINGS.make("constant", value=-2.5)(ctx), torch.full_like(own, -2.5))
    assert torch.allclose(TAMPERINGS.make("scaled", factor=4.0)(ctx), 4.0 * own)
    assert torch.allclose(TAMPERINGS.make("sign_flip", scale=2.0)(ctx), -2.0 * own)
    noise = TAMPERINGS.make("gaussian_noise", std=0.5)(ctx) - own
    assert abs(float(noise.std()) - 0.5) < 0.02 and abs(float(noise.mean())) < 0.02
    assert torch.isnan(TAMPERINGS.make("nonfinite")(ctx)).all()
    assert torch.isposinf(TAMPERINGS.make("nonfinite", value="inf")(ctx)).all()
    mixed = TAMPERINGS.make("nonfinite", value="mixed")(ctx)
    assert not torch.isfinite(mixed).any() and torch.isnan(mixed).any() and torch.isneginf(mixed).any()
    huge = TAMPERINGS.make("huge")(ctx)
    assert torch.isfinite(huge).all()
    assert torch.allclose(
        huge.double().norm(dim=1), torch.full((ctx.n_byzantine,), 1e30, dtype=torch.float64), rtol=1e-5
    )


def test_ipm_and_mimic_match_their_definition():
    ctx, honest = context(simulator("ipm"))
    mean = honest[~ctx.mask].mean(dim=0)
    assert torch.allclose(TAMPERINGS.make("ipm", epsilon=0.5)(ctx), (-0.5 * mean).expand(ctx.n_byzantine, -1))
    first_honest = int((~ctx.mask).nonzero()[0])
    assert torch.equal(TAMPERINGS.make("mimic")(ctx), honest[first_honest].expand(ctx.n_byzantine, -1))
    last_honest = int((~ctx.mask).nonzero()[-1])
    assert torch.equal(TAMPERINGS.make("mimic", target=last_honest)(ctx)[0], honest[last_honest])
    byzantine = int(ctx.mask.nonzero()[0])  # a Byzantine target falls back to the first honest worker
    assert torch.equal(TAMPERINGS.make("mimic", target=byzantine)(ctx)[0], honest[first_honest])


def test_alie_z_follows_baruch_et_al():
    assert alie_z(50, 15) == pytest.approx(0.7722, abs=1e-4)  # s = 26 - 15 = 11, Φ⁻¹(39/50)
    assert alie_z(50, 0) == 0.0 and alie_z(10, 9) == pytest.approx(2.3263, abs=1e-4)


@pytest.mark.parametrize("seed", [0, 1])
def test_alie_stays_within_the_honest_coordinate_band(seed):
    sim = simulator("alie", n=50)
    state = sim.reset(seed)
    for _ in range(20):  # a few rounds into training, where gradients are less uniform
        state = sim.apply(state, (~state.byzantine_mask).float() / 35)
    honest = sim.honest_gradients(state.theta, seed, state.round_index)[~state.byzantine_mask]
    rows = state.submissions[state.byzantine_mask]
    assert (rows == rows[0]).all(), "all ALIE workers send one vector"
    mean, std, z = honest.mean(dim=0), honest.std(dim=0), alie_z(50, 15)
    assert ((rows[0] - mean).abs() <= z * std + 1e-6).all(), "outside mean ± z·std"
    inside = (rows[0] >= honest.min(dim=0).values - 1e-7) & (rows[0] <= honest.max(dim=0).values + 1e-7)
    # Not every coordinate: where one honest worker holds a rare outlier, σ is large and μ − zσ falls
    # below the honest minimum (measured 97-99% inside on digits).
    assert float(inside.float().mean()) > 0.95, "ALIE must look like an honest coordinate almost everywhere"


def test_label_flip_rows_are_gradients_on_flipped_labels():
    sim = simulator("label_flip")
    ctx, honest = context(sim)
    rows = sim.tampering(ctx)
    x, y = ctx.batch_x[ctx.mask], ctx.batch_y[ctx.mask]
    for row, xi, yi in zip(rows, x, y, strict=True):  # reference: one worker at a time
        theta = ctx.theta.clone().requires_grad_(True)
        (expected,) = torch.autograd.grad(sim.loss(theta, xi, 9 - yi), theta)
        assert torch.allclose(row, expected, atol=1e-6)
    assert not torch.allclose(rows, honest[ctx.mask], atol=1e-4)
    shift = TAMPERINGS.make("label_flip", mapping="shift")
    assert torch.equal(shift.flip(torch.tensor([0, 8, 9]), 10, ctx.generator), torch.tensor([1, 9, 0]))
    drawn = TAMPERINGS.make("label_flip", mapping="random").flip(y, 10, torch.Generator().manual_seed(0))
    assert not (drawn == y).any() and ((drawn >= 0) & (drawn < 10)).all()


def test_label_flip_really_trains_on_flipped_labels():
    sim = Simulator(Scenario(n_workers=10, byzantine_fraction=1.0, attack={"tampering": "label_flip"}))
    state = sim.reset(0)
    for _ in range(150):  # every worker flips; the server averages
        state = sim.apply(state, torch.full((10,), 0.1))
    predictions = sim.model(state.theta, sim.task.test_x).argmax(dim=1)
    assert float((predictions == 9 - sim.task.test_y).float().mean()) > 0.6
    assert float((predictions == sim.task.test_y).float().mean()) < 0.2


def test_random_fault_rows_do_not_depend_on_the_policy():
    sims = [simulator("random_fault"), simulator("random_fault")]
    a, b = sims[0].reset(9), sims[1].reset(9)
    a = sims[0].apply(a, torch.full((10,), 0.1))
    b = sims[1].apply(b, torch.eye(10)[0])
    assert torch.equal(a.submissions[a.byzantine_mask], b.submissions[b.byzantine_mask])


def test_missing_context_fields_are_named():
    ctx, _ = context(simulator("label_flip"))
    bare = TamperContext(honest=ctx.honest, mask=ctx.mask, theta=ctx.theta, generator=ctx.generator)
    with pytest.raises(ValueError, match="batch_x"):
        TAMPERINGS.make("label_flip")(bare)
    with pytest.raises(ValueError, match="gradient_fn"):
        TAMPERINGS.make("adaptive")(bare)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("constant", {"value": float("nan")}),
        ("scaled", {"factor": float("inf")}),
        ("gaussian_noise", {"std": -1.0}),
        ("nonfinite", {"value": "zero"}),
        ("huge", {"norm": 1e40}),
        ("label_flip", {"mapping": "upside_down"}),
        ("mimic", {"target": -1}),
        ("alie", {"z": float("nan")}),
        ("adaptive", {"case": "C"}),
        ("adaptive", {"norm": "unit"}),
        ("alie_line_search", {"criterion": "maybe"}),
        ("ipm_line_search", {"scales": []}),
        ("zero", {"value": 1.0}),
    ],
)
def test_bad_parameters_raise(name, params):
    with pytest.raises(ValueError):
        TAMPERINGS.make(name, **params)
