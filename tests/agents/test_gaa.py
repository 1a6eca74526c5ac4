from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from agents import GAA, GAAPolicy, GAATrainer, segment_loss
from byz_gym.experiments import make_policy, run_episode
from byz_gym.scenarios import SCENARIOS
from byz_gym.sim.simulator import Simulator

TINY = SCENARIOS["Digits"].replace(n_workers=4, horizon=6, worker_batch_size=16, qv_batch_size=16)


def _random_inputs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    per_worker = torch.randn(n, 7, generator=g)
    global_ = torch.randn(3, generator=g)
    previous = torch.softmax(torch.randn(n, generator=g), dim=0)
    return per_worker, global_, previous


# -- the recurrent units ---------------------------------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(st.integers(1, 40), st.integers(0, 2**31 - 1))
def test_equivariant_credit_is_on_the_simplex_and_permutation_equivariant(n, seed):
    agent = GAA(seed=seed % 1000)
    per_worker, global_, previous = _random_inputs(n, seed)
    credit = agent(per_worker, global_, previous)
    credit = credit.detach()
    assert credit.shape == (n,) and (credit >= 0).all() and float(credit.detach().sum()) == pytest.approx(1.0, abs=1e-5)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    permuted = agent(per_worker[perm], global_, previous[perm])
    torch.testing.assert_close(permuted, credit[perm], rtol=1e-5, atol=1e-6)


def test_paper_unit_is_a_single_linear_layer_with_softmax_output():
    n = 5
    agent = GAA("paper", n_workers=n)
    assert isinstance(agent.net, torch.nn.Linear)
    assert agent.net.in_features == n * 6 + 3 + n and agent.net.out_features == n
    credit = agent(*_random_inputs(n, 1)).detach()
    assert float(credit.sum()) == pytest.approx(1.0, abs=1e-6) and (credit > 0).all()
    with pytest.raises(ValueError, match="built for n_workers=5"):
        agent(*_random_inputs(6, 1))


def test_paper_unit_refuses_over_budget_with_a_clear_message():
    sim_dim = Simulator(TINY).dim
    with pytest.raises(ValueError, match=r"unit='paper' with state='raw'.*over max_parameters=1,000,000.*equivariant"):
        GAA("paper", n_workers=50, state="raw", model_dim=25_450)
    with pytest.raises(ValueError, match="max_parameters=100"):
        GAA("paper", n_workers=10, max_parameters=100)
    with pytest.raises(ValueError, match="fixed positive n_workers"):
        GAA("paper")
    with pytest.raises(ValueError, match="needs model_dim"):
        GAA("paper", n_workers=4, state="raw")
    with pytest.raises(ValueError, match="equivariant unit scores per-worker features"):
        GAA(state="raw")
    # within budget the raw state works on a simulator state (small n, small model)
    agent = GAA("paper", n_workers=4, state="raw", model_dim=sim_dim, max_parameters=10**6)
    sim = Simulator(TINY)
    state = sim.reset(0)
    credit = agent(*agent.inputs(sim, state, torch.full((4,), 0.25)), torch.full((4,), 0.25))
    assert float(credit.detach().sum()) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("unit", ["equivariant", "paper"])
def test_save_then_load_gives_identical_credit(tmp_path, unit):
    agent = GAA(unit, n_workers=6, seed=3)
    with torch.no_grad():  # move away from the seeded init so the weights, not the seed, are restored
        for p in agent.parameters():
            p.add_(0.1)
    agent.save(tmp_path / "gaa")
    loaded = GAA.load(tmp_path / "gaa")
    assert loaded.config == agent.config
    inputs = _random_inputs(6, 7)
    assert torch.equal(loaded(*inputs), agent(*inputs))
    with pytest.raises(FileNotFoundError, match="GAA.save"):
        GAA.load(tmp_path / "missing")


