"""Algorithm 1 of the GAA paper: training ψ by backpropagation through differentiable rollouts.

For each of N episodes θ is re-initialised (``sim.reset(seed_e)``) and the recurrent credit starts
at ``α_{−1} = 1/n``. The episode is cut into K segments of T rounds. At each segment start
``α₀ ← α_old`` (detached) and θ is detached (only ψ is trained); the segment runs T rounds

    α_t = h_ψ(s_t, α_{t−1}),  θ_{t+1} = θ_t − λ Σᵢ α_{t,i} V_{t,i}   (``sim.apply``, graph kept)
    ℓ += γ^t (1/S) Σ_{z∈B_t} [f(θ_{t+1}, z) − f(θ_t, z)] = γ^t [f_B(θ_{t+1}) − f_B(θ_t)]

with B_t round t's QV batch (``sim.qv_loss(state_t, ·)``, a mean over the batch), then takes one
optimiser step on ψ with ∇_ψ ℓ (BPTT through the T rounds) and sets ``α_old ← α_T`` (the credit
of the segment's last round). ψ therefore takes exactly N·K steps.

Indexing: the credit of round t is computed from that round's state s_t (its submissions), as a
server would; ``α₀`` of a segment is the recurrent input of its first round. Worker gradients are
detached inputs unless the simulator was built with ``second_order=True``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from agents.gaa import GAA, check_training_options, make_optimizer, optimizer_step, round_term
from byz_gym.sim.scenario import Scenario
from byz_gym.sim.simulator import SimState, Simulator

__all__ = ["GAATrainer", "SegmentRecord", "SegmentRollout", "rollout_segment", "segment_loss", "train_gaa"]


@dataclass
class SegmentRollout:
    """One segment's differentiable rollout."""

    loss: Tensor  # ℓ_GAA of the segment (differentiable w.r.t. ψ)
    final_state: SimState  # state at round T of the segment (θ still carries the graph)
    alphas: list[Tensor]  # [α₀ (input), α₁ … α_T (applied credits)]


@dataclass
class SegmentRecord:
    """What one segment of Algorithm 1 did (for logs and tests)."""

    episode: int
    segment: int
    loss: float
    alpha_start: Tensor  # α₀, the recurrent input of the segment's first round
    alpha_end: Tensor  # α_T, the credit of its last round (α_old for the next segment)
    stepped: bool  # False when the loss was not finite and ψ was left unchanged
    applied_credits: Tensor  # [T, n] credits applied in the segment


def detach_state(state: SimState) -> SimState:
    """``state`` with θ and the submissions cut from any autograd graph (a segment boundary)."""
    return dataclasses.replace(state, theta=state.theta.detach(), submissions=state.submissions.detach())


def rollout_segment(
    agent: GAA,
    sim: Simulator,
    state: SimState,
    alpha0: Tensor,
    *,
    rounds: int,
    gamma: float,
    entropy_bonus: float = 0.0,
) -> SegmentRollout:
    """Run ``rounds`` differentiable rounds from ``state`` with recurrent input ``alpha0``.

    ``entropy_bonus`` η > 0 subtracts η·H(α_t)/log n from each round's term (not in the paper): a
    regulariser against all credit collapsing onto one worker."""
    alpha = alpha0.detach()
    alphas = [alpha]
    loss: Tensor | None = None
    for t in range(rounds):
        per_worker, global_ = agent.inputs(sim, state, alpha)
        alpha = agent(per_worker, global_, alpha)
        next_state = sim.apply(state, alpha)
        term = round_term(sim, state, state.theta, next_state.theta, alpha, entropy_bonus)
        loss = gamma**t * term if loss is None else loss + gamma**t * term
        alphas.append(alpha)
        state = next_state
    assert loss is not None
    return SegmentRollout(loss, state, alphas)


def segment_loss(
    agent: GAA,
    sim: Simulator,
    state: SimState,
    alpha0: Tensor,
    *,
    rounds: int,
    gamma: float,
    entropy_bonus: float = 0.0,
) -> Tensor:
    """ℓ_GAA of one segment (differentiable w.r.t. ψ); see :func:`rollout_segment`."""
    rollout = rollout_segment(
        agent, sim, detach_state(state), alpha0, rounds=rounds, gamma=gamma, entropy_bonus=entropy_bonus
    )
    return rollout.loss


