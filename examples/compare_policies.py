"""Compare PPO, GAA, Krum and plain averaging on one scenario, on the same seeds.

The four policies run as the cells of a sweep (``byz_gym.experiments.sweep``) on one env id:

- ``ppo``: a saved SB3 run folder (``--ppo runs/ppo/Digits-Majority-v0_s0``, e.g. from
  ``examples/train_ppo.py``), or one trained here first with ``--train-timesteps N``; without
  either, PPO is skipped.
- ``gaa``: the paper's agent, trained online during each run (Algorithm 1).
- ``krum``: ``f`` is the scenario's number of Byzantine workers, or the largest ``f`` Krum accepts
  at this ``n`` (``n >= 2f + 3``) when there are more Byzantine workers than that (β = 0.7).
- ``mean``: plain averaging.

Every policy sees the same honest gradients on a seed. Each finished run is one line of
``OUT/results.jsonl`` (resumable: finished (policy, seed) pairs are skipped on a re-run; delete the
file to start over). It prints mean ± std tables over the seeds (final test accuracy, credit on
Byzantine workers) and draws ``OUT/accuracy.png``. Run it::

    python examples/compare_policies.py --ppo runs/ppo/Digits-Majority-v0_s0 --workers 2
    python examples/compare_policies.py --seeds 0 --env-kwargs '{"n_workers": 10, "horizon": 50}' \\
        --train-timesteps 2000 --hyperparams '{"n_envs": 1, "n_steps": 100, "batch_size": 100}'
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from agents.sb3 import train_sb3
from baselines import GARS
from byz_gym.experiments import RunResult, plot_accuracy_curves, scenario_for_env
from byz_gym.experiments.sweep import Cell, report, run_sweep


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="ByzGym/Digits-Majority-v0", help="a registered byz-gym id")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="the same seeds for every policy")
    parser.add_argument(
        "--env-kwargs", type=json.loads, default={}, help="JSON env keywords: Scenario fields, features, ..."
    )
    parser.add_argument("--workers", type=int, default=1, help="parallel processes for the runs")
    parser.add_argument("--out", default="runs/compare", help="folder for results.jsonl and accuracy.png")
    parser.add_argument("--ppo", default=None, help="a saved SB3 PPO run folder (or model zip)")
    parser.add_argument("--train-timesteps", type=int, default=None, help="without --ppo: train PPO for N steps first")
    parser.add_argument("--hyperparams", type=json.loads, default=None, help="JSON overrides of ppo.yml (training)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)  # small networks and envs: one thread is fastest on a CPU (docs/sb3.md)
    out = Path(args.out)

    # 1. PPO: the given run folder, or one trained now, or none.
    ppo = args.ppo
    if ppo is None and args.train_timesteps:
        _, run_dir = train_sb3(
            "ppo",
            args.env,
            args.train_timesteps,
            hyperparams=args.hyperparams,
            env_kwargs=args.env_kwargs,
            out_dir=out / "ppo",
        )
        ppo = str(run_dir)
    if ppo is None:
        print("no --ppo run folder and no --train-timesteps: skipping PPO")

    # 2. Krum needs n >= 2f + 3: with more Byzantine workers than that, use the largest f it accepts.
    scenario = scenario_for_env(args.env, args.env_kwargs)
    krum_f = min(scenario.n_byzantine, GARS.get("krum").max_f(scenario.n_workers))

    # 3. One sweep cell per policy, all on the same env and seeds.
    kwargs = {"env": args.env, "env_kwargs": args.env_kwargs}
    cells = [Cell(policy=f"sb3:{ppo}", label="ppo", **kwargs)] if ppo else []
    cells += [
        Cell(policy="gaa", **kwargs),
        Cell(policy="krum", policy_kwargs={"f": krum_f}, label=f"krum (f={krum_f})", **kwargs),
        Cell(policy="mean", **kwargs),
    ]
    records = run_sweep(cells, args.seeds, out / "results.jsonl", workers=args.workers)

    # 4. Tables over the seeds, and the accuracy curves (legend: the table's labels).
    print(report(records))
    curves = [RunResult.from_dict({**record, "policy": record["label"]}) for record in records]
    png = plot_accuracy_curves(curves, out / "accuracy.png", title=f"{args.env}, seeds {args.seeds}")
    print(f"\n{len(records)} runs in {out / 'results.jsonl'}; curves in {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
