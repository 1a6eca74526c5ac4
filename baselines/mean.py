"""Plain averaging, the "Classical" baseline of the GAA paper.

Reference: the parameter-server SGD of Li et al., "Scaling Distributed Machine Learning with the
Parameter Server", OSDI 2014 (https://www.usenix.org/conference/osdi14/technical-sessions/presentation/li_mu);
called "Classical" in Pan et al., USENIX Security 2020
(https://www.usenix.org/conference/usenixsecurity20/presentation/pan).
"""

from __future__ import annotations

import torch
from torch import Tensor

from baselines._common import GAR, Aggregate, register_gar, weighted_sum

__all__ = ["Mean"]


@register_gar("mean")
class Mean(GAR):
    r"""Arithmetic mean of the submissions, :math:`u = \frac{1}{n} \sum_i V_i`.

    Linear with credit :math:`\alpha_i = 1/n`. Not robust: a single Byzantine row moves the
    update arbitrarily far, and NaN, Inf or enormous rows propagate into the update (the env then
    ends the episode with a ``termination_reason``). ``f`` is accepted for a uniform interface and
    only checked to be below ``n``.

    Parameters
    ----------
    f : int, default 0
        Number of Byzantine workers the rule is told to expect (unused by the rule).
    n : int, optional
        Number of workers; when given, feasibility (``n >= f+1``) is checked now.

    Raises
    ------
    ValueError
        If ``n < f + 1``.

    References
    ----------
    Li et al., OSDI 2014; Pan et al., USENIX Security 2020 ("Classical").

    Examples
    --------
    >>> import torch
    >>> grads = torch.tensor([[0.0, 0.0], [2.0, 0.0], [4.0, 6.0]])
    >>> result = Mean().aggregate(grads)
    >>> result.update
    tensor([2., 2.])
    >>> result.credit
    tensor([0.3333, 0.3333, 0.3333])
    """

    name = "mean"
    linear = True
    bound = "n >= f+1"

    def __init__(self, *, f: int = 0, n: int | None = None) -> None:
        super().__init__(f=f, n=n)

    def _aggregate(self, grads: Tensor, distances: Tensor | None) -> Aggregate:
        n = grads.shape[0]
        credit = torch.full((n,), 1.0 / n, dtype=grads.dtype, device=grads.device)
        return Aggregate(update=weighted_sum(credit, grads), credit=credit)
