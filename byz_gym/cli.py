"""``byz-gym`` command line. Each subcommand parses its arguments and calls one library function."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not valid JSON ({error}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object like '{{\"n_workers\": 10}}', got {text!r}")
    return value


def _json_object_or_path(text: str) -> dict[str, Any] | str:
    """A JSON object (starts with ``{``) or the path of a YAML/JSON file."""
    return _json_object(text) if text.lstrip().startswith("{") else text


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="byz-gym", description="Byzantine-robust distributed learning as a Gymnasium environment."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("list", help="print registered env ids, tasks, attacks and policies")

    run = commands.add_parser("run", help="train once with one policy choosing the credit each round")
    run.add_argument("--env", default="ByzGym/Digits-v0", help="registered env id (see `byz-gym list`)")
    run.add_argument(
        "--env-kwargs",
        type=_json_object,
        default={},
        help="JSON object of env keywords: Scenario fields, features, temperature, ...",
    )
    run.add_argument("--policy", default="uniform", help="policy name (see `byz-gym list`)")
    run.add_argument("--policy-kwargs", type=_json_object, default={}, help="JSON object of policy parameters")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--rounds", type=int, default=None, help="rounds to train (default: the env's horizon)")
    run.add_argument("--json", action="store_true", help="print the summary as one JSON object (last line)")
    run.add_argument("--progress", action="store_true", help="show a progress bar")
    run.add_argument(
        "--policy-curve", default=None, metavar="PNG", help="also plot every worker's credit per round (paper Fig. 8)"
    )

    demo = commands.add_parser(
        "demo", help="uniform, random, loss_greedy, gaa and oracle credit on ByzGym/Digits-v0, with a plot"
    )
    demo.add_argument("--env", default="ByzGym/Digits-v0")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--rounds", type=int, default=None)
    demo.add_argument("--env-kwargs", type=_json_object, default={})
    demo.add_argument("--out", default="runs/demo", help="folder for results.jsonl and accuracy.png")
    demo.add_argument("--no-progress", action="store_true")

    from byz_gym.experiments.training import TRAIN_ALGOS

    train = commands.add_parser(
        "train", help="train an SB3 algorithm or GAA on an env and save it in a run folder (printed at the end)"
    )
    train.add_argument("--algo", required=True, choices=TRAIN_ALGOS, help="SB3 algorithm or gaa (Algorithm 1)")
    train.add_argument("--env", default="ByzGym/Digits-v0", help="registered env id (see `byz-gym list`)")
    train.add_argument(
        "--timesteps",
        type=int,
        default=None,
        help="env steps (SB3) or server rounds (gaa); default: the hyperparameters' n_timesteps (gaa: 5 episodes)",
    )
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--n-envs", type=int, default=None, help="parallel envs (default: the hyperparameters')")
    train.add_argument("--vec", choices=("dummy", "subproc"), default="dummy", help="vectorised env kind")
    train.add_argument("--normalize", action="store_true", default=None, help="VecNormalize observations and rewards")
    train.add_argument("--tensorboard", default=None, help="tensorboard log folder (needs tensorboard)")
    train.add_argument("--out", default=None, help="run folder (default: runs/<algo>/<env-name>_s<seed>)")
    train.add_argument(
        "--env-kwargs",
        type=_json_object,
        default={},
        help="JSON object of env keywords: Scenario fields, features, temperature, ...",
    )
    train.add_argument(
        "--hyperparams",
        type=_json_object_or_path,
        default=None,
        help="JSON object overriding agents/hyperparams/<algo>.yml, or a YAML/JSON file replacing it",
    )
    train.add_argument("--no-progress", action="store_true")

    evaluate = commands.add_parser("evaluate", help="mean ± std episode return of a saved SB3 model over seeds")
    evaluate.add_argument("--model", required=True, help="run folder of `byz-gym train` or a model .zip")
    evaluate.add_argument("--env", default=None, help="env id (default: the one the model was trained on)")
    evaluate.add_argument("--seeds", type=int, nargs="+", default=[0])
    evaluate.add_argument("--episodes", type=int, default=1, help="episodes per seed")
    evaluate.add_argument(
        "--env-kwargs", type=_json_object, default=None, help="JSON object of env keywords (default: training's)"
    )
    evaluate.add_argument("--json", action="store_true", help="print the result as one JSON object (last line)")

    sweep = commands.add_parser(
        "sweep", help="run every (env, policy) cell of a YAML/JSON sweep file over its seeds (resumable)"
    )
    sweep.add_argument("config", help="sweep file (see byz_gym/experiments/sweep.py, examples/sweeps/)")
    sweep.add_argument("--out", default="runs/sweep/results.jsonl", help="JSON Lines results file (appended)")
    sweep.add_argument("--workers", type=int, default=1, help="parallel processes (one torch thread each)")
    sweep.add_argument("--no-progress", action="store_true")

    plot = commands.add_parser(
        "plot", help="test-accuracy curves of a results JSONL file (e.g. runs/demo/results.jsonl)"
    )
    plot.add_argument("--results", required=True, help="JSON Lines file of run records")
    plot.add_argument("--out", required=True, help="PNG file to write")
    plot.add_argument("--title", default="")
    return parser


def _cmd_list(args: argparse.Namespace) -> int:
    import byz_gym
    from byz_gym.experiments import available_policies
    from byz_gym.policy import POLICIES
    from byz_gym.sim import SCHEDULES, TAMPERINGS, TASKS

    print("env ids:    " + ", ".join(byz_gym.registered_env_ids()))
    print("tasks:      " + ", ".join(TASKS.names()))
    print("schedules:  " + ", ".join(SCHEDULES.names()))
    print("tamperings: " + ", ".join(TAMPERINGS.names()))
    names = [f"{n} (privileged)" if POLICIES.get(n).privileged else n for n in available_policies()]
    print("policies:   " + ", ".join(names))
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from byz_gym.experiments import make_policy, run_episode

    policy = make_policy(args.policy, **args.policy_kwargs)
    result = run_episode(
        args.env,
        policy,
        seed=args.seed,
        rounds=args.rounds,
        env_kwargs=args.env_kwargs,
        progress=args.progress,
        record_credits=args.policy_curve is not None,
    )
    if args.policy_curve is not None:
        from byz_gym.experiments import plot_policy_curve

        title = f"{result.policy} on {result.env}, seed {result.seed}"
        label = "Byzantine in some round"
        plot_policy_curve(result.credits, result.byzantine_workers, args.policy_curve, title, byzantine_label=label)
    record = result.to_dict()
    for bulky in ("accuracy_curve", "credits", "byzantine_workers"):
        del record[bulky]
    if args.json:
        print(json.dumps(record))
    else:
        for key, value in record.items():
            print(f"{key:>22}: {value}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from byz_gym.experiments import format_table, run_demo

    results = run_demo(
        args.env,
        seed=args.seed,
        rounds=args.rounds,
        out_dir=args.out,
        env_kwargs=args.env_kwargs,
        progress=not args.no_progress,
    )
    print(format_table(results))
    print(f"\nwrote {args.out}/results.jsonl and {args.out}/accuracy.png")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from byz_gym.experiments.training import train

    run_dir = train(
        args.algo,
        args.env,
        args.timesteps,
        args.seed,
        n_envs=args.n_envs,
        vec=args.vec,
        normalize=args.normalize,
        tensorboard=args.tensorboard,
        out_dir=args.out,
        env_kwargs=args.env_kwargs,
        hyperparams=args.hyperparams,
        progress=not args.no_progress,
    )
    print(run_dir)
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from byz_gym.experiments.training import evaluate

    result = evaluate(args.model, args.env, seeds=args.seeds, episodes=args.episodes, env_kwargs=args.env_kwargs)
    print(json.dumps(result.to_dict()) if args.json else result.summary())
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from byz_gym.experiments.sweep import load_sweep, report, run_sweep

    cells, seeds, detection = load_sweep(args.config)
    records = run_sweep(
        cells, seeds, args.out, workers=args.workers, detection=detection, progress=not args.no_progress
    )
    print(report(records))
    print(f"\n{len(records)} runs in {args.out}")
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from byz_gym.experiments.training import plot_results

    print(plot_results(args.results, args.out, title=args.title))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handler = {
        "list": _cmd_list,
        "run": _cmd_run,
        "demo": _cmd_demo,
        "train": _cmd_train,
        "evaluate": _cmd_evaluate,
        "sweep": _cmd_sweep,
        "plot": _cmd_plot,
    }[args.command]
    try:
        return handler(args)
    except (ValueError, FileNotFoundError) as error:  # bad names, parameters, scenarios or paths: no traceback
        print(f"byz-gym {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
