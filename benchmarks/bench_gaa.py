"""Time per training round of the GAA agent, as a ratio to a plain averaging (``mean``) round.

Server-side cost at the simulator level (no Gymnasium env), n = 50 workers of which 30% send the
static Random Fault, on the ``synthetic`` task (784-32-10 MLP, d = 25,450, the paper's MNIST model;
speed does not depend on the data). Three kinds of round, timed round-robin within one process so
that machine noise hits them alike (the ratios are the numbers to compare, not the seconds):

- ``mean``: ``sim.apply(state, 1/n)``, i.e. the credited step and the next round's submissions
  (n vmapped worker gradients plus the tampering).
- ``gaa``: Algorithm 1's training round, amortised over a segment of T rounds as
  ``GAATrainer.train`` runs it: ``rollout_segment`` (per round: ``round_features``, the agent's
  forward, ``sim.apply`` with the graph kept, the two QV-loss terms), then ``loss.backward()`` and
  one Adam step on ψ, then ``detach_state``; the segment's time divided by T.
- ``gaa_frozen``: inference only: ``round_features``, the agent's forward and ``sim.apply``
  under ``no_grad``.

A floor is printed too: the features computed several times back to back on one round, so that
caches are warm (in a real round they follow the worker gradients and run slower). Their warm time
over a mean round's bounds from below what a GAA round reading those features can cost with this code.

The breakdown of what GAA adds to a mean round: ``features`` (``round_features``), ``agent_forward``
(the recurrent unit, with autograd), ``qv_loss_terms`` (f_B(θ_{t+1}) − f_B(θ_t) with the graph) and
``backward`` (``loss.backward()`` + Adam step, per round); ``other`` is what the four leave
unexplained (mostly keeping the autograd graph through ``sim.apply``). The GAA paper's Table 3 has
8.14 vs 6.32 s per 100 iterations (1.29x); our target is ``gaa`` <= 1.15x ``mean``.

Each is measured for the agent reading every observation feature (``full``) and for one that
ignores the three costly ones (``compact``: ``ignore_features`` = the median cosine, the one-step
QV loss change and the distance score, which are then not computed); ``--features`` picks.

    python benchmarks/bench_gaa.py                    # n = 50, d = 25,450, T = 5, 100 rounds
    python benchmarks/bench_gaa.py --rounds 50 --threads 1 --profile
    python benchmarks/bench_gaa.py --features compact
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Sequence
from typing import Any

import torch

from agents.gaa import GAA, unobserved_features
from agents.gaa_trainer import detach_state, rollout_segment
from byz_gym.sim.features import FEATURE_SETS
from byz_gym.sim.scenario import AttackSpec, Scenario
from byz_gym.sim.simulator import SimState, Simulator

__all__ = [
    "BREAKDOWN",
    "ROUNDS",
    "bench_gaa",
    "build_scenario",
    "build_simulator",
    "measure_env_steps",
    "measure_rounds",
]

ROUNDS = ("mean", "gaa", "gaa_frozen")  # the three kinds of round
BREAKDOWN = ("features", "agent_forward", "qv_loss_terms", "backward")  # parts of GAA's extra cost
WARM_REPEATS = 5  # back-to-back feature computations per probe; all but the first run with warm caches


def build_scenario(
    *,
    n: int = 50,
    byzantine_fraction: float = 0.3,
    input_dim: int = 784,
    hidden: int = 32,
    batch: int = 64,
    task_params: dict[str, Any] | None = None,
) -> Scenario:
    """The benchmark's scenario: the ``Digits`` preset's attack (static Random Fault) on ``synthetic``."""
    params = {"input_dim": input_dim, "hidden": hidden, "samples_per_worker": batch, **(task_params or {})}
    return Scenario(
        task={"name": "synthetic", "params": params},
        n_workers=n,
        byzantine_fraction=byzantine_fraction,
        attack=AttackSpec(schedule="static", tampering="random_fault"),
        worker_batch_size=batch,
    )


def build_simulator(**sizes: Any) -> Simulator:
    """The benchmark's simulator (``build_scenario`` arguments)."""
    return Simulator(build_scenario(**sizes))


