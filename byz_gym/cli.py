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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="byz-gym", description="Byzantine-robust distributed learning as a Gymnasium environment."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("list", help="print registered env ids, tasks, attacks and policies")

    run = commands.add_parser("run", help="train once with one policy choosing the credit each round")
    run.add_argument("--env", default="ByzGym/Digits-v0", help="registered env id (see `byz-gym list`)")
    run.add_argument("--env-kwargs", type=_json_object, default={}, help="JSON object of Scenario overrides")
    run.add_argument("--policy", default="uniform", help="policy name (see `byz-gym list`)")
    run.add_argument("--policy-kwargs", type=_json_object, default={}, help="JSON object of policy parameters")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--rounds", type=int, default=None, help="rounds to train (default: the env's horizon)")
    run.add_argument("--json", action="store_true", help="print the summary as one JSON object (last line)")
    run.add_argument("--progress", action="store_true", help="show a progress bar")

    demo = commands.add_parser("demo", help="uniform, random and oracle credit on ByzGym/Digits-v0, with a plot")
    demo.add_argument("--env", default="ByzGym/Digits-v0")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--rounds", type=int, default=None)
    demo.add_argument("--env-kwargs", type=_json_object, default={})
    demo.add_argument("--out", default="runs/demo", help="folder for results.jsonl and accuracy.png")
    demo.add_argument("--no-progress", action="store_true")
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
        args.env, policy, seed=args.seed, rounds=args.rounds, env_kwargs=args.env_kwargs, progress=args.progress
    )
    record = result.to_dict()
    del record["accuracy_curve"]
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


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handler = {"list": _cmd_list, "run": _cmd_run, "demo": _cmd_demo}[args.command]
    try:
        return handler(args)
    except ValueError as error:  # bad names, parameters or scenarios: say what was wrong, no traceback
        print(f"byz-gym {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
