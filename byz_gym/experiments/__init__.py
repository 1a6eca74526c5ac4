"""Running policies on scenarios: single runs, the demo, result files and plots."""

from byz_gym.experiments.demo import format_table, run_demo
from byz_gym.experiments.detection import (
    DetectionTracker,
    gaa_plus_flags,
    geomed_plus_flags,
    precision_recall,
)
from byz_gym.experiments.io import write_json, write_jsonl
from byz_gym.experiments.plots import plot_accuracy_curves, plot_policy_curve
from byz_gym.experiments.policies import available_policies, make_policy
from byz_gym.experiments.runner import RunResult, run_episode

__all__ = [
    "DetectionTracker",
    "RunResult",
    "available_policies",
    "format_table",
    "gaa_plus_flags",
    "geomed_plus_flags",
    "make_policy",
    "plot_accuracy_curves",
    "plot_policy_curve",
    "precision_recall",
    "run_demo",
    "run_episode",
    "write_json",
    "write_jsonl",
]
