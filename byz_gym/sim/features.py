"""Observation features of one round: per-worker statistics of the submissions, never raw gradients.

Shared by the Gymnasium env and by learned agents so that both see the same numbers. Every feature
is finite and bounded even when attackers send NaN, Inf or enormous gradients.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from byz_gym.sim.geometry import finite_rows, pairwise_sq_distances, symlog
from byz_gym.sim.simulator import SimState, Simulator

__all__ = ["GLOBAL_FEATURES", "WORKER_FEATURES", "Feature", "round_features"]

SYMLOG_BOUND = 100.0  # symlog of any float32 is within ±88.8


@dataclass(frozen=True)
class Feature:
    name: str
    low: float
    high: float
    description: str


WORKER_FEATURES: tuple[Feature, ...] = (
    Feature("log_norm", -SYMLOG_BOUND, SYMLOG_BOUND, "symlog ‖Vᵢ‖"),
    Feature("cos_mean", -1.0, 1.0, "cosine of Vᵢ with the mean submission"),
    Feature("cos_median", -1.0, 1.0, "cosine of Vᵢ with the coordinate-wise median submission"),
    Feature("cos_qv", -1.0, 1.0, "cosine of Vᵢ with the QV-batch gradient ∇f_B(θ_t)"),
    Feature("qv_loss_change", -SYMLOG_BOUND, SYMLOG_BOUND, "symlog of (f_B(θ_t − λVᵢ) − f_B(θ_t)) / f_B(θ_t)"),
    Feature("distance_score", -SYMLOG_BOUND, SYMLOG_BOUND, "symlog of median_j ‖Vᵢ − Vⱼ‖ / median over all pairs"),
    Feature("previous_credit", 0.0, None, "n·α_{t−1,i}, the credit applied last round times n (1 = uniform)"),  # type: ignore[arg-type]
)

GLOBAL_FEATURES: tuple[Feature, ...] = (
    Feature("log_qv_loss", -SYMLOG_BOUND, SYMLOG_BOUND, "symlog f_B(θ_t)"),
    Feature("log_mean_norm", -SYMLOG_BOUND, SYMLOG_BOUND, "symlog ‖mean of Vᵢ‖"),
    Feature("log_qv_grad_norm", -SYMLOG_BOUND, SYMLOG_BOUND, "symlog ‖∇f_B(θ_t)‖"),
)


def _cosine(rows: Tensor, reference: Tensor) -> Tensor:
    """Cosine of each finite row with a finite reference; 0 where either is zero or non-finite."""
    rows64, ref64 = rows.to(torch.float64), reference.to(torch.float64)
    ok = finite_rows(rows) & bool(torch.isfinite(reference).all())
    rows64 = torch.where(ok[:, None], rows64, torch.zeros_like(rows64))
    ref64 = torch.nan_to_num(ref64, nan=0.0, posinf=0.0, neginf=0.0)
    denom = rows64.norm(dim=1) * ref64.norm()
    cos = torch.where(denom > 0, (rows64 @ ref64) / denom.clamp_min(1e-300), torch.zeros_like(denom))
    return cos.clamp(-1.0, 1.0).to(torch.float32)


@torch.no_grad()
def round_features(sim: Simulator, state: SimState, previous_credit: Tensor) -> tuple[Tensor, Tensor]:
    """``([n, len(WORKER_FEATURES)], [len(GLOBAL_FEATURES)])`` float32 features of round t."""
    grads = state.submissions.detach()
    n = grads.shape[0]
    finite = finite_rows(grads)
    clean = torch.where(finite[:, None], grads, torch.full_like(grads, float("nan")))

    mean = grads.mean(dim=0)
    median = clean.nanmedian(dim=0).values
    qv_grad = sim.qv_gradient(state)
    qv_loss = sim.qv_loss(state).detach()

    norms = grads.to(torch.float64).norm(dim=1)
    loss_change = (sim.qv_losses_after(state, grads) - qv_loss) / qv_loss.clamp_min(1e-12)
    distances = pairwise_sq_distances(grads).sqrt()
    if n > 1:
        off_diagonal = distances[~torch.eye(n, dtype=torch.bool)].view(n, n - 1)
        typical = off_diagonal[torch.isfinite(off_diagonal)]
        scale = typical.median() if typical.numel() else torch.tensor(1.0, dtype=torch.float64)
        score = off_diagonal.median(dim=1).values / scale.clamp_min(1e-300)
    else:
        score = torch.ones(1, dtype=torch.float64)

    per_worker = torch.stack(
        [
            symlog(norms),
            _cosine(grads, mean),
            _cosine(grads, median),
            _cosine(grads, qv_grad),
            symlog(loss_change),
            symlog(score),
            n * previous_credit.detach().to(torch.float32),
        ],
        dim=1,
    )
    global_ = torch.stack(
        [symlog(qv_loss), symlog(mean.to(torch.float64).norm()), symlog(qv_grad.to(torch.float64).norm())]
    )
    return per_worker, global_