# -- Algorithm 1 -----------------------------------------------------------------------------------------
def test_psi_is_updated_exactly_n_times_k_and_alpha_is_inherited():
    trainer = GAATrainer(TINY, GAA(seed=0), episodes=2, segment_length=2)
    assert trainer.segments == TINY.horizon // 2 == 3
    before = [p.detach().clone() for p in trainer.agent.parameters()]
    calls = []
    original_step = trainer.optimizer.step

    def counting_step(*args, **kwargs):
        calls.append(1)
        return original_step(*args, **kwargs)

    trainer.optimizer.step = counting_step  # type: ignore[method-assign]
    trainer.train()
    assert trainer.optimizer_steps == len(calls) == 2 * 3
    assert any(not torch.equal(b, p) for b, p in zip(before, trainer.agent.parameters(), strict=True))
    history = trainer.history
    assert [(r.episode, r.segment) for r in history] == [(e, k) for e in range(2) for k in range(3)]
    for prev, nxt in zip(history, history[1:], strict=False):
        if nxt.episode == prev.episode:
            assert torch.equal(nxt.alpha_start, prev.alpha_end)  # α₀ of segment k+1 = α_T of segment k
        else:
            assert torch.equal(nxt.alpha_start, torch.full((4,), 0.25))  # α₀ = 1/n at episode start
    assert torch.equal(history[0].alpha_start, torch.full((4,), 0.25))
    for record in history:
        assert record.applied_credits.shape == (2, 4)
        torch.testing.assert_close(record.applied_credits.sum(dim=1), torch.ones(2))
        assert torch.equal(record.applied_credits[-1], record.alpha_end)


def test_trainer_defaults_follow_the_paper():
    trainer = GAATrainer(SCENARIOS["Digits"].replace(n_workers=4))
    assert (trainer.episodes, trainer.segment_length, trainer.gamma) == (5, 5, 0.9)
    assert trainer.segments == 300 // 5 and trainer.sim.scenario.learning_rate == 0.05
    assert GAATrainer(TINY, server_learning_rate=0.1, segments=1).sim.scenario.learning_rate == 0.1


def _double_simulator(scenario=None, *, second_order: bool = False) -> Simulator:
    scenario = TINY.replace(byzantine_fraction=0.5) if scenario is None else scenario
    sim = Simulator(scenario, second_order=second_order)
    task = sim.task
    sim.task = dataclasses.replace(
        task, shard_x=task.shard_x.double(), qv_x=task.qv_x.double(), test_x=task.test_x.double()
    )
    init = sim.model.init
    sim.model.init = lambda seed: init(seed).double()  # type: ignore[method-assign]
    return sim


