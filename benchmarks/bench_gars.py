"""Time per training round of each aggregation rule, as a ratio to plain averaging (``mean``).

One round is what the server does in the GAA paper's Table 3: compute the n workers' gradients
(one vmapped call on a 784-32-10 MLP, 25,450 parameters, the paper's MNIST model, on synthetic
MNIST-shaped batches; speed does not depend on pixel values), replace f of them with the Random
Fault, aggregate, and step θ. Rules are timed round-robin within one process, so machine noise hits
them alike, and each ratio is the median over steps of the rule's round divided by ``mean``'s round
of the same step (paired, so a slow spell of the machine cancels out); the ratios are the numbers
to compare across machines, not the seconds.

    python benchmarks/bench_gars.py                  # n = 50, d = 25,450, f = 10, 60 rounds
    python benchmarks/bench_gars.py --rounds 10 --rules mean krum brute
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import grad, vmap

import baselines
from byz_gym.sim.geometry import pairwise_sq_distances
from byz_gym.sim.model import FlatModel

__all__ = ["bench_gars", "distance_seconds", "measure_rounds", "time_rounds"]


def time_rounds(
    *,
    n: int = 50,
    f: int = 10,
    input_dim: int = 784,
    hidden: int = 32,
    classes: int = 10,
    batch: int = 64,
    rounds: int = 60,
    warmup: int = 3,
    rules: Sequence[str] | None = None,
    learning_rate: float = 0.05,
    seed: int = 0,
) -> tuple[dict[str, list[float]], int, bool]:
    """``(seconds, d, brute_exact)``: each rule's seconds per round, step by step (gradient
    computation, Random Fault, aggregation and the parameter step), with ``f`` Byzantine workers and
    every rule told ``f``; the model size; whether every Brute-Force round finished its search."""
    rules = list(rules) if rules is not None else baselines.available()
    if "mean" not in rules:
        rules = ["mean", *rules]
    generator = torch.Generator().manual_seed(seed)
    model = FlatModel(lambda: nn.Sequential(nn.Linear(input_dim, hidden), nn.ReLU(), nn.Linear(hidden, classes)))

    def loss(theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(theta, x), y)

    per_worker_grad = vmap(grad(loss), in_dims=(None, 0, 0))
    x = torch.rand(n, batch, input_dim, generator=generator)
    y = torch.randint(0, classes, (n, batch), generator=generator)
    aggregators = {name: baselines.make(name, n=n, f=min(f, baselines.GARS.get(name).max_f(n))) for name in rules}
    thetas = {name: model.init(seed) for name in rules}
    times: dict[str, list[float]] = {name: [] for name in rules}
    exact = True

    def one_round(name: str) -> bool:
        theta = thetas[name]
        grads = per_worker_grad(theta, x, y)
        grads[:f] = 0.5 + 2e-6 * torch.randn(f, grads.shape[1], generator=generator)
        result = aggregators[name].aggregate(grads)
        thetas[name] = theta - learning_rate * result.update
        return result.exact

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", baselines.BruteForceBudgetWarning)
        for step in range(warmup + rounds):
            for name in rules:  # round-robin: drifting machine load hits every rule alike
                start = time.perf_counter()
                finished = one_round(name)
                elapsed = time.perf_counter() - start
                if step >= warmup:
                    times[name].append(elapsed)
                    exact &= finished
    return times, model.dim, exact


def measure_rounds(**kwargs) -> dict[str, float]:
    """Median seconds per round for each rule (``time_rounds`` arguments), plus ``"dim"`` (d) and
    ``"brute_exact"`` (1.0 if every Brute-Force round finished its search)."""
    times, dim, exact = time_rounds(**kwargs)
    out = {name: statistics.median(values) for name, values in times.items()}
    out["dim"] = float(dim)
    out["brute_exact"] = float(exact)
    return out


def paired_ratios(times: dict[str, list[float]]) -> dict[str, float]:
    """Each rule's median over steps of its round time over ``mean``'s in the same step."""
    base = times["mean"]
    return {name: statistics.median(t / b for t, b in zip(values, base, strict=True)) for name, values in times.items()}


def bench_gars(**kwargs) -> dict[str, float]:
    """Time per round of each rule divided by ``mean``'s, measured in one run (``time_rounds``
    arguments; defaults n = 50, d = 25,450, f = 10), paired step by step."""
    return paired_ratios(time_rounds(**kwargs)[0])


def distance_seconds(*, n: int = 50, d: int = 25_450, byzantine: int = 10, repeats: int = 20) -> float:
    """Seconds of one shared distance matrix (``pairwise_sq_distances``) of a Random-Fault round."""
    generator = torch.Generator().manual_seed(0)
    grads = 0.01 * torch.randn(n, d, generator=generator)
    grads[:byzantine] = 0.5 + 2e-6 * torch.randn(byzantine, d, generator=generator)
    pairwise_sq_distances(grads)
    start = time.perf_counter()
    for _ in range(repeats):
        pairwise_sq_distances(grads)
    return (time.perf_counter() - start) / repeats


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--f", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--rules", nargs="*", default=None, help="rule names (default: all)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    times, d, exact = time_rounds(n=args.n, f=args.f, rounds=args.rounds, warmup=args.warmup, rules=args.rules)
    ratios = paired_ratios(times)
    base = statistics.median(times["mean"])
    print(f"n = {args.n}, d = {d:,}, f = {args.f}, {args.rounds} rounds, torch threads = {torch.get_num_threads()}")
    print(f"mean: {1000 * base:.2f} ms per round (gradients + Random Fault + aggregation + step)")
    share = distance_seconds(n=args.n, d=d, byzantine=args.f)
    print(f"one shared distance matrix (pairwise_sq_distances): {1000 * share:.2f} ms")
    print(f"{'rule':<18} {'ms/round':>9} {'x mean':>7}   (x mean: median of per-step ratios)")
    for name, values in times.items():
        print(f"{name:<18} {1000 * statistics.median(values):>9.2f} {ratios[name]:>7.2f}")
    print(f"brute exact on every round: {exact}" if "brute" in times else "")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
