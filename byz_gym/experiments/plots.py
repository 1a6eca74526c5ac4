"""Matplotlib figures of runs. matplotlib is imported inside each function (Agg backend)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from byz_gym.experiments.io import atomic_write_bytes
from byz_gym.experiments.runner import RunResult

__all__ = ["plot_accuracy_curves"]


def plot_accuracy_curves(results: Sequence[RunResult], path: str | Path, title: str = "") -> Path:
    """PNG of test accuracy per round, one line per run (labelled ``policy on env``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for result in results:
        rounds, accuracy = zip(*result.accuracy_curve, strict=True)
        style = "--" if result.privileged else "-"
        ax.plot(rounds, accuracy, style, label=f"{result.policy} on {result.env}", linewidth=1.8)
    ax.set_xlabel("round")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0.0, 1.0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title or "test accuracy per round")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())