def measure_rounds(
    *,
    n: int = 50,
    byzantine_fraction: float = 0.3,
    input_dim: int = 784,
    hidden: int = 32,
    batch: int = 64,
    task_params: dict[str, Any] | None = None,
    rounds: int = 100,
    warmup: int = 2,
    segment_length: int = 5,
    gamma: float = 0.9,
    agent_learning_rate: float = 1e-2,
    seed: int = 0,
    features: str = "full",
) -> dict[str, float]:
    """Median seconds per round of each kind of round (``ROUNDS``) and of each part of GAA's extra
    cost (``BREAKDOWN``, plus ``other``). Every kind runs ``ceil(rounds / T)`` timed blocks of T
    rounds after ``warmup`` untimed ones, block by block in turn. The agents read the feature set
    ``features`` (see ``agents.gaa.unobserved_features``). Also returns ``"features_warm"`` (the
    features computed back to back on one round, caches warm: the floor), ``"dim"`` (d) and ``"n"``."""
    if segment_length < 1 or rounds < 1 or warmup < 0:
        raise ValueError(
            f"need segment_length >= 1, rounds >= 1, warmup >= 0; got {segment_length}, {rounds}, {warmup}"
        )
    sim = build_simulator(
        n=n,
        byzantine_fraction=byzantine_fraction,
        input_dim=input_dim,
        hidden=hidden,
        batch=batch,
        task_params=task_params,
    )
    T = segment_length
    uniform = torch.full((n,), 1.0 / n)
    ignored = list(unobserved_features(features))
    agent = GAA("equivariant", n_workers=n, ignore_features=ignored)
    optimizer = torch.optim.Adam(agent.parameters(), lr=agent_learning_rate)
    frozen = GAA("equivariant", n_workers=n, ignore_features=ignored)
    times: dict[str, list[float]] = {name: [] for name in (*ROUNDS, *BREAKDOWN, "features_warm")}

    def fresh(state: SimState | None) -> SimState:
        """Episode boundaries as in training: restart at the horizon or after a divergence."""
        if state is None or state.round_index >= sim.scenario.horizon or not bool(torch.isfinite(state.theta).all()):
            return sim.reset(seed)
        return state

    states: dict[str, SimState | None] = dict.fromkeys(ROUNDS)
    alphas = {"gaa": uniform.clone(), "gaa_frozen": uniform.clone()}

    def mean_block() -> dict[str, float]:
        state = fresh(states["mean"])
        start = time.perf_counter()
        for _ in range(T):
            state = sim.apply(state, uniform)
        elapsed = time.perf_counter() - start
        states["mean"] = state
        return {"mean": elapsed / T}

    def gaa_block() -> dict[str, float]:  # one segment of GAATrainer.train
        state = fresh(states["gaa"])
        if state.round_index == 0:
            alphas["gaa"] = uniform.clone()
        start = time.perf_counter()
        rollout = rollout_segment(agent, sim, detach_state(state), alphas["gaa"].detach(), rounds=T, gamma=gamma)
        loss = rollout.loss
        middle = time.perf_counter()
        if bool(torch.isfinite(loss)):
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        alphas["gaa"] = rollout.alphas[-1].detach()
        states["gaa"] = detach_state(rollout.final_state)
        end = time.perf_counter()
        return {"gaa": (end - start) / T, "backward": (end - middle) / T}

    def frozen_block() -> dict[str, float]:
        state = fresh(states["gaa_frozen"])
        alpha = uniform.clone() if state.round_index == 0 else alphas["gaa_frozen"]
        features = 0.0
        start = time.perf_counter()
        with torch.no_grad():
            for _ in range(T):
                tick = time.perf_counter()
                per_worker, global_ = frozen.inputs(sim, state, alpha)
                features += time.perf_counter() - tick
                alpha = frozen(per_worker, global_, alpha)
                state = sim.apply(state, alpha)
        elapsed = time.perf_counter() - start
        states["gaa_frozen"], alphas["gaa_frozen"] = state, alpha
        return {"gaa_frozen": elapsed / T, "features": features / T}

    def probe_block() -> dict[str, float]:
        """The agent's forward and the two QV-loss terms with autograd, on the training trajectory's
        current round (what ``rollout_segment`` does besides ``GAA.inputs`` and ``sim.apply``)."""
        state = fresh(states["gaa"])
        alpha = alphas["gaa"].detach()
        warm = []
        for _ in range(WARM_REPEATS):
            tick = time.perf_counter()
            per_worker, global_ = agent.inputs(sim, state, alpha)
            warm.append(time.perf_counter() - tick)
        theta = state.theta.detach().requires_grad_(True)
        forward, terms = [], []
        for _ in range(T):
            tick = time.perf_counter()
            credit = agent(per_worker, global_, alpha)
            tock = time.perf_counter()
            theta_next = theta - sim.scenario.learning_rate * sim.credited_update(state.submissions, credit)
            tack = time.perf_counter()
            term = sim.qv_loss(state, theta_next) - sim.qv_loss(state, theta)
            end = time.perf_counter()
            forward.append(tock - tick)
            terms.append(end - tack)
            del term
        return {
            "agent_forward": statistics.median(forward),
            "qv_loss_terms": statistics.median(terms),
            "features_warm": statistics.median(warm[1:]),
        }

    blocks = (mean_block, gaa_block, frozen_block, probe_block)
    for step in range(warmup + math.ceil(rounds / T)):
        for block in blocks:  # round-robin: drifting machine load hits every kind alike
            measured = block()
            if step >= warmup:
                for name, value in measured.items():
                    times[name].append(value)
    out = {name: statistics.median(values) for name, values in times.items()}
    out["other"] = out["gaa"] - out["mean"] - sum(out[name] for name in BREAKDOWN)
    out["dim"] = float(sim.dim)
    out["n"] = float(n)
    return out


