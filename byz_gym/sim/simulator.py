"""The parameter server and its workers as a functional torch core.

``Simulator`` holds what does not change during an episode (data, model, attack); ``SimState`` is
an immutable snapshot of one round. Every random draw of round t comes from a generator seeded by
``(episode seed, t, stream)``, so the data batches, QV batches, Byzantine identities and Byzantine
noise of a round depend only on the seed and the round, never on which policy chose the credits:
two policies evaluated on one seed see the same randomness (common random numbers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import grad, vmap

from byz_gym.sim.attacks import SCHEDULES, TAMPERINGS, TamperContext
from byz_gym.sim.geometry import one_blas_thread
from byz_gym.sim.model import FlatModel
from byz_gym.sim.scenario import Scenario
from byz_gym.sim.tasks import make_task

__all__ = ["QVProbe", "SimState", "Simulator", "round_generator"]

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


class QVProbe(NamedTuple):
    """What the server learns from round t's QV batch B in one pass (``Simulator.qv_probe``)."""

    loss: Tensor  # f_B(θ_t), a float32 scalar
    gradient: Tensor  # [d] ∇f_B(θ_t)
    losses_after: Tensor  # [k] f_B(θ_t − λ u_k) for each candidate update u_k


# Elementwise activations the stacked-MLP fast path knows: in place on NumPy arrays, and the
# derivative from the activation's output.
_ACTIVATIONS: dict[type[nn.Module], tuple[Any, Any]] = {
    nn.ReLU: (lambda h: np.maximum(h, 0, out=h), lambda out: out > 0),
    nn.Tanh: (lambda h: np.tanh(h, out=h), lambda out: 1 - out * out),
    nn.Sigmoid: (lambda h: np.reciprocal(np.exp(np.negative(h, out=h), out=h) + 1, out=h), lambda out: out * (1 - out)),
    nn.Identity: (lambda h: h, None),
}


