"""Running policies on scenarios: single runs, the demo, training agents, result files and plots."""

from byz_gym.experiments.demo import format_table, run_demo
from byz_gym.experiments.detection import (
    DetectionTracker,
    gaa_plus_flags,
    geomed_plus_flags,
    precision_recall,
)
from byz_gym.experiments.plots import plot_accuracy_curves, plot_policy_curve
from byz_gym.experiments.policies import available_policies, make_policy
from byz_gym.experiments.runner import RunResult, run_episode
from byz_gym.experiments.training import (
    evaluate,
    plot_results,
    read_results,
    scenario_for_env,
    train,
    train_gaa_run,
)
from byz_gym.io import write_json, write_jsonl

__all__ = [
    "DetectionTracker",
    "RunResult",
    "available_policies",
    "evaluate",
    "format_table",
    "gaa_plus_flags",
    "geomed_plus_flags",
    "make_policy",
    "plot_accuracy_curves",
    "plot_policy_curve",
    "plot_results",
    "precision_recall",
    "read_results",
    "run_demo",
    "run_episode",
    "scenario_for_env",
    "train",
    "train_gaa_run",
    "write_json",
    "write_jsonl",
]