def bench_gaa(**kwargs: Any) -> dict[str, float]:
    """Time per round of each kind of round and of each part of GAA's extra cost divided by a
    ``mean`` round's, measured in one run (``measure_rounds`` arguments; defaults n = 50, d = 25,450)."""
    seconds = measure_rounds(**kwargs)
    base = seconds["mean"]
    return {name: value / base for name, value in seconds.items() if name not in ("dim", "n")}


def measure_env_steps(*, rounds: int = 50, warmup: int = 5, features: str = "full", **sizes: Any) -> dict[str, float]:
    """Median seconds per env step of plain averaging (``step_credit(1/n)``) and of the online ``gaa``
    policy (``act`` + ``step_credit``, one episode), on the ``build_scenario(**sizes)`` env with
    observation ``features``, alternating. This is what a user pays per round through the env,
    where every policy gets the observation features."""
    import numpy as np

    from byz_gym.env import ByzantineAggregationEnv
    from byz_gym.experiments import make_policy
    from byz_gym.policy import RoundInput

    scenario = build_scenario(**sizes)
    n = scenario.n_workers
    envs = {name: ByzantineAggregationEnv(scenario, features=features) for name in ("mean", "gaa_env")}
    last = {name: env.reset(seed=0) for name, env in envs.items()}
    policy = make_policy("gaa", episodes=1, ignore_features=list(unobserved_features(features)))
    policy.reset(envs["gaa_env"], 0)
    uniform = np.full(n, 1.0 / n)
    times: dict[str, list[float]] = {name: [] for name in envs}
    for step in range(warmup + rounds):
        for name, env in envs.items():
            observation, info = last[name]
            start = time.perf_counter()
            if name == "mean":
                result = env.step_credit(uniform)
            else:
                decision = policy.act(RoundInput(observation, info, lambda env=env: env.submissions))
                result = env.step_credit(decision.credit)
            elapsed = time.perf_counter() - start
            last[name] = (result[0], result[4])
            if step >= warmup:
                times[name].append(elapsed)
    return {"mean_env": statistics.median(times["mean"]), "gaa_env": statistics.median(times["gaa_env"])}


