"""Running policies on scenarios: single runs, the demo, result files and plots."""

from byz_gym.experiments.demo import format_table, run_demo
from byz_gym.experiments.io import write_json, write_jsonl
from byz_gym.experiments.plots import plot_accuracy_curves
from byz_gym.experiments.policies import available_policies, make_policy
from byz_gym.experiments.runner import RunResult, run_episode

__all__ = [
    "RunResult",
    "available_policies",
    "format_table",
    "make_policy",
    "plot_accuracy_curves",
    "run_demo",
    "run_episode",
    "write_json",
    "write_jsonl",
]
