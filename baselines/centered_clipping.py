"""Centered clipping.

Reference: Sai Praneeth Karimireddy, Lie He, Martin Jaggi, "Learning from History for Byzantine
Robust Optimization", ICML 2021 (https://arxiv.org/abs/2012.10333).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from baselines._common import GAR, Aggregate, coordinate_median, finite_rows, register_gar, weighted_sum

__all__ = ["CenteredClipping"]

CENTERS = ("previous", "median", "zero")


@register_gar("centered_clipping")
class CenteredClipping(GAR):
    r"""Centered clipping: starting from a center :math:`v_0`, repeat ``n_iter`` times

    .. math:: v_{l+1} = v_l + \frac{1}{n} \sum_i (V_i - v_l)
              \min\Big(1, \frac{\tau}{\lVert V_i - v_l \rVert}\Big).

    ``center="previous"`` (the paper's choice) starts from the previous round's output, 0 in the
    first round after construction or ``reset()``: the rule is stateful. ``"median"`` starts from
    the coordinate-wise median of the round (stateless, translation equivariant); ``"zero"`` from 0.
    Differences are taken in the input dtype, norms and the center accumulated in float64. Non-linear. A row with NaN or Inf is infinitely far, so its clipped
    contribution is 0; an enormous row moves the center by at most ``τ/n`` per iteration. With
    more Byzantine workers than expected, each still moves the center by at most ``τ/n`` per
    iteration, but their pull adds up round after round.

    Parameters
    ----------
    f : int
        Number of Byzantine workers the rule is told to expect (only used to check ``n >= 2f+1``).
    n : int, optional
        Number of workers; when given, feasibility is checked now.
    tau : float, default 10.0
        Clipping radius τ (in gradient units).
    n_iter : int, default 1
        Clipping iterations L per round (the paper finds 1 enough with the "previous" center).
    center : {"previous", "median", "zero"}, default "previous"
        Starting point :math:`v_0`.

    Raises
    ------
    ValueError
        If ``n < 2f + 1`` or a knob is invalid.

    References
    ----------
    Karimireddy, He, Jaggi, "Learning from History for Byzantine Robust Optimization",
    ICML 2021, https://arxiv.org/abs/2012.10333

    Examples
    --------
    >>> import torch
    >>> grads = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [300.0, 400.0]])
    >>> CenteredClipping(f=1, tau=5.0, center="zero").aggregate(grads).update
    tensor([1.2500, 1.5000])
    """

    name = "centered_clipping"
    bound = "n >= 2f+1"

    def __init__(
        self, *, f: int, n: int | None = None, tau: float = 10.0, n_iter: int = 1, center: str = "previous"
    ) -> None:
        if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not (math.isfinite(tau) and tau > 0):
            raise ValueError(f"CenteredClipping: tau must be a finite positive number, got {tau!r}")
        if isinstance(n_iter, bool) or not isinstance(n_iter, int) or n_iter < 1:
            raise ValueError(f"CenteredClipping: n_iter must be a positive integer, got {n_iter!r}")
        if center not in CENTERS:
            raise ValueError(f"CenteredClipping: center must be one of {CENTERS}, got {center!r}")
        self.tau, self.n_iter, self.center = float(tau), n_iter, center
        self._previous: Tensor | None = None
        super().__init__(f=f, n=n)

    @classmethod
    def min_workers(cls, f: int) -> int:
        return 2 * f + 1

    def _params(self) -> dict:
        return {**super()._params(), "tau": self.tau, "n_iter": self.n_iter, "center": self.center}

    def reset(self, seed: int | None = None) -> None:
        """Forget the previous round's output (the next round starts from 0)."""
        self._previous = None

    def _start(self, grads: Tensor) -> Tensor:
        d = grads.shape[1]
        if self.center == "median":
            v = coordinate_median(grads).to(torch.float64)
            return torch.where(torch.isfinite(v), v, torch.zeros_like(v))
        if self.center == "previous" and self._previous is not None and self._previous.shape == (d,):
            return self._previous.to(grads.device)
        return torch.zeros(d, dtype=torch.float64, device=grads.device)

    def _aggregate(self, grads: Tensor, distances: Tensor | None) -> Aggregate:
        n = grads.shape[0]
        finite = finite_rows(grads)
        v = self._start(grads)  # float64
        for _ in range(self.n_iter):
            diff = grads - v.to(grads.dtype)  # in the input dtype: one pass, no float64 copy of [n, d]
            norms = torch.linalg.vector_norm(diff, dim=1, dtype=torch.float64)
            scale = torch.where(norms > self.tau, self.tau / norms, torch.ones_like(norms))
            scale = torch.where(finite & torch.isfinite(norms), scale, torch.zeros_like(scale))
            v = v + weighted_sum(scale, diff).to(torch.float64) / n
        if self.center == "previous":
            self._previous = v
        return Aggregate(update=v.to(grads.dtype))
