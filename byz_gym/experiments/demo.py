"""The README demo: plain averaging, random credit and the oracle on one attacked scenario."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from byz_gym.experiments.plots import plot_accuracy_curves
from byz_gym.experiments.policies import make_policy
from byz_gym.experiments.runner import RunResult, run_episode
from byz_gym.io import write_jsonl

__all__ = ["format_table", "run_demo"]


def format_table(results: Sequence[RunResult]) -> str:
    """A markdown table of the runs' final numbers."""
    lines = [
        "| policy | env | final test acc. | credit on Byzantine | final QV loss | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        name = f"{r.policy} (privileged)" if r.privileged else r.policy
        lines.append(
            f"| {name} | {r.env} | {r.final_test_accuracy:.3f} | {r.byzantine_credit_mass:.3f} "
            f"| {r.final_qv_loss:.3f} | {r.wall_seconds:.1f} |"
        )
    return "\n".join(lines)


def run_demo(
    env_id: str = "ByzGym/Digits-v0",
    policies: Sequence[str] = ("uniform", "random", "loss_greedy", "gaa", "oracle"),
    *,
    clean_env_id: str | None = "ByzGym/Digits-Clean-v0",
    seed: int = 0,
    rounds: int | None = None,
    out_dir: str | Path = "runs/demo",
    env_kwargs: dict | None = None,
    progress: bool = True,
) -> list[RunResult]:
    """Run ``policies`` on ``env_id`` (and uniform on ``clean_env_id`` as the no-attack reference),
    all on ``seed``; write ``results.jsonl`` and ``accuracy.png`` under ``out_dir``."""
    runs = [(clean_env_id, "uniform")] if clean_env_id else []
    runs += [(env_id, name) for name in policies]
    results = [
        run_episode(env, make_policy(name), seed=seed, rounds=rounds, env_kwargs=env_kwargs, progress=progress)
        for env, name in runs
    ]
    out = Path(out_dir)
    write_jsonl(out / "results.jsonl", [r.to_dict() for r in results])
    plot_accuracy_curves(results, out / "accuracy.png", title=f"{env_id}, seed {seed}")
    return results
