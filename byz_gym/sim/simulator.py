"""The parameter server and its workers as a functional torch core.

``Simulator`` holds what does not change during an episode (data, model, attack); ``SimState`` is
an immutable snapshot of one round. Every random draw of round t comes from a generator seeded by
``(episode seed, t, stream)``, so the data batches, QV batches, Byzantine identities and Byzantine
noise of a round depend only on the seed and the round, never on which policy chose the credits:
two policies evaluated on one seed see the same randomness (common random numbers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import grad, vmap

from byz_gym.sim.attacks import SCHEDULES, TAMPERINGS, TamperContext
from byz_gym.sim.model import FlatModel
from byz_gym.sim.scenario import Scenario
from byz_gym.sim.tasks import make_task

__all__ = ["SimState", "Simulator", "round_generator"]

# Independent random streams within a round.
_STREAM_INIT, _STREAM_SCHEDULE, _STREAM_BATCH, _STREAM_QV, _STREAM_TAMPER = range(5)


def round_generator(seed: int, round_index: int, stream: int) -> torch.Generator:
    """A CPU generator for one (episode seed, round, stream) triple, independent of all others."""
    state = np.random.SeedSequence([seed, round_index, stream]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 31 ^ int(state[1]))


@dataclass(frozen=True)
class SimState:
    """One round of training: θ_t and what the workers submit at θ_t."""

    theta: Tensor  # [d] flat model parameters θ_t (carries the autograd graph on the GAA path)
    round_index: int  # t, number of server steps taken so far
    seed: int  # episode seed; all randomness of round t derives from (seed, t)
    schedule_state: Any  # the attack schedule's own state at round t
    byzantine_mask: Tensor  # bool[n], workers that are Byzantine at round t
    submissions: Tensor  # [n, d] V_t: honest gradients with the Byzantine rows tampered


class Simulator:
    """Trains ``scenario.task`` with ``n`` workers of which ``round(β n)`` are Byzantine.

    Parameters
    ----------
    scenario: the run to simulate.
    second_order: keep the graph of worker gradients w.r.t. θ (for second-order BPTT through
        the rollout); by default worker gradients are inputs, detached from θ (first order).
    """

    def __init__(self, scenario: Scenario, *, second_order: bool = False) -> None:
        self.scenario = scenario
        self.second_order = second_order
        self.task = make_task(scenario.task.name, n_workers=scenario.n_workers, **scenario.task.params)
        self.model = FlatModel(self.task.model_factory)
        self.schedule = SCHEDULES.make(scenario.attack.schedule.name, **scenario.attack.schedule.params)
        self.tampering = TAMPERINGS.make(scenario.attack.tampering.name, **scenario.attack.tampering.params)
        self.n_workers = scenario.n_workers
        self.n_byzantine = scenario.n_byzantine
        self.dim = self.model.dim
        self._build_transforms()

    def _build_transforms(self) -> None:
        self._per_worker_grad = vmap(grad(self._loss), in_dims=(None, 0, 0))
        self._losses_at = vmap(self._loss, in_dims=(0, None, None))

    def __getstate__(self) -> dict[str, Any]:  # torch.func transforms do not pickle; rebuild them
        state = self.__dict__.copy()
        del state["_per_worker_grad"], state["_losses_at"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._build_transforms()

    # -- model ---------------------------------------------------------------------------------
    def _loss(self, theta: Tensor, x: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(self.model(theta, x), y)

    def loss(self, theta: Tensor, x: Tensor, y: Tensor, weight: Tensor | None = None) -> Tensor:
        """Loss of θ on ``(x, y)``: the mean over samples, or ``Σⱼ weightⱼ ℓⱼ`` when ``weight`` is given."""
        if weight is None:
            return self._loss(theta, x, y)
        return (F.cross_entropy(self.model(theta, x), y, reduction="none") * weight).sum()

    def gradient(self, theta: Tensor, x: Tensor, y: Tensor, weight: Tensor | None = None) -> Tensor:
        """``[d]`` gradient of ``loss`` w.r.t. θ; composes with ``vmap``. Attacks that compute
        gradients on data of their own call it through ``TamperContext.gradient_fn``."""
        return grad(self.loss)(theta, x, y, weight)

    # -- episode ---------------------------------------------------------------------------------
    def reset(self, seed: int) -> SimState:
        """State at round 0: fresh θ₀, Byzantine set and submissions for episode ``seed``."""
        seed = int(seed)
        if seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed}")
        theta = self.model.init(int(round_generator(seed, 0, _STREAM_INIT).initial_seed()))
        schedule_state = self.schedule.reset(
            self.n_workers, self.n_byzantine, round_generator(seed, 0, _STREAM_SCHEDULE)
        )
        return self._state(theta, 0, seed, schedule_state)

    def _state(self, theta: Tensor, round_index: int, seed: int, schedule_state: Any) -> SimState:
        mask = self.schedule.mask(schedule_state)
        x, y = self.worker_batches(seed, round_index)
        honest = self._per_worker_grad(theta if self.second_order else theta.detach(), x, y)
        submissions = honest
        if bool(mask.any()):
            context = TamperContext(
                honest=honest,
                mask=mask,
                theta=theta.detach(),
                generator=round_generator(seed, round_index, _STREAM_TAMPER),
                batch_x=x,
                batch_y=y,
                task=self.task,
                gradient_fn=self.gradient,
                loss_fn=self.loss,
                round_index=round_index,
            )
            submissions = honest.clone()
            submissions[mask] = self.tampering(context).to(honest.dtype)
        return SimState(theta, round_index, seed, schedule_state, mask, submissions)

    def apply(self, state: SimState, credit: Tensor) -> SimState:
        """Server step with credit α: θ ← θ − λ Σᵢ αᵢ Vᵢ (graph kept when ``credit`` requires grad)."""
        return self.apply_update(state, self.credited_update(state.submissions, credit))

    @staticmethod
    def credited_update(submissions: Tensor, credit: Tensor) -> Tensor:
        """Σᵢ αᵢ Vᵢ. Rows with zero credit contribute nothing, even when they hold NaN or Inf."""
        credit = credit.to(submissions.dtype)
        rows = torch.where((credit != 0)[:, None], submissions, torch.zeros_like(submissions))
        return credit @ rows

    def apply_update(self, state: SimState, update: Tensor) -> SimState:
        """Server step with an aggregated update u (non-linear rules): θ ← θ − λ u."""
        if update.shape != (self.dim,):
            raise ValueError(f"update must have shape ({self.dim},), got {tuple(update.shape)}")
        theta = state.theta - self.scenario.learning_rate * update.to(state.theta.dtype)
        round_index = state.round_index + 1
        schedule_state = self.schedule.advance(
            state.schedule_state, round_index, round_generator(state.seed, round_index, _STREAM_SCHEDULE)
        )
        return self._state(theta, round_index, state.seed, schedule_state)

    # -- worker gradients ------------------------------------------------------------------------
    def worker_batches(self, seed: int, round_index: int) -> tuple[Tensor, Tensor]:
        """``([n, b, ...], [n, b])``: every worker's minibatch of round t (without replacement
        when the shard is large enough, otherwise with replacement)."""
        task, b = self.task, self.scenario.worker_batch_size
        generator = round_generator(seed, round_index, _STREAM_BATCH)
        n, m = task.n_workers, task.shard_size
        if b <= m:
            index = torch.rand(n, m, generator=generator).argsort(dim=1)[:, :b]
        else:
            index = torch.randint(0, m, (n, b), generator=generator)
        rows = torch.arange(n)[:, None]
        return task.shard_x[rows, index], task.shard_y[rows, index]

    def honest_gradients(self, theta: Tensor, seed: int, round_index: int) -> Tensor:
        """``[n, d]`` gradient of every worker's minibatch loss at θ, in one vmapped call."""
        x, y = self.worker_batches(seed, round_index)
        point = theta if self.second_order else theta.detach()
        return self._per_worker_grad(point, x, y)

    def honest_gradients_reference(self, theta: Tensor, seed: int, round_index: int) -> Tensor:
        """The same as ``honest_gradients`` with a plain per-worker loop (for tests)."""
        x, y = self.worker_batches(seed, round_index)
        rows = []
        for i in range(self.n_workers):
            point = theta.detach().clone().requires_grad_(True)
            (row,) = torch.autograd.grad(self._loss(point, x[i], y[i]), point)
            rows.append(row)
        return torch.stack(rows)

    # -- quasi-validation ------------------------------------------------------------------------
    def qv_batch(self, state: SimState) -> tuple[Tensor, Tensor]:
        """The server's QV batch B of round t, drawn from the QV pool."""
        pool = self.task.qv_y.shape[0]
        size = min(self.scenario.qv_batch_size, pool)
        index = torch.randperm(pool, generator=round_generator(state.seed, state.round_index, _STREAM_QV))[:size]
        return self.task.qv_x[index], self.task.qv_y[index]

    def qv_loss(self, state: SimState, theta: Tensor | None = None) -> Tensor:
        """f_B(θ): mean loss on round t's QV batch at ``theta`` (default θ_t)."""
        x, y = self.qv_batch(state)
        return self._loss(state.theta if theta is None else theta, x, y)

    def qv_gradient(self, state: SimState) -> Tensor:
        """∇f_B(θ_t) on round t's QV batch (detached)."""
        x, y = self.qv_batch(state)
        return grad(self._loss)(state.theta.detach(), x, y)

    def qv_losses_after(self, state: SimState, updates: Tensor) -> Tensor:
        """``[k]``: f_B(θ_t − λ u_k) for each row u_k of ``updates`` (one vmapped call)."""
        x, y = self.qv_batch(state)
        thetas = state.theta.detach() - self.scenario.learning_rate * updates
        return self._losses_at(thetas, x, y)

    # -- reporting -------------------------------------------------------------------------------
    @torch.no_grad()
    def test_accuracy(self, state: SimState) -> float:
        """Accuracy of θ_t on the held-out test set (reporting only)."""
        logits = self.model(state.theta.detach(), self.task.test_x)
        return float((logits.argmax(dim=1) == self.task.test_y).float().mean())
