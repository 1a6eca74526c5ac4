from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import grad

from byz_gym.scenarios import SCENARIOS
from byz_gym.sim import (
    FEATURE_SETS,
    GLOBAL_FEATURES,
    WORKER_FEATURES,
    FlatModel,
    SimState,
    Simulator,
    resolve_worker_features,
    round_features,
)
from byz_gym.sim.simulator import _StackedMLP


@pytest.fixture(scope="module")
def sim() -> Simulator:
    return Simulator(SCENARIOS["Digits"].replace(n_workers=10))


def _with_submissions(state: SimState, submissions: torch.Tensor) -> SimState:
    return SimState(state.theta, state.round_index, state.seed, state.schedule_state, state.byzantine_mask, submissions)


@pytest.mark.parametrize("poison", [float("nan"), float("inf"), -float("inf"), 1e30, 3e38])
def test_features_are_finite_and_bounded_under_hostile_rows(sim, poison):
    state = sim.reset(0)
    submissions = state.submissions.clone()
    submissions[:3] = poison
    per_worker, global_ = round_features(sim, _with_submissions(state, submissions), torch.full((10,), 0.1))
    assert per_worker.shape == (10, len(WORKER_FEATURES)) and global_.shape == (len(GLOBAL_FEATURES),)
    assert torch.isfinite(per_worker).all() and torch.isfinite(global_).all()
    for j, feature in enumerate(WORKER_FEATURES):
        high = 10.0 if feature.high is None else feature.high
        assert per_worker[:, j].min() >= feature.low and per_worker[:, j].max() <= high, feature.name


def test_features_tell_random_fault_rows_apart_at_minority(sim):
    state = sim.reset(2)
    per_worker, _ = round_features(sim, state, torch.full((10,), 0.1))
    names = [f.name for f in WORKER_FEATURES]
    mask = state.byzantine_mask
    cos_qv = per_worker[:, names.index("cos_qv")]
    score = per_worker[:, names.index("distance_score")]
    assert cos_qv[~mask].min() > cos_qv[mask].max()  # honest gradients align with the QV gradient
    assert score[mask].min() > score[~mask].max()  # outliers are far from the rest