def _cross_entropy(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-sample cross-entropy log Σ exp(z) − z_y of ``logits`` ``[m, classes]`` or
    ``[k, classes, m]`` (classes along axis 1) with labels ``y`` ``[m]``: ``[m]`` or ``[k, m]``."""
    top = logits.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(logits - top).sum(axis=1)) + top.squeeze(1)
    m = y.shape[0]
    if logits.ndim == 2:
        return log_norm - logits[np.arange(m), y]
    return log_norm - logits[:, y, np.arange(m)]


class _StackedMLP:
    """A plain MLP (``nn.Linear`` layers and elementwise activations run in registration order, no
    buffers) evaluated straight from flat θ in NumPy, without autograd: many θ at once with one
    matrix product per layer, and the loss gradient at one θ by hand-written backpropagation. For
    these small networks this is several times faster than ``vmap`` / ``torch.func.grad`` over
    ``functional_call``, and than torch's batched products and 10-class log-softmax, whose per-call
    cost dominates on CPU; the QV statistics of every observation and the env's reward use it.
    ``build`` returns ``None`` (callers fall back to ``vmap``) unless the module is such a chain and
    the fast path reproduces the module's logits and ``torch.func.grad``'s gradient on a probe batch.
    Non-finite parameters give NaN or ±Inf losses, never an exception.
    """

    def __init__(self, layers: list[tuple[slice, tuple[int, int], slice | None] | type[nn.Module]]) -> None:
        self.layers = layers  # Linear: (weight slice of θ, (out, in), bias slice or None); else activation type

    @classmethod
    def build(cls, model: FlatModel, loss: Any, x: Tensor, y: Tensor) -> _StackedMLP | None:
        if model.buffers or x.dim() != 2:
            return None
        start = dict(zip(model.names, np.cumsum([0, *model.numels]).tolist(), strict=False))
        layers: list[Any] = []
        for name, module in model.module.named_modules():
            if next(module.children(), None) is not None:
                continue  # a container; its leaves follow
            prefix = f"{name}." if name else ""
            if type(module) is nn.Linear:
                w = start[prefix + "weight"]
                bias = None if module.bias is None else start[prefix + "bias"]
                out, inp = module.weight.shape
                layers.append((slice(w, w + out * inp), (out, inp), None if bias is None else slice(bias, bias + out)))
            elif type(module) in _ACTIVATIONS:
                layers.append(type(module))
            else:
                return None
        mlp = cls(layers)
        with torch.no_grad():  # the probe: the module's own logits, losses and gradient at two points
            thetas = torch.stack([model.init(0), model.init(1)])
            expected = torch.stack([model(theta, x) for theta in thetas])
            if expected.shape != (2, x.shape[0], expected.shape[-1]):
                return None
            same = torch.allclose(mlp.logits(thetas, x), expected, rtol=1e-4, atol=1e-5)
            losses = torch.stack([loss(theta, x, y) for theta in thetas])
            same = same and torch.allclose(mlp.losses(thetas, x, y), losses, rtol=1e-5)
            for theta, value in zip(thetas, losses, strict=True):
                loss_value, gradient = mlp.loss_and_gradient(theta, x, y)
                same = same and torch.allclose(gradient, grad(loss)(theta, x, y), rtol=1e-3, atol=1e-6)
                same = same and torch.allclose(loss_value, value, rtol=1e-5)
        return mlp if same else None

    def logits(self, thetas: Tensor, x: Tensor) -> Tensor:
        """``[k, m, classes]``: the network at each row of ``thetas`` ``[k, d]`` on ``x`` ``[m, in]``."""
        thetas_np = _numpy(thetas)
        with one_blas_thread(), np.errstate(all="ignore"):
            logits = self._logits(lambda part: thetas_np[:, part], thetas_np.shape[0], _numpy(x))
        return torch.from_numpy(np.ascontiguousarray(logits.transpose(0, 2, 1)))

    def losses(self, thetas: Tensor, x: Tensor, y: Tensor) -> Tensor:
        """``[k]`` mean cross-entropy on ``(x, y)`` at each row of ``thetas``."""
        thetas_np = _numpy(thetas)
        return self._mean_losses(lambda part: thetas_np[:, part], thetas_np.shape[0], x, y)

    def stepped_losses(self, theta: Tensor, updates: Tensor, step: float, x: Tensor, y: Tensor) -> Tensor:
        """``losses`` at θ − step·u_k for each row of ``updates``, built layer by layer (the same
        numbers, without materialising the ``[k, d]`` stack)."""
        theta_np, updates_np = _numpy(theta), _numpy(updates)
        return self._mean_losses(lambda part: theta_np[part] - step * updates_np[:, part], updates_np.shape[0], x, y)

    def _mean_losses(self, parameters: Any, k: int, x: Tensor, y: Tensor) -> Tensor:
        if k == 0:
            return torch.zeros(0)
        # attackers' Inf and enormous rows overflow: the loss says so (NaN or Inf), no warning
        with one_blas_thread(), np.errstate(all="ignore"):
            losses = _cross_entropy(self._logits(parameters, k, _numpy(x)), _numpy(y)).mean(axis=1)
        return torch.from_numpy(losses.astype(np.float32, copy=False))

    def _logits(self, parameters: Any, k: int, x: np.ndarray) -> np.ndarray:
        """``[k, classes, m]`` logits (one column per sample, so each layer is one stacked product);
        ``parameters(part)`` gives the ``[k, size]`` values of a slice of θ."""
        m, h = x.shape[0], None
        for layer in self.layers:
            if not isinstance(layer, tuple):
                h = _ACTIVATIONS[layer][0](np.repeat(x.T[None], k, axis=0) if h is None else h)
                continue
            w, (out, inp), b = layer
            weights = parameters(w)
            if h is None:  # the shared input: one product against all k weight matrices
                h = (weights.reshape(k * out, inp) @ x.T).reshape(k, out, m)
            else:
                h = weights.reshape(k, out, inp) @ h
            if b is not None:
                h += parameters(b)[:, :, None]
        return np.repeat(x.T[None], k, axis=0) if h is None else h

    def loss(self, theta: Tensor, x: Tensor, y: Tensor) -> Tensor:
        """Mean cross-entropy at one θ (plain matrix products, no batching)."""
        with one_blas_thread(), np.errstate(all="ignore"):
            logits, _ = self._forward(_numpy(theta), _numpy(x))
            return torch.tensor(_cross_entropy(logits, _numpy(y)).mean())

    def _forward(self, theta: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Logits ``[m, classes]`` at one θ and each layer's output (for the backward pass)."""
        outputs, h = [], x
        for layer in self.layers:
            if isinstance(layer, tuple):
                w, shape, b = layer
                h = h @ theta[w].reshape(shape).T
                if b is not None:
                    h += theta[b]
            else:
                h = _ACTIVATIONS[layer][0](h.copy() if h is x else h)
            outputs.append(h)
        return h, outputs

    def loss_and_gradient(self, theta: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Mean cross-entropy at one θ and its gradient (backpropagation written out)."""
        theta_np, x_np, y_np = _numpy(theta), _numpy(x), _numpy(y)
        m = y_np.shape[0]
        with one_blas_thread(), np.errstate(all="ignore"):
            logits, outputs = self._forward(theta_np, x_np)
            loss = _cross_entropy(logits, y_np).mean()
            upstream = np.exp(logits - logits.max(axis=1, keepdims=True))
            upstream /= upstream.sum(axis=1, keepdims=True)
            upstream[np.arange(m), y_np] -= 1
            upstream /= m
            gradient = np.zeros_like(theta_np)
            inputs = [x_np, *outputs[:-1]]
            for index in range(len(self.layers) - 1, -1, -1):
                layer = self.layers[index]
                if isinstance(layer, tuple):
                    w, shape, b = layer
                    gradient[w] = (upstream.T @ inputs[index]).reshape(-1)
                    if b is not None:
                        gradient[b] = upstream.sum(axis=0)
                    if index:
                        upstream = upstream @ theta_np[w].reshape(shape)
                else:
                    derivative = _ACTIVATIONS[layer][1]
                    if derivative is not None:
                        upstream = upstream * derivative(outputs[index])
        return torch.tensor(loss), torch.from_numpy(gradient)


def _numpy(t: Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


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
        self._qv_batches: dict[tuple[int, int], tuple[Tensor, Tensor]] = {}  # the latest two, by (seed, t)
        self._build_transforms()

    def _build_transforms(self) -> None:
        self._per_worker_grad = vmap(grad(self._loss), in_dims=(None, 0, 0))
        self._losses_at = vmap(self._loss, in_dims=(0, None, None))
        probe = min(8, self.task.qv_y.shape[0])
        self._mlp = _StackedMLP.build(self.model, self._loss, self.task.qv_x[:probe], self.task.qv_y[:probe])

    def __getstate__(self) -> dict[str, Any]:  # torch.func transforms do not pickle; rebuild them
        state = self.__dict__.copy()
        del state["_per_worker_grad"], state["_losses_at"], state["_mlp"]
        state["_qv_batches"] = {}
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
        nonzero = credit != 0
        if bool(nonzero.all()):  # the common case: no [n, d] temporaries
            return credit @ submissions
        return credit[nonzero] @ submissions[nonzero]

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
            # the b smallest of m uniforms: a uniform b-subset (as argsort's first b, without the full sort)
            index = torch.rand(n, m, generator=generator).topk(b, dim=1, largest=False).indices
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
        """The server's QV batch B of round t, drawn from the QV pool.

        A function of ``(seed, t)`` only. The latest two batches are cached: an env step reads
        round t's (the reward) and round t + 1's (the observation), in turn. Treat the returned
        tensors as read-only."""
        key = (state.seed, state.round_index)
        cached = self._qv_batches.get(key)
        if cached is not None:
            return cached
        pool = self.task.qv_y.shape[0]
        size = min(self.scenario.qv_batch_size, pool)
        index = torch.randperm(pool, generator=round_generator(state.seed, state.round_index, _STREAM_QV))[:size]
        batch = (self.task.qv_x[index], self.task.qv_y[index])
        if len(self._qv_batches) >= 2:
            del self._qv_batches[next(iter(self._qv_batches))]  # the oldest
        self._qv_batches[key] = batch
        return batch

    def qv_loss(self, state: SimState, theta: Tensor | None = None) -> Tensor:
        """f_B(θ): mean loss on round t's QV batch at ``theta`` (default θ_t)."""
        x, y = self.qv_batch(state)
        return self._loss(state.theta if theta is None else theta, x, y)

    def qv_gradient(self, state: SimState) -> Tensor:
        """∇f_B(θ_t) on round t's QV batch (detached)."""
        x, y = self.qv_batch(state)
        return grad(self._loss)(state.theta.detach(), x, y)

    def qv_losses_after(self, state: SimState, updates: Tensor) -> Tensor:
        """``[k]``: f_B(θ_t − λ u_k) for each row u_k of ``updates`` (one batched call)."""
        if self._mlp is not None and not (updates.requires_grad and torch.is_grad_enabled()):
            x, y = self.qv_batch(state)
            return self._mlp.stepped_losses(state.theta.detach(), updates, self.scenario.learning_rate, x, y)
        return self.qv_losses_at(state, self._stepped(state.theta.detach(), updates))

    def qv_losses_at(self, state: SimState, thetas: Tensor) -> Tensor:
        """``[k]``: f_B(θ_k) on round t's QV batch for each row θ_k of ``thetas`` (one batched call;
        differentiable only through the ``vmap`` path, taken when ``thetas`` requires grad)."""
        x, y = self.qv_batch(state)
        if self._mlp is not None and not (thetas.requires_grad and torch.is_grad_enabled()):
            if thetas.shape[0] == 1:  # e.g. the env's reward: a plain forward is cheaper than a batched one
                return self._mlp.loss(thetas[0], x, y)[None]
            return self._mlp.losses(thetas, x, y)
        return self._losses_at(thetas, x, y)

    @torch.no_grad()
    def qv_probe(self, state: SimState, updates: Tensor) -> QVProbe:
        """f_B(θ_t), ∇f_B(θ_t) and f_B(θ_t − λ u_k) for each row of ``updates``, all detached: what
        ``qv_loss``, ``qv_gradient`` and ``qv_losses_after`` return (up to float rounding), in one
        backward pass at θ_t and one batched forward (the observation features' hot path)."""
        x, y = self.qv_batch(state)
        theta = state.theta.detach()
        if self._mlp is not None:
            loss, gradient = self._mlp.loss_and_gradient(theta, x, y)
        else:
            with torch.enable_grad():
                point = theta.clone().requires_grad_(True)
                loss = self._loss(point, x, y)
                (gradient,) = torch.autograd.grad(loss, point)
        return QVProbe(loss.detach(), gradient, self.qv_losses_after(state, updates.detach()))

    def _stepped(self, theta: Tensor, updates: Tensor) -> Tensor:
        """``[k, d]``: θ − λ u_k for each row of ``updates`` (one fused pass)."""
        return torch.add(theta, updates, alpha=-self.scenario.learning_rate)

    # -- reporting -------------------------------------------------------------------------------
    @torch.no_grad()
    def test_accuracy(self, state: SimState) -> float:
        """Accuracy of θ_t on the held-out test set (reporting only)."""
        logits = self.model(state.theta.detach(), self.task.test_x)
        return float((logits.argmax(dim=1) == self.task.test_y).float().mean())
