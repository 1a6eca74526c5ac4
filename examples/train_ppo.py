"""Train PPO on one byz-gym scenario, then score the saved model against plain averaging.

1. ``agents.sb3.train_sb3`` trains Stable-Baselines3's PPO with the equivariant ``WorkerSetPolicy``
   and the packaged hyperparameters (``agents/hyperparams/ppo.yml``) and saves a run folder
   (``model.zip``, ``vecnormalize.pkl``, ``config.json``, ``monitor/``).
2. ``run_episode(env, make_policy("sb3:" + run_dir), seed=s)`` plays the saved model back for one
   episode on each evaluation seed, and ``uniform`` (plain averaging) runs on the same seeds.
3. It prints the final test accuracy and the credit on Byzantine workers (mean over rounds) of both.

Run it::

    python examples/train_ppo.py --train-horizon 50 --eval-seeds 100 101   # docs/sb3.md, about 4 min
    python examples/train_ppo.py --timesteps 4800 --n-envs 2 \\
        --env-kwargs '{"n_workers": 10, "horizon": 50}' --hyperparams '{"n_steps": 100, "batch_size": 100}'

``--env-kwargs`` sets env keywords (Scenario fields, ``features``) for training and evaluation alike
(a ``horizon`` also sets the time limit); ``--hyperparams`` overrides entries of the YAML. The run folder is printed; play it
back later with ``byz-gym run --policy sb3:RUN_DIR`` or compare it with ``examples/compare_policies.py``.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from agents.sb3 import train_sb3
from byz_gym.experiments import make_policy, run_episode


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="ByzGym/Digits-Majority-v0", help="a registered byz-gym id")
    parser.add_argument("--timesteps", type=int, default=None, help="env steps (default: the YAML's n_timesteps)")
    parser.add_argument("--seed", type=int, default=0, help="seeds PPO and the training envs")
    parser.add_argument("--eval-seeds", type=int, nargs="+", default=[0, 1, 2], help="one episode per seed")
    parser.add_argument(
        "--env-kwargs", type=json.loads, default={}, help="JSON env keywords: Scenario fields, features, ..."
    )
    parser.add_argument(
        "--train-horizon", type=int, default=None, help="rounds per training episode (evaluation: the env's own)"
    )
    parser.add_argument("--n-envs", type=int, default=None, help="parallel training envs (default: the YAML's)")
    parser.add_argument("--hyperparams", type=json.loads, default=None, help="JSON overrides of the YAML entry")
    parser.add_argument("--out", default=None, help="run folder (default: runs/ppo/<env-name>_s<seed>)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)  # small networks and envs: one thread is fastest on a CPU (docs/sb3.md)

    # 1. Train and save the run folder.
    model, run_dir = train_sb3(
        "ppo",
        args.env,
        args.timesteps,
        args.seed,
        n_envs=args.n_envs,
        hyperparams=args.hyperparams,
        # Short training episodes restart the model often: early mistakes do not spoil 300 rounds.
        env_kwargs=args.env_kwargs
        if args.train_horizon is None
        else {**args.env_kwargs, "horizon": args.train_horizon},
        out_dir=args.out,
    )
    print(f"trained PPO for {model.num_timesteps} steps on {args.env}; run folder: {run_dir}")

    # 2. Play the saved model back, and plain averaging, on the same seeds (same honest gradients).
    results = {"ppo": [], "uniform": []}
    for seed in args.eval_seeds:
        for label, name in (("ppo", f"sb3:{run_dir}"), ("uniform", "uniform")):
            results[label].append(run_episode(args.env, make_policy(name), seed=seed, env_kwargs=args.env_kwargs))

    # 3. Print one line per policy and seed, then the means.
    print(f"\n{'policy':<8} {'seed':>5} {'final test accuracy':>20} {'credit on Byzantine':>20}")
    for label, runs in results.items():
        for run in runs:
            print(f"{label:<8} {run.seed:>5} {run.final_test_accuracy:>20.3f} {run.byzantine_credit_mass:>20.3f}")
    for label, runs in results.items():
        accuracy = np.mean([run.final_test_accuracy for run in runs])
        credit = np.mean([run.byzantine_credit_mass for run in runs])
        print(f"{label:<8} {'mean':>5} {accuracy:>20.3f} {credit:>20.3f}")
    return 0


if __name__ == "__main__":  # also needed if you train with vec="subproc" (spawned workers re-import this file)
    raise SystemExit(main())
