"""``Pipeline``: pre-aggregators in front of a rule, sharing one distance matrix per round."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from baselines._common import (
    GAR,
    Aggregate,
    PreAggregator,
    apply_mixing,
    check_distances,
    check_grads,
    finite_rows,
    mixed_sq_distances,
    weighted_sum,
)

__all__ = ["Pipeline"]


class Pipeline:
    """``pre[0] -> pre[1] -> ... -> rule``, itself a rule with the same ``aggregate`` protocol.

    The pairwise distances of the submissions are computed once (or taken from the caller); the
    distances of mixed rows are derived from them through the mixing matrix (``[n, n]`` work, no
    pass over d). When the rule is linear the pipeline is linear too: its credit is the rule's
    credit times the product of the mixing matrices, and ``update == credit @ grads``.

    Build it with ``baselines.make(name, n=..., f=..., pre=[...])``, which sizes the rule for
    the number of rows the pre-aggregators produce.
    """

    def __init__(self, pre: Sequence[PreAggregator], rule: GAR, *, n: int | None = None) -> None:
        self.n = n
        self.pre = list(pre)
        self.rule = rule
        self.f = rule.f
        self.linear = rule.linear
        self.uses_distances = rule.uses_distances or any(p.uses_distances for p in self.pre)
        self.name = "+".join([p.name for p in self.pre] + [rule.name])

    def out_workers(self, n: int) -> int:
        for p in self.pre:
            n = p.out_workers(n)
        return n

    @torch.no_grad()
    def aggregate(self, grads: Tensor, distances: Tensor | None = None) -> Aggregate:
        """Aggregate one round of ``[n, d]`` gradients through the pre-aggregators and the rule."""
        grads = check_grads(grads, "Pipeline")
        if self.n is not None and grads.shape[0] != self.n:
            raise ValueError(
                f"Pipeline {self.name} was built for n={self.n} workers but got {grads.shape[0]} rows; "
                f"build it with n={grads.shape[0]}"
            )
        if self.uses_distances:
            distances = check_distances(grads, distances, "Pipeline")
        x, total = grads, None
        for p in self.pre:
            p.check_feasible(x.shape[0])
            matrix = p.mixing(x, distances if p.uses_distances else None)
            if distances is not None:
                distances = mixed_sq_distances(distances, matrix, ~finite_rows(x))
            x = apply_mixing(matrix, x)
            total = matrix if total is None else matrix @ total
        result = self.rule.aggregate(x, distances=distances if self.rule.uses_distances else None)
        if result.credit is None or total is None:
            return result
        credit = (result.credit.to(torch.float64) @ total).clamp_min_(0.0)
        credit = (credit / credit.sum()).to(grads.dtype)
        return Aggregate(update=weighted_sum(credit, grads), credit=credit, exact=result.exact)

    __call__ = aggregate

    def reset(self, seed: int | None = None) -> None:
        for p in self.pre:
            p.reset(seed)
        self.rule.reset(seed)

    def __repr__(self) -> str:
        pre: list[Any] = self.pre
        return f"Pipeline(pre={pre!r}, rule={self.rule!r})"
