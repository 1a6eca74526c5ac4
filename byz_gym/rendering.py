"""Pictures of one round's credit: a text table and an RGB bar chart (numpy only)."""

from __future__ import annotations

import numpy as np

__all__ = ["render_credit_ansi", "render_credit_rgb"]

HONEST_RGB = (52, 101, 164)  # blue
BYZANTINE_RGB = (204, 0, 0)  # red


def render_credit_ansi(credit: np.ndarray, byzantine_mask: np.ndarray, round_index: int, width: int = 40) -> str:
    """One line per worker: index, B for Byzantine, credit and a bar scaled to the largest credit."""
    credit = np.nan_to_num(np.asarray(credit, dtype=np.float64))
    top = credit.max() if credit.size and credit.max() > 0 else 1.0
    lines = [f"round {round_index}  credit on Byzantine workers: {credit[byzantine_mask].sum():.3f}"]
    for i, (c, bad) in enumerate(zip(credit, byzantine_mask, strict=True)):
        lines.append(f"{i:4d} {'B' if bad else ' '} {c:7.4f} {'#' * int(round(width * c / top))}")
    return "\n".join(lines) + "\n"


def render_credit_rgb(credit: np.ndarray, byzantine_mask: np.ndarray, height: int = 120, bar: int = 6) -> np.ndarray:
    """``uint8[height, n·bar, 3]``: one bar per worker, red for Byzantine, blue for honest."""
    credit = np.nan_to_num(np.asarray(credit, dtype=np.float64))
    n = credit.shape[0]
    top = credit.max() if n and credit.max() > 0 else 1.0
    image = np.full((height, n * bar, 3), 255, dtype=np.uint8)
    for i, (c, bad) in enumerate(zip(credit, byzantine_mask, strict=True)):
        h = int(round((height - 1) * c / top))
        if h:
            image[height - h :, i * bar : (i + 1) * bar - 1] = BYZANTINE_RGB if bad else HONEST_RGB
    return image
