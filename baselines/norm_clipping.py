"""Norm clipping: each submission is scaled down to norm at most τ before averaging.

Reference: Ziteng Sun, Peter Kairouz, Ananda Theertha Suresh, H. Brendan McMahan, "Can You Really
Backdoor Federated Learning?", 2019 (https://arxiv.org/abs/1911.07963).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from baselines._common import GAR, Aggregate, finite_rows, register_gar, weighted_sum

__all__ = ["NormClipping"]


@register_gar("norm_clipping")
class NormClipping(GAR):
    r"""Mean of the submissions after clipping each to norm at most τ:

    .. math:: u = \frac{1}{n} \sum_i V_i \min\Big(1, \frac{\tau}{\lVert V_i \rVert}\Big).

    With ``tau=None`` (default) τ is the median of the n norms, so the rule is scale free and
    at most half the rows are shrunk. Non-linear. A row with NaN or Inf contributes 0 (its norm is
    infinite); an enormous row contributes at most ``τ/n``. The median-norm τ stays finite while
    fewer than n/2 rows are bad (``n >= 2f+1``). It bounds each Byzantine row's influence but does
    not remove it: with many Byzantine workers of norm about τ the update follows them.

    Parameters
    ----------
    f : int
        Number of Byzantine workers the rule is told to expect (only used to check ``n >= 2f+1``).
    n : int, optional
        Number of workers; when given, feasibility is checked now.
    tau : float, optional
        Clipping radius; ``None`` uses the median submission norm of the round.

    Raises
    ------
    ValueError
        If ``n < 2f + 1`` or ``tau`` is not a finite positive number.

    References
    ----------
    Sun, Kairouz, Suresh, McMahan, "Can You Really Backdoor Federated Learning?", 2019,
    https://arxiv.org/abs/1911.07963

    Examples
    --------
    >>> import torch
    >>> grads = torch.tensor([[3.0, 4.0], [0.0, 1.0], [0.0, -2.0], [600.0, 800.0]])
    >>> NormClipping(f=1, tau=5.0).aggregate(grads).update
    tensor([1.5000, 1.7500])
    """

    name = "norm_clipping"
    bound = "n >= 2f+1"

    def __init__(self, *, f: int, n: int | None = None, tau: float | None = None) -> None:
        if tau is not None and (
            isinstance(tau, bool) or not isinstance(tau, (int, float)) or not (math.isfinite(tau) and tau > 0)
        ):
            raise ValueError(f"NormClipping: tau must be a finite positive number or None, got {tau!r}")
        self.tau = None if tau is None else float(tau)
        super().__init__(f=f, n=n)

    @classmethod
    def min_workers(cls, f: int) -> int:
        return 2 * f + 1

    def _params(self) -> dict:
        return {**super()._params(), "tau": self.tau}

    def _aggregate(self, grads: Tensor, distances: Tensor | None) -> Aggregate:
        n = grads.shape[0]
        finite = finite_rows(grads)
        norms = torch.linalg.vector_norm(grads, dim=1, dtype=torch.float64)
        norms = torch.where(finite, norms, torch.full_like(norms, float("inf")))
        tau = self.tau if self.tau is not None else float(norms.sort().values[(n - 1) // 2])
        scale = torch.where(norms > tau, tau / norms, torch.ones_like(norms))
        scale = torch.where(torch.isfinite(norms), scale, torch.zeros_like(scale))  # non-finite rows: 0
        return Aggregate(update=weighted_sum(scale, grads) / n)