@pytest.mark.parametrize("unit", ["equivariant", "paper"])
def test_segment_loss_gradient_matches_finite_differences(unit):
    """ℓ_GAA treats each round's state (features, submissions) as an input, as the paper does: record
    the inputs of one rollout, check that the recorded replay reproduces segment_loss and its autograd
    gradient, then compare that gradient with central finite differences in float64 (n=4, T=2)."""
    sim = _double_simulator()
    state = sim.reset(1)
    assert state.theta.dtype == state.submissions.dtype == torch.float64
    agent = GAA(unit, n_workers=4, seed=2).double()
    alpha0 = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    gamma, lam = 0.9, sim.scenario.learning_rate

    recorded_inputs, recorded_states = [], []
    inputs = agent.inputs

    def recording_inputs(sim_, state_, previous):
        recorded_inputs.append(inputs(sim_, state_, previous))
        recorded_states.append(state_)
        return recorded_inputs[-1]

    agent.inputs = recording_inputs  # type: ignore[method-assign]
    loss = segment_loss(agent, sim, state, alpha0, rounds=2, gamma=gamma)
    agent.inputs = inputs  # type: ignore[method-assign]
    assert len(recorded_states) == 2
    params = list(agent.parameters())
    analytic = torch.autograd.grad(loss, params)
    assert any(float(g.abs().max()) > 0 for g in analytic)

    def replay() -> torch.Tensor:  # Algorithm 1's segment loss with the recorded inputs held fixed
        alpha, theta, total = alpha0, recorded_states[0].theta.detach(), torch.zeros((), dtype=torch.float64)
        for t, (st_, (per_worker, global_)) in enumerate(zip(recorded_states, recorded_inputs, strict=True)):
            alpha = agent(per_worker, global_, alpha)
            theta_next = theta - lam * (alpha @ st_.submissions)
            total = total + gamma**t * (sim.qv_loss(st_, theta_next) - sim.qv_loss(st_, theta))
            theta = theta_next
        return total

    base = replay()
    assert float(base.detach()) == pytest.approx(float(loss.detach()), rel=1e-12, abs=1e-15)
    for g_replay, g in zip(torch.autograd.grad(base, params), analytic, strict=True):
        torch.testing.assert_close(g_replay, g, rtol=1e-10, atol=1e-14)

    eps = 1e-5
    with torch.no_grad():
        for p, g in zip(params, analytic, strict=True):
            flat, gflat = p.view(-1), g.reshape(-1)
            for i in range(0, flat.numel(), max(1, flat.numel() // 6)):  # a spread of coordinates
                flat[i] += eps
                up = float(replay())
                flat[i] -= 2 * eps
                down = float(replay())
                flat[i] += eps
                assert (up - down) / (2 * eps) == pytest.approx(float(gflat[i]), rel=1e-5, abs=1e-10)


def test_second_order_gradient_flows_through_the_workers_gradients():
    """With ``second_order=True`` the submissions of round t+1 depend on θ_{t+1}, hence on α_t: ℓ_GAA's
    gradient then has the extra term. Check it against a replay that recomputes the workers' gradients
    from θ (features held fixed), against finite differences, and that it differs from first order.
    No Byzantine worker, so every submission is an honest gradient (float64, n=4, T=2)."""
    clean = TINY.replace(byzantine_fraction=0.0)
    sims = {order: _double_simulator(clean, second_order=order) for order in (False, True)}
    agent = GAA(seed=3).double()
    alpha0 = torch.full((4,), 0.25, dtype=torch.float64)
    params = list(agent.parameters())
    gradients = {}
    for order, sim in sims.items():
        loss = segment_loss(agent, sim, sim.reset(2), alpha0, rounds=2, gamma=0.9)
        gradients[order] = torch.autograd.grad(loss, params)
    sim = sims[True]
    state0 = sim.reset(2)
    inputs = []
    alpha, state = alpha0, state0
    with torch.no_grad():  # the features of the two rounds, as the rollout computes them
        for _ in range(2):
            inputs.append(agent.inputs(sim, state, alpha))
            alpha = agent(*inputs[-1], alpha)
            state = sim.apply(state, alpha)

    def replay() -> torch.Tensor:
        alpha, theta, total = alpha0, state0.theta.detach(), torch.zeros((), dtype=torch.float64)
        state = state0
        for t, (per_worker, global_) in enumerate(inputs):
            submissions = sim.honest_gradients(theta, 2, t)  # keeps d submissions / d θ
            alpha = agent(per_worker, global_, alpha)
            theta_next = theta - clean.learning_rate * (alpha @ submissions)
            total = total + 0.9**t * (sim.qv_loss(state, theta_next) - sim.qv_loss(state, theta))
            theta = theta_next
            state = dataclasses.replace(state, round_index=t + 1)
        return total

    for g_replay, g in zip(torch.autograd.grad(replay(), params), gradients[True], strict=True):
        torch.testing.assert_close(g_replay, g, rtol=1e-9, atol=1e-13)
    difference = max(float((a - b).abs().max()) for a, b in zip(gradients[True], gradients[False], strict=True))
    assert difference > 1e-6 * max(float(g.abs().max()) for g in gradients[True])
    eps = 1e-5
    with torch.no_grad():
        for p, g in ((params[0], gradients[True][0]), (params[-2], gradients[True][-2])):
            flat, gflat = p.view(-1), g.reshape(-1)
            for i in range(0, flat.numel(), max(1, flat.numel() // 4)):
                flat[i] += eps
                up = float(replay())
                flat[i] -= 2 * eps
                down = float(replay())
                flat[i] += eps
                assert (up - down) / (2 * eps) == pytest.approx(float(gflat[i]), rel=1e-5, abs=1e-10)


def test_trainer_clips_the_agent_gradient():
    trainer = GAATrainer(TINY, GAA(seed=0), episodes=1, segment_length=2, segments=1, max_grad_norm=1e-3)
    norms = []
    step = trainer.optimizer.step

    def recording_step(*args, **kwargs):
        norms.append(float(torch.cat([p.grad.reshape(-1) for p in trainer.agent.parameters()]).norm()))
        return step(*args, **kwargs)

    trainer.optimizer.step = recording_step  # type: ignore[method-assign]
    trainer.train()
    assert len(norms) == 1 and norms[0] <= 1e-3 * (1 + 1e-5)
    with pytest.raises(ValueError, match="max_grad_norm"):
        GAATrainer(TINY, max_grad_norm=0.0)


def test_weight_decay_option_uses_decoupled_decay():
    """``weight_decay`` > 0: AdamW, so a step with a zero gradient still shrinks every weight by
    lr * weight_decay; the default 0 is plain Adam."""
    trainer = GAATrainer(TINY, GAA(seed=0), episodes=1, segment_length=2, segments=1, weight_decay=0.5)
    before = [p.detach().clone() for p in trainer.agent.parameters()]
    for p in trainer.agent.parameters():
        p.grad = torch.zeros_like(p)
    trainer.optimizer.step()
    for old, new in zip(before, trainer.agent.parameters(), strict=True):
        torch.testing.assert_close(new.detach(), old * (1 - 0.05 * 0.5))
    assert GAATrainer(TINY, episodes=1).optimizer.param_groups[0]["weight_decay"] == 0.0
    policy = make_policy("gaa", weight_decay=0.2, episodes=1)
    run_episode("ByzGym/Digits-v0", policy, seed=0, env_kwargs={"n_workers": 4, "horizon": 2, "eval_every": 2})
    assert policy.optimizer.param_groups[0]["weight_decay"] == 0.2
    with pytest.raises(ValueError, match="weight_decay"):
        make_policy("gaa", weight_decay=-1.0)
    with pytest.raises(ValueError, match="weight_decay"):
        GAATrainer(TINY, weight_decay=float("nan"))


def test_layer_norm_keeps_a_drifted_unit_alive():
    """The collapse seen on Pretense seed 3: hidden pre-activations drift far from 0, every tanh
    saturates, all workers score alike and the credit is uniform for good. LayerNorm before each
    tanh (the default) removes such a drift; without it the unit goes dead."""
    per_worker, global_, previous = _random_inputs(8, 5)
    for layer_norm, second in ((True, 3), (False, 2)):
        agent = GAA(layer_norm=layer_norm, seed=1)
        with torch.no_grad():
            agent.net[second].bias += 100.0  # the drift
        credit = agent(per_worker, global_, previous).detach()
        spread = float(credit.max() - credit.min())
        assert (spread > 1e-3) if layer_norm else (spread == 0.0), (layer_norm, spread)


def test_layer_norm_is_saved_and_old_agents_load_without_it(tmp_path):
    agent = GAA(seed=3)
    assert agent.layer_norm and agent.config["layer_norm"] is True
    per_worker, global_, previous = _random_inputs(5, 1)
    loaded = GAA.load(agent.save(tmp_path / "ln"))
    assert loaded.layer_norm and torch.equal(
        loaded(per_worker, global_, previous), agent(per_worker, global_, previous)
    )
    old = GAA(layer_norm=False, seed=3)
    old.save(tmp_path / "old")
    config_file = tmp_path / "old" / "gaa_config.json"
    config = json.loads(config_file.read_text())
    del config["layer_norm"]  # as written before the option existed
    config_file.write_text(json.dumps(config))
    assert GAA.load(tmp_path / "old").layer_norm is False
    assert not GAA("paper", n_workers=3).layer_norm
    with pytest.raises(ValueError, match="layer_norm"):
        GAA("paper", n_workers=3, layer_norm=True)
    policy = make_policy("gaa", layer_norm=False, episodes=1)  # the published-style unit, online
    run_episode("ByzGym/Digits-v0", policy, seed=0, env_kwargs={"n_workers": 4, "horizon": 2, "eval_every": 2})
    assert policy.agent.layer_norm is False


# -- the policy ------------------------------------------------------------------------------------------
def test_gaa_policy_is_registered_and_trains_online_every_t_rounds():
    policy = make_policy("gaa", segment_length=2, episodes=1)
    assert isinstance(policy, GAAPolicy) and policy.online and make_policy("gaa").episodes == 5
    before = [p.detach().clone() for p in GAA(seed=0).parameters()]
    result = run_episode("ByzGym/Digits-v0", policy, seed=0, rounds=5, env_kwargs={"n_workers": 5, "eval_every": 5})
    assert result.rounds == 5 and policy.optimizer_steps == 2  # 5 rounds: two full segments of T=2
    assert len(policy.segment_losses) == 2 and all(np.isfinite(policy.segment_losses))
    assert any(not torch.equal(b, p) for b, p in zip(before, policy.agent.parameters(), strict=True))


def test_frozen_gaa_policy_loads_weights_and_does_not_train(tmp_path):
    GAA(seed=5).save(tmp_path / "agent")
    policy = make_policy("gaa", path=str(tmp_path / "agent"))
    assert not policy.online
    weights = [p.detach().clone() for p in policy.agent.parameters()]
    result = run_episode("ByzGym/Digits-v0", policy, seed=0, rounds=3, env_kwargs={"n_workers": 7, "eval_every": 3})
    assert result.rounds == 3 and policy.optimizer_steps == 0
    assert all(torch.equal(w, p) for w, p in zip(weights, policy.agent.parameters(), strict=True))


def test_standardized_unit_stays_equivariant_and_round_trips(tmp_path):
    agent = GAA(standardize=True, seed=4)
    per_worker, global_, previous = _random_inputs(9, 4)
    credit = agent(per_worker, global_, previous).detach()
    perm = torch.randperm(9, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(agent(per_worker[perm], global_, previous[perm]).detach(), credit[perm])
    loaded = GAA.load(agent.save(tmp_path / "std"))
    assert loaded.standardize and torch.equal(loaded(per_worker, global_, previous).detach(), credit)
    with pytest.raises(ValueError, match="equivariant unit"):
        GAA("paper", n_workers=3, standardize=True)


@pytest.mark.parametrize("unit, standardize", [("equivariant", False), ("equivariant", True), ("paper", False)])
def test_ignored_features_do_not_move_the_credit(tmp_path, unit, standardize):
    ignored = ["cos_median", "distance_score"]  # columns 2 and 5
    agent = GAA(unit, n_workers=6, standardize=standardize, ignore_features=ignored, seed=2)
    full = GAA(unit, n_workers=6, standardize=standardize, seed=2)
    per_worker, global_, previous = _random_inputs(6, 3)
    changed = per_worker.clone()
    changed[:, [2, 5]] = torch.randn(6, 2, generator=torch.Generator().manual_seed(9))
    credit = agent(per_worker, global_, previous).detach()
    assert torch.equal(agent(changed, global_, previous).detach(), credit)
    assert not torch.allclose(full(changed, global_, previous), full(per_worker, global_, previous))
    changed[:, 3] += 1.0  # a feature it still reads
    assert not torch.allclose(agent(changed, global_, previous), credit)
    loaded = GAA.load(agent.save(tmp_path / "ablated"))
    assert loaded.ignore_features == tuple(ignored)
    assert torch.equal(loaded(per_worker, global_, previous).detach(), credit)


def test_ignore_features_names_the_valid_choices():
    with pytest.raises(ValueError, match=r"unknown feature\(s\) \['cos_medain'\].*'cos_median'"):
        GAA(ignore_features=["cos_medain"])
    with pytest.raises(ValueError, match="previous_credit"):  # the unit's own credit input is not a feature
        make_policy("gaa", ignore_features=["previous_credit"])


def test_first_n_minus_one_episodes_train_before_the_evaluated_run_on_other_seeds():
    policy = make_policy("gaa", segment_length=2, episodes=3)
    env_kwargs = {"n_workers": 4, "horizon": 4, "eval_every": 4}
    run_episode("ByzGym/Digits-v0", policy, seed=7, env_kwargs=env_kwargs)
    # 2 warm-up episodes of 4 // 2 = 2 segments, then 2 online segments in the evaluated run
    assert policy.optimizer_steps == 2 * 2 + 2
    assert [r.episode for r in policy.warmup_history] == [0, 0, 1, 1]
    assert 7 not in policy.warmup_seeds and len(set(policy.warmup_seeds)) == 2
    with pytest.raises(ValueError, match="episodes"):
        make_policy("gaa", episodes=0)
    with pytest.raises(ValueError, match="max_grad_norm"):
        make_policy("gaa", max_grad_norm=-1.0)


def test_the_shipped_majority_agent_loads_frozen_and_silences_attackers():
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / "pretrained" / "gaa-digits-majority"
    policy = make_policy(f"gaa:{path}")
    assert not policy.online and policy.agent.config["unit"] == "equivariant"
    env_kwargs = {"n_workers": 8, "horizon": 12, "eval_every": 5}  # trained at n = 50: equivariant
    result = run_episode("ByzGym/Digits-Majority-v0", policy, seed=0, env_kwargs=env_kwargs)
    assert result.byzantine_credit_mass < 1e-3  # uniform would give 0.75


EXPENSIVE = ["cos_median", "qv_loss_change", "distance_score"]  # what features="compact" leaves out


def test_ignored_features_are_not_computed_and_the_rest_are_unchanged():
    sim = Simulator(TINY)
    state = sim.apply(sim.reset(1), torch.full((4,), 0.25))
    previous = torch.tensor([0.1, 0.2, 0.3, 0.4])
    full_rows, full_global = GAA(seed=0).inputs(sim, state, previous)
    rows, global_ = GAA(ignore_features=EXPENSIVE, seed=0).inputs(sim, state, previous)
    kept = [0, 1, 3, 6]
    assert torch.equal(rows[:, kept], full_rows[:, kept]) and torch.equal(global_, full_global)
    assert torch.count_nonzero(rows[:, [2, 4, 5]]) == 0


def test_a_gaa_that_ignores_the_expensive_features_acts_alike_on_the_full_and_compact_envs(tmp_path):
    GAA(ignore_features=EXPENSIVE, seed=3).save(tmp_path / "cheap")
    results = [
        run_episode(
            "ByzGym/Digits-Majority-v0",
            make_policy("gaa", path=str(tmp_path / "cheap")),
            seed=2,
            rounds=4,
            env_kwargs={"n_workers": 6, "eval_every": 4, "features": features},
            record_credits=True,
        )
        for features in ("full", "compact")
    ]
    assert results[0].credits == results[1].credits and len(results[0].credits) == 4
    GAA(seed=3).save(tmp_path / "full")  # reads every feature
    compact = {"n_workers": 6, "features": "compact"}
    with pytest.raises(
        ValueError, match=r"reads \['cos_median', 'qv_loss_change', 'distance_score'\].*features='full'"
    ):
        run_episode("ByzGym/Digits-v0", make_policy("gaa", path=str(tmp_path / "full")), rounds=1, env_kwargs=compact)
    with pytest.raises(ValueError, match="does not observe"):
        run_episode("ByzGym/Digits-v0", make_policy("gaa", ignore_features=[]), rounds=1, env_kwargs=compact)


def test_a_new_gaa_reads_what_the_env_observes():
    policy = make_policy("gaa", episodes=1, segment_length=2)
    run_episode("ByzGym/Digits-v0", policy, rounds=2, env_kwargs={"n_workers": 6, "features": "compact"})
    assert policy.agent.ignore_features == tuple(EXPENSIVE) and policy.optimizer_steps == 1
    policy = make_policy("gaa", episodes=1)
    run_episode("ByzGym/Digits-v0", policy, rounds=1, env_kwargs={"n_workers": 6})
    assert policy.agent.ignore_features == ()


def test_train_gaa_run_builds_an_agent_for_the_envs_features(tmp_path):
    from byz_gym.experiments import train_gaa_run

    env_kwargs = {"n_workers": 5, "horizon": 4, "features": "compact"}
    run_dir = train_gaa_run(
        "ByzGym/Digits-v0",
        4,
        env_kwargs=env_kwargs,
        hyperparams={"segment_length": 2},
        out_dir=tmp_path / "run",
        progress=False,
    )
    assert GAA.load(run_dir).ignore_features == tuple(EXPENSIVE)
    with pytest.raises(ValueError, match="does not observe"):
        train_gaa_run(
            "ByzGym/Digits-v0",
            4,
            env_kwargs=env_kwargs,
            hyperparams={"ignore_features": [], "segment_length": 2},
            out_dir=tmp_path / "bad",
        )
