"""Policy-curve plot (paper Fig. 8)."""

from __future__ import annotations

import numpy as np
import pytest

from byz_gym.experiments import plot_policy_curve
from byz_gym.experiments.plots import _policy_curve_figure

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _credits(rounds: int = 20) -> np.ndarray:
    t = np.linspace(0.0, 1.0, rounds)[:, None]
    start = np.full((1, 3), 1 / 3)
    end = np.array([[0.5, 0.5, 0.0]])
    return (1 - t) * start + t * end


def test_policy_curve_colours_warm_byzantine_cool_benign():
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgba

    fig = _policy_curve_figure(_credits(), [False, True, False], title="t")
    try:
        lines = {line.get_gid(): line for line in fig.axes[0].get_lines()}
        assert set(lines) == {"worker-0", "worker-1", "worker-2"}
        for worker, byzantine in enumerate([False, True, False]):
            r, g, b, _ = to_rgba(lines[f"worker-{worker}"].get_color())
            assert (r > b) == byzantine and (b > r) == (not byzantine)
        np.testing.assert_allclose(lines["worker-1"].get_ydata(), _credits()[:, 1])
        assert fig.axes[0].get_title() == "t"
    finally:
        plt.close(fig)


def test_plot_policy_curve_writes_png_atomically(tmp_path):
    path = plot_policy_curve(_credits(), np.array([False, True, False]), tmp_path / "sub" / "fig8.png")
    assert path == tmp_path / "sub" / "fig8.png"
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert [p.name for p in path.parent.iterdir()] == ["fig8.png"]  # no temp file left


def test_plot_policy_curve_rejects_mismatched_shapes(tmp_path):
    with pytest.raises(ValueError):
        plot_policy_curve(_credits(), [True, False], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