class GAATrainer:
    """Algorithm 1. Every constant is a parameter.

    Parameters
    ----------
    scenario: a ``Scenario`` or an existing ``Simulator``.
    agent: the ``GAA`` to train (default: a fresh equivariant unit).
    episodes: N. segment_length: T. segments: K (default ``horizon // T``). gamma: γ.
    server_learning_rate: λ (default: the scenario's, 0.05 in the presets).
    agent_learning_rate: step size of the optimiser on ψ (Adam by default). The paper does not state
        it; 0.05 is our choice: on digits at β = 0.7, 1e-2 learned too slowly to matter within 300
        rounds, 0.3 diverged (docs/gaa.md).
    optimizer: a factory ``params -> torch.optim.Optimizer`` replacing AdamW.
    weight_decay: AdamW's decoupled weight decay on ψ (0: plain Adam).
    seeds: the N episode seeds (default ``0 … N−1``).
    second_order: keep worker-gradient graphs (only when building the simulator here).
    max_grad_norm: clip ∇_ψ ℓ to this norm before each step (None: no clipping, as in the paper).
    entropy_bonus: η of the entropy regulariser of :func:`rollout_segment` (0 is the paper's loss; our
        default 0.01 stops the credit collapsing onto one honest worker, see docs/gaa.md).
    """

    def __init__(
        self,
        scenario: Scenario | Simulator,
        agent: GAA | None = None,
        *,
        episodes: int = 5,
        segment_length: int = 5,
        segments: int | None = None,
        gamma: float = 0.9,
        server_learning_rate: float | None = None,
        agent_learning_rate: float = 0.05,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        seeds: Sequence[int] | None = None,
        second_order: bool = False,
        max_grad_norm: float | None = None,
        entropy_bonus: float = 0.01,
        weight_decay: float = 0.0,
    ) -> None:
        if isinstance(scenario, Simulator):
            sim = scenario
            if server_learning_rate is not None and server_learning_rate != sim.scenario.learning_rate:
                sim = Simulator(sim.scenario.replace(learning_rate=server_learning_rate), second_order=sim.second_order)
        else:
            if server_learning_rate is not None:
                scenario = scenario.replace(learning_rate=server_learning_rate)
            sim = Simulator(scenario, second_order=second_order)
        self.sim = sim
        if int(episodes) < 1:
            raise ValueError(f"episodes must be a positive integer, got {episodes!r}")
        check_training_options(
            segment_length=segment_length,
            gamma=gamma,
            entropy_bonus=entropy_bonus,
            max_grad_norm=max_grad_norm,
            weight_decay=weight_decay,
        )
        self.episodes, self.segment_length = int(episodes), int(segment_length)
        self.segments = sim.scenario.horizon // self.segment_length if segments is None else int(segments)
        if self.segments < 1:
            raise ValueError(
                f"segments must be positive; horizon {sim.scenario.horizon} // T={self.segment_length} "
                f"gives {self.segments}: pass segments= or a smaller segment_length"
            )
        self.gamma = float(gamma)
        self.max_grad_norm = None if max_grad_norm is None else float(max_grad_norm)
        self.entropy_bonus = float(entropy_bonus)
        self.seeds = list(range(self.episodes)) if seeds is None else [int(s) for s in seeds]
        if len(self.seeds) != self.episodes:
            raise ValueError(f"need one seed per episode: {self.episodes} episodes, {len(self.seeds)} seeds")
        self.agent = agent if agent is not None else GAA("equivariant", n_workers=sim.n_workers)
        self.optimizer = (
            optimizer(list(self.agent.parameters()))
            if optimizer is not None
            else make_optimizer(self.agent, agent_learning_rate, weight_decay)
        )
        self.optimizer_steps = 0
        self.history: list[SegmentRecord] = []

    def train(self, callback: Callable[[SegmentRecord], None] | None = None) -> GAA:
        """Run N episodes of K segments; returns the trained agent."""
        n = self.sim.n_workers
        for episode, seed in enumerate(self.seeds):
            state = self.sim.reset(seed)  # re-initialise θ
            alpha_old = torch.full((n,), 1.0 / n)
            for segment in range(self.segments):
                alpha0 = alpha_old.detach()  # α₀ ← α_old
                rollout = rollout_segment(
                    self.agent,
                    self.sim,
                    detach_state(state),
                    alpha0,
                    rounds=self.segment_length,
                    gamma=self.gamma,
                    entropy_bonus=self.entropy_bonus,
                )
                loss = rollout.loss
                stepped = optimizer_step(self.agent, self.optimizer, loss, self.max_grad_norm)
                if stepped:
                    self.optimizer_steps += 1
                alpha_old = rollout.alphas[-1].detach()  # α_old ← α_T
                state = detach_state(rollout.final_state)
                record = SegmentRecord(
                    episode=episode,
                    segment=segment,
                    loss=float(loss.detach()),
                    alpha_start=alpha0.clone(),
                    alpha_end=alpha_old.clone(),
                    stepped=stepped,
                    applied_credits=torch.stack([a.detach() for a in rollout.alphas[1:]]),
                )
                self.history.append(record)
                if callback is not None:
                    callback(record)
                if not bool(torch.isfinite(state.theta).all()):
                    break  # diverged: start the next episode
        return self.agent


def train_gaa(scenario: Scenario | Simulator, agent: GAA | None = None, **kwargs) -> tuple[GAA, GAATrainer]:
    """Build a :class:`GAATrainer` with ``kwargs``, train, and return ``(agent, trainer)``."""
    trainer = GAATrainer(scenario, agent, **kwargs)
    return trainer.train(), trainer