def profile_gaa(sim: Simulator, *, segments: int = 4, segment_length: int = 5, top: int = 15) -> str:
    """``torch.profiler`` table (ops by self CPU time) of a few GAA training segments."""
    from torch.profiler import ProfilerActivity, profile

    n = sim.n_workers
    agent = GAA("equivariant", n_workers=n)
    optimizer = torch.optim.Adam(agent.parameters(), lr=1e-2)
    state, alpha = sim.reset(0), torch.full((n,), 1.0 / n)
    rollout_segment(agent, sim, state, alpha, rounds=segment_length, gamma=0.9)  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(segments):
            rollout = rollout_segment(agent, sim, detach_state(state), alpha, rounds=segment_length, gamma=0.9)
            optimizer.zero_grad()
            rollout.loss.backward()
            optimizer.step()
            state, alpha = detach_state(rollout.final_state), rollout.alphas[-1].detach()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--byzantine-fraction", type=float, default=0.3)
    parser.add_argument("--input-dim", type=int, default=784)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=100, help="timed rounds of each kind (whole segments)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed segments of each kind")
    parser.add_argument("--segment-length", type=int, default=5, help="T, rounds per GAA segment")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--profile", action="store_true", help="also print torch.profiler's top ops of GAA training")
    parser.add_argument(
        "--features",
        nargs="+",
        default=["full", "compact"],
        choices=sorted(FEATURE_SETS),
        help="feature set(s) the agent reads (default: full and compact)",
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = dict(n=args.n, byzantine_fraction=args.byzantine_fraction, input_dim=args.input_dim, hidden=args.hidden)
    for features in args.features:
        _report(args, sizes, features)
    if args.profile:
        sim = build_simulator(**sizes)
        print(profile_gaa(sim, segment_length=args.segment_length))
    return 0


def _report(args: argparse.Namespace, sizes: dict[str, Any], features: str) -> None:
    T = args.segment_length
    seconds = measure_rounds(**sizes, rounds=args.rounds, warmup=args.warmup, segment_length=T, features=features)
    base = seconds["mean"]
    print(
        f"features={features!r}: n = {args.n}, d = {int(seconds['dim']):,}, beta = {args.byzantine_fraction} "
        f"(static Random Fault), T = {T}, {T * math.ceil(args.rounds / T)} rounds, torch threads = {torch.get_num_threads()}"
    )
    print(f"{'round':<16} {'ms/round':>9} {'x mean':>7}")
    labels = {"mean": "mean", "gaa": "gaa (training)", "gaa_frozen": "gaa (frozen)"}
    for name in ROUNDS:
        print(f"{labels[name]:<16} {1000 * seconds[name]:>9.2f} {seconds[name] / base:>7.2f}")
    extra = seconds["gaa"] - base
    print(f"GAA training extra over mean: {1000 * extra:.2f} ms per round (target: gaa <= 1.15x mean)")
    print(f"{'part':<16} {'ms/round':>9} {'x mean':>7} {'of extra':>9}")
    for name in (*BREAKDOWN, "other"):
        share = f"{seconds[name] / extra:>9.0%}" if extra > 0 else f"{'-':>9}"
        print(f"{name:<16} {1000 * seconds[name]:>9.2f} {seconds[name] / base:>7.2f} {share}")
    warm = seconds["features_warm"] / base
    print(
        f"floor: the features alone, computed back to back with warm caches, take {1000 * seconds['features_warm']:.2f} ms "
        f"= {warm:.2f}x mean, so with this feature code no GAA round can cost less than {1 + warm:.2f}x mean"
    )
    env_seconds = measure_env_steps(**sizes, rounds=args.rounds, features=features)
    print("through the env (every policy pays for the observation features):")
    print(f"{'step':<16} {'ms/round':>9} {'x mean':>7}")
    for name, label in (("mean_env", "mean"), ("gaa_env", "gaa (online)")):
        print(f"{label:<16} {1000 * env_seconds[name]:>9.2f} {env_seconds[name] / env_seconds['mean_env']:>7.2f}")


if __name__ == "__main__":
    raise SystemExit(main())
