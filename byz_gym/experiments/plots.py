"""Matplotlib figures of runs. matplotlib is imported inside each function (Agg backend)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from byz_gym.experiments.runner import RunResult
from byz_gym.io import atomic_write_bytes

__all__ = ["plot_accuracy_curves", "plot_policy_curve"]


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


def _policy_curve_figure(
    credits: Any, initially_byzantine: Any, title: str = "", byzantine_label: str = "initially Byzantine"
) -> Any:
    """The matplotlib figure of :func:`plot_policy_curve` (the caller closes it). Byzantine workers are drawn from ``Reds``, benign ones from ``Blues``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.lines import Line2D

    values = np.asarray(credits.detach().cpu() if hasattr(credits, "detach") else credits, dtype=np.float64)
    byzantine = np.asarray(
        initially_byzantine.detach().cpu() if hasattr(initially_byzantine, "detach") else initially_byzantine,
        dtype=bool,
    ).reshape(-1)
    if values.ndim != 2 or values.shape[1] != byzantine.shape[0]:
        raise ValueError(f"credits must be [rounds, n] with n = {byzantine.shape[0]}, got shape {values.shape}")
    warm, cool = plt.get_cmap("Reds"), plt.get_cmap("Blues")
    n_byz, n_benign = int(byzantine.sum()), int((~byzantine).sum())

    def shade(cmap: Any, i: int, count: int) -> Any:
        return cmap(0.5 + 0.45 * (i / max(count - 1, 1)))  # the darker half: visible on white

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    rounds = np.arange(values.shape[0])
    i_byz = i_benign = 0
    for worker in range(values.shape[1]):
        if byzantine[worker]:
            color, i_byz = shade(warm, i_byz, n_byz), i_byz + 1
        else:
            color, i_benign = shade(cool, i_benign, n_benign), i_benign + 1
        ax.plot(rounds, values[:, worker], color=color, linewidth=1.2, alpha=0.9, gid=f"worker-{worker}")
    handles = [
        Line2D([], [], color=shade(warm, 0, 1), label=f"{byzantine_label} ({n_byz})"),
        Line2D([], [], color=shade(cool, 0, 1), label=f"benign ({n_benign})"),
    ]
    ax.legend(handles=handles, fontsize=8, loc="upper right")
    ax.set_xlabel("round")
    ax.set_ylabel("credit")
    ax.grid(alpha=0.3)
    ax.set_title(title or "credit of each worker per round")
    fig.tight_layout()
    return fig


def plot_policy_curve(
    credits: Any,
    initially_byzantine: Any,
    path: str | Path,
    title: str = "",
    byzantine_label: str = "initially Byzantine",
) -> Path:
    """PNG of every worker's credit over rounds (paper Fig. 8): ``credits`` is ``[rounds, n]``,
    the workers flagged in ``initially_byzantine`` in warm colours (legend: ``byzantine_label``),
    the others in cool colours. Written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = _policy_curve_figure(credits, initially_byzantine, title, byzantine_label)
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png")
    finally:
        plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())