def test_one_step_loss_change_matches_a_direct_computation(sim):
    state = sim.reset(5)
    per_worker, global_ = round_features(sim, state, torch.full((10,), 0.1))
    names = [f.name for f in WORKER_FEATURES]
    before = sim.qv_loss(state)
    after = torch.stack([sim.qv_loss(state, state.theta - 0.05 * v) for v in state.submissions])
    relative = (after - before) / before
    expected = torch.sign(relative) * torch.log1p(relative.abs())
    torch.testing.assert_close(per_worker[:, names.index("qv_loss_change")], expected, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(global_[0], torch.log1p(before))
    torch.testing.assert_close(per_worker[:, names.index("previous_credit")], torch.ones(10))


def _reference_features(sim: Simulator, state: SimState, previous_credit: torch.Tensor):
    """The features straight from their definitions, in float64 with exact distances (slow)."""
    grads = state.submissions.double()
    n = grads.shape[0]
    qv_loss = sim.qv_loss(state).double()
    qv_grad = sim.qv_gradient(state).double()
    after = torch.stack([sim.qv_loss(state, state.theta - sim.scenario.learning_rate * v) for v in state.submissions])
    mean, median = grads.mean(0), grads.nanmedian(0).values

    def cos(reference):
        return torch.nn.functional.cosine_similarity(grads, reference[None], dim=1, eps=1e-300)

    dist = torch.cdist(grads, grads, compute_mode="donot_use_mm_for_euclid_dist")
    off = dist[~torch.eye(n, dtype=torch.bool)].view(n, n - 1)
    score = off.median(dim=1).values / off.reshape(-1).median()

    def symlog(x):
        return torch.sign(x) * torch.log1p(x.abs())

    per_worker = torch.stack(
        [
            symlog(grads.norm(dim=1)),
            cos(mean),
            cos(median),
            cos(qv_grad),
            symlog((after.double() - qv_loss) / qv_loss),
            symlog(score),
            n * previous_credit.double(),
        ],
        dim=1,
    )
    return per_worker, symlog(torch.stack([qv_loss, mean.norm(), qv_grad.norm()]))


@pytest.mark.parametrize("scenario", ["Digits", "Digits-Majority", "Digits-ALIE"])
def test_features_match_their_float64_definitions(scenario):
    """The fast path (float32 products, median-centred Gram, batched QV losses) against the
    definitions. Digits-Majority's distance medians land on tight pairs, where the float32 Gram is
    not trusted and the exact distances are used."""
    sim = Simulator(SCENARIOS[scenario].replace(n_workers=12))
    state = sim.reset(4)
    credit = torch.softmax(torch.linspace(-1, 1, 12), 0)
    score = [f.name for f in WORKER_FEATURES].index("distance_score")
    for _ in range(3):
        submitted = state.submissions.clone()
        per_worker, global_ = round_features(sim, state, credit)
        assert torch.equal(state.submissions, submitted)  # the median sorts a copy
        expected_per_worker, expected_global = _reference_features(sim, state, credit)
        torch.testing.assert_close(per_worker.double(), expected_per_worker, rtol=1e-4, atol=2e-5)
        torch.testing.assert_close(global_.double(), expected_global, rtol=1e-5, atol=1e-5)
        # The distance score itself (not its symlog) to 1e-5 relative: tight pairs are not trusted
        # to the float32 Gram (which is ~1e-4 off on Digits-Majority's honest pairs).
        torch.testing.assert_close(
            torch.expm1(per_worker[:, score].double()), torch.expm1(expected_per_worker[:, score]), rtol=1e-5, atol=0.0
        )
        state = sim.apply(state, credit)


def test_qv_probe_matches_the_separate_qv_methods(sim):
    state = sim.apply(sim.reset(6), torch.full((10,), 0.1))
    probe = sim.qv_probe(state, state.submissions)
    torch.testing.assert_close(probe.loss, sim.qv_loss(state))
    torch.testing.assert_close(probe.gradient, sim.qv_gradient(state), rtol=1e-4, atol=1e-7)
    after = torch.stack([sim.qv_loss(state, state.theta - 0.05 * v) for v in state.submissions])
    torch.testing.assert_close(probe.losses_after, after, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(sim.qv_losses_after(state, state.submissions), after, rtol=1e-5, atol=1e-6)
    thetas = state.theta - 0.05 * state.submissions[:3]
    torch.testing.assert_close(sim.qv_losses_at(state, thetas), after[:3], rtol=1e-5, atol=1e-6)


def test_features_are_the_same_without_the_stacked_mlp_fast_path():
    """Models that are not plain MLPs take the vmap / torch.func path: same features."""
    fast = Simulator(SCENARIOS["Digits"].replace(n_workers=10))
    generic = Simulator(SCENARIOS["Digits"].replace(n_workers=10))
    assert fast._mlp is not None  # the digits MLP qualifies
    generic._mlp = None
    state = fast.apply(fast.reset(7), torch.full((10,), 0.1))
    credit = torch.full((10,), 0.1)
    for a, b in zip(round_features(fast, state, credit), round_features(generic, state, credit), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    probe_fast, probe_generic = fast.qv_probe(state, state.submissions), generic.qv_probe(state, state.submissions)
    for a, b in zip(probe_fast, probe_generic, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("activation", [nn.ReLU, nn.Tanh, nn.Sigmoid, nn.Identity])
def test_the_numpy_mlp_fast_path_reproduces_the_module_for_every_known_activation(activation):
    """``build`` checks itself against the module and returns None on a mismatch, which would
    silently cost speed; so assert it accepts each activation, and compare its numbers here."""
    model = FlatModel(lambda: nn.Sequential(nn.Linear(5, 7), activation(), nn.Linear(7, 3, bias=False)))
    loss = _cross_entropy_of(model)
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(9, 5, generator=generator), torch.randint(0, 3, (9,), generator=generator)
    mlp = _StackedMLP.build(model, loss, x, y)
    assert mlp is not None
    theta = model.init(3)
    updates = torch.randn(4, model.dim, generator=generator)
    expected = torch.stack([loss(theta - 0.1 * u, x, y) for u in updates])
    torch.testing.assert_close(mlp.stepped_losses(theta, updates, 0.1, x, y), expected, rtol=1e-5, atol=1e-6)
    value, gradient = mlp.loss_and_gradient(theta, x, y)
    torch.testing.assert_close(value, loss(theta, x, y), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gradient, grad(loss)(theta, x, y), rtol=1e-4, atol=1e-6)
    assert mlp.stepped_losses(theta, updates[:0], 0.1, x, y).shape == (0,)


def _cross_entropy_of(model: FlatModel):
    return lambda theta, x, y: torch.nn.functional.cross_entropy(model(theta, x), y)


@pytest.mark.parametrize("poison", [float("nan"), float("inf"), 1e30])
def test_one_step_losses_of_hostile_rows_agree_with_the_vmap_path(sim, poison):
    state = sim.reset(4)
    updates = state.submissions.clone()
    updates[:2] = poison
    fast = sim.qv_losses_after(state, updates)
    generic = sim.qv_losses_at(state, sim._stepped(state.theta, updates).requires_grad_(True)).detach()
    assert torch.equal(torch.isfinite(fast), torch.isfinite(generic))
    assert not torch.isfinite(fast[:2]).any() or poison == 1e30
    torch.testing.assert_close(fast[2:], generic[2:], rtol=1e-5, atol=1e-6)


def test_feature_sets_resolve_to_names_in_table_order():
    full = tuple(f.name for f in WORKER_FEATURES)
    assert resolve_worker_features(None) == full == FEATURE_SETS["full"]
    assert resolve_worker_features("compact") == ("log_norm", "cos_mean", "cos_qv", "previous_credit")
    assert resolve_worker_features(["previous_credit", "log_norm"]) == ("log_norm", "previous_credit")
    with pytest.raises(ValueError, match="unknown feature set 'small'.*compact"):
        resolve_worker_features("small")
    with pytest.raises(ValueError, match="at least one per-worker feature.*'cos_mode'"):
        resolve_worker_features(["cos_mode"])
    with pytest.raises(ValueError, match="at least one"):
        resolve_worker_features([])
    with pytest.raises(ValueError, match="a feature set name.*or a list of names, got 7"):
        resolve_worker_features(7)
    with pytest.raises(ValueError, match="at least one per-worker feature"):
        resolve_worker_features([None])


@pytest.mark.parametrize("poison", [None, float("nan"), 1e30])
@pytest.mark.parametrize("subset", ["compact", ["distance_score"], ["cos_median", "qv_loss_change"]])
def test_a_feature_subset_is_the_same_numbers_as_those_columns_of_the_full_set(sim, subset, poison):
    """Features that are not asked for are skipped, and skipping them changes nothing else
    (including on the float64 path that hostile rows take)."""
    state = sim.apply(sim.reset(5), torch.full((10,), 0.1))
    if poison is not None:
        submissions = state.submissions.clone()
        submissions[1] = poison
        state = _with_submissions(state, submissions)
    credit = torch.linspace(0.01, 0.19, 10)
    full_rows, full_global = round_features(sim, state, credit)
    rows, global_ = round_features(sim, state, credit, subset)
    names = resolve_worker_features(subset)
    columns = [[f.name for f in WORKER_FEATURES].index(name) for name in names]
    assert rows.shape == (10, len(names))
    torch.testing.assert_close(rows, full_rows[:, columns], rtol=0, atol=0)
    torch.testing.assert_close(global_, full_global, rtol=0, atol=0)


def test_the_numpy_fast_path_runs_blas_on_one_thread(sim, monkeypatch):
    """NumPy's BLAS threads beside torch's on the same cores made env steps twice as slow."""
    from threadpoolctl import threadpool_limits

    from byz_gym.sim import simulator
    from byz_gym.sim.geometry import _numpy_blas

    libraries = _numpy_blas().lib_controllers
    seen = []
    relu, derivative = simulator._ACTIVATIONS[nn.ReLU]

    def recording_relu(h):
        seen.append(max(library.get_num_threads() for library in libraries))
        return relu(h)

    monkeypatch.setitem(simulator._ACTIVATIONS, nn.ReLU, (recording_relu, derivative))
    state = sim.reset(0)
    with threadpool_limits(limits=2, user_api="blas"):
        sim.qv_probe(state, state.submissions)
        sim.qv_losses_at(state, state.theta[None])
        assert max(library.get_num_threads() for library in libraries) == 2
    assert len(seen) == 3 and set(seen) == {1}
