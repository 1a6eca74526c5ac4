"""Cost of the Gymnasium wrapper: ``env.step`` time as a ratio to a raw simulator round.

A raw round is what a parameter server must do anyway: step θ with the credit and compute the next
round's submissions (the n workers' gradients, one vmapped call, then the Byzantine rows tampered),
that is ``Simulator.apply``. ``env.step`` adds the observation features of the new round, the
reward and the info dict. Both are timed round-robin on the same states within one process, so
machine noise hits them alike; the ratio is the number to compare across machines (goal ≤ 1.2).
It is measured for each observation feature set (``--features``, default both ``full`` and
``compact``): the compact set skips the median, the distances and the n one-step QV losses.

A floor is printed too: after each step the same observation is computed again a few times, caches
warm (inside a step it follows the worker gradients and runs slower); its time over a raw round
bounds from below what an env.step computing that observation with this code can cost.

The breakdown wraps the env's own calls (``sim.apply``, ``env._observation``, ``sim.test_accuracy``)
with timers while ``env.step`` runs; what is left is the reward, the divergence checks and the info.

    python benchmarks/bench_env.py                        # ByzGym/Digits-v0: n = 50, d = 2,410
    python benchmarks/bench_env.py --rounds 200 --threads 1
    python benchmarks/bench_env.py --features compact     # one feature set only
    python benchmarks/bench_env.py --quick                # tiny smoke run (what the test uses)
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import byz_gym  # noqa: F401  (registers the env ids)
from byz_gym.sim import FEATURE_SETS

__all__ = ["BREAKDOWN", "bench_env", "measure_steps"]

# Parts of one env.step, in table order; "other" is the step minus the timed parts.
BREAKDOWN = {
    "apply": "simulator round inside step (Simulator.apply)",
    "features": "observation features (env._observation)",
    "test_accuracy": "test accuracy (every eval_every rounds)",
    "other": "reward, divergence checks, info",
}

QUICK = {"n_workers": 6, "rounds": 3, "warmup": 1}
WARM_REPEATS = 3  # back-to-back observations after each step, for the floor (caches warm)


def _timed(fn: Callable[..., Any], bucket: list[float]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            bucket[-1] += time.perf_counter() - start

    return wrapper


def measure_steps(
    env_id: str = "ByzGym/Digits-v0",
    *,
    rounds: int = 100,
    warmup: int = 5,
    seed: int = 0,
    **env_kwargs: Any,
) -> dict[str, Any]:
    """Seconds per round of a raw simulator round and of ``env.step`` on the same states.

    Returns ``raw`` and ``step`` (medians over ``rounds`` after ``warmup``), ``ratio`` (their
    quotient), ``breakdown`` (mean seconds per step of each part in ``BREAKDOWN``; they sum to the
    mean step time), ``observation_warm`` (median seconds of the observation computed again right
    after it, caches warm: the floor), ``raw_mean``/``step_mean`` and the sizes ``n``, ``dim``,
    ``rounds``.
    """
    env = gym.make(env_id, disable_env_checker=True, **env_kwargs).unwrapped
    sim = env.sim
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)

    parts: dict[str, list[float]] = {name: [] for name in BREAKDOWN}
    # Instance attributes shadow the methods for this env only (benchmark instrumentation).
    sim.apply = _timed(sim.apply, parts["apply"])
    sim.test_accuracy = _timed(sim.test_accuracy, parts["test_accuracy"])
    env._observation = _timed(env._observation, parts["features"])
    raw_apply = type(sim).apply.__get__(sim)  # the untimed method, for the raw round

    raw: list[float] = []
    step: list[float] = []
    warm: list[float] = []
    for k in range(warmup + rounds):
        action = rng.uniform(-1.0, 1.0, env.n_workers).astype(np.float32)
        state = env.sim_state
        credit = torch.from_numpy(env.credit_from_action(action))
        for bucket in parts.values():
            bucket.append(0.0)

        start = time.perf_counter()
        raw_apply(state, credit)
        raw.append(time.perf_counter() - start)

        start = time.perf_counter()
        _, _, terminated, truncated, _ = env.step(action)
        step.append(time.perf_counter() - start)
        timed = sum(parts[name][-1] for name in BREAKDOWN if name != "other")
        parts["other"][-1] = step[-1] - timed
        for _ in range(WARM_REPEATS):  # the same round's observation again (untimed method): caches warm
            start = time.perf_counter()
            type(env)._observation(env)
            warm.append(time.perf_counter() - start)
        if terminated or truncated or env.sim_state.round_index >= env.scenario.horizon:
            env.reset(seed=seed + k + 1)

    raw, step = raw[warmup:], step[warmup:]
    out: dict[str, Any] = {
        "raw": statistics.median(raw),
        "step": statistics.median(step),
        "raw_mean": statistics.fmean(raw),
        "step_mean": statistics.fmean(step),
        "breakdown": {name: statistics.fmean(values[warmup:]) for name, values in parts.items()},
        "observation_warm": statistics.median(warm[WARM_REPEATS * warmup :]),
        "n": env.n_workers,
        "dim": sim.dim,
        "rounds": rounds,
    }
    out["ratio"] = out["step"] / out["raw"]
    env.close()
    return out


def bench_env(env_id: str = "ByzGym/Digits-v0", **kwargs: Any) -> float:
    """``env.step`` time divided by a raw simulator round's, measured in one run."""
    return measure_steps(env_id, **kwargs)["ratio"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-id", default="ByzGym/Digits-v0")
    parser.add_argument("--n", type=int, default=None, help="n_workers override (default: the scenario's)")
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--quick", action="store_true", help=f"tiny smoke run: {QUICK}")
    parser.add_argument(
        "--features",
        nargs="+",
        default=["full", "compact"],
        choices=sorted(FEATURE_SETS),
        help="observation feature set(s) to measure (default: full and compact)",
    )
    args = parser.parse_args(argv)
    env_kwargs: dict[str, Any] = {}
    rounds, warmup, n = args.rounds, args.warmup, args.n
    if args.quick:
        n, rounds, warmup = QUICK["n_workers"], QUICK["rounds"], QUICK["warmup"]
    if n is not None:
        env_kwargs["n_workers"] = n
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        used = torch.get_num_threads()
        for features in args.features:
            r = measure_steps(
                args.env_id, rounds=rounds, warmup=warmup, seed=args.seed, features=features, **env_kwargs
            )
            _report(args.env_id, features, used, r)
    finally:
        torch.set_num_threads(threads)
    return 0


def _report(env_id: str, features: str, threads: int, r: dict[str, Any]) -> None:
    raw, step = r["raw"], r["step"]
    print(
        f"{env_id}, features={features!r}: n = {r['n']}, d = {r['dim']:,}, {r['rounds']} rounds, torch threads = {threads}"
    )
    print(f"raw simulator round (Simulator.apply: step θ + next round's submissions): {1000 * raw:.2f} ms (median)")
    print(f"env.step: {1000 * step:.2f} ms (median)")
    print(f"ratio env.step / raw round: {r['ratio']:.2f}")
    print(f"breakdown of env.step (mean per step; raw round mean {1000 * r['raw_mean']:.2f} ms):")
    print(f"  {'part':<48} {'ms':>7} {'x raw':>6}")
    for name, label in BREAKDOWN.items():
        value = r["breakdown"][name]
        print(f"  {label:<48} {1000 * value:>7.2f} {value / r['raw_mean']:>6.2f}")
    print(f"  {'total (mean env.step)':<48} {1000 * r['step_mean']:>7.2f} {r['step_mean'] / r['raw_mean']:>6.2f}")
    warm = r["observation_warm"] / raw
    print(
        f"floor: the observation alone, computed again with warm caches, takes {1000 * r['observation_warm']:.2f} ms "
        f"= {warm:.2f}x raw, so with this feature code no env.step can cost less than {1 + warm:.2f}x raw"
    )


if __name__ == "__main__":
    raise SystemExit(main())
