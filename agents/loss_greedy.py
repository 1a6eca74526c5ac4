"""``loss_greedy``: credit from each worker's one-step QV loss drop (Zeno-like; Xie et al., 2019).

The strongest simple comparator for learned agents: it reads only the observation (the
``qv_loss_change`` feature, f_B(θ_t − λVᵢ) relative to f_B(θ_t)), so whatever a learned agent adds
beyond it is what learning buys. Xie, Koyejo and Gupta, "Zeno: Distributed Stochastic Gradient
Descent with Suspicion-based Fault-tolerance", ICML 2019, https://arxiv.org/abs/1805.10032
"""

from __future__ import annotations

from typing import Any

import numpy as np

from byz_gym.policy import Decision, Policy, RoundInput, register_policy
from byz_gym.sim import GLOBAL_FEATURES, resolve_worker_features

__all__ = ["LossGreedy", "relative_loss_changes"]


def _observing_loss_change(worker_features: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """The resolved per-worker feature names, or ``ValueError`` if ``qv_loss_change`` is not among them."""
    names = resolve_worker_features(worker_features)
    if "qv_loss_change" not in names:
        raise ValueError(
            f"loss_greedy reads the qv_loss_change feature, which this env does not observe (its features: "
            f"{list(names)}); make the env with features='full'"
        )
    return names


def relative_loss_changes(
    observation: np.ndarray, n_workers: int, worker_features: str | list[str] | tuple[str, ...] | None = None
) -> np.ndarray:
    """``[n]`` (f_B(θ_t − λVᵢ) − f_B(θ_t)) / f_B(θ_t), read back from an env observation whose
    per-worker columns are ``worker_features`` (the env's ``worker_features``; default: all)."""
    names = _observing_loss_change(worker_features)
    expected = n_workers * len(names) + len(GLOBAL_FEATURES)
    observation = np.asarray(observation, dtype=np.float64)
    if observation.shape != (expected,):
        raise ValueError(f"observation of {n_workers} workers must have shape ({expected},), got {observation.shape}")
    y = observation[: n_workers * len(names)].reshape(n_workers, -1)[:, names.index("qv_loss_change")]
    return np.sign(y) * np.expm1(np.abs(y))  # inverse of symlog


@register_policy("loss_greedy")
class LossGreedy(Policy):
    """Credit to the workers whose own step would lower the QV loss most.

    ``mode="top"`` (default): uniform credit over the ``n − f`` workers with the smallest loss
    change (ties to the lower index); ``f`` defaults to the scenario's Byzantine count.
    ``mode="softmax"``: credit ∝ exp(−change / temperature) over all workers.
    """

    name = "loss_greedy"

    def __init__(self, *, mode: str = "top", f: int | None = None, temperature: float = 0.01) -> None:
        if mode not in ("top", "softmax"):
            raise ValueError(f"mode must be 'top' or 'softmax', got {mode!r}")
        if f is not None and (isinstance(f, bool) or not isinstance(f, int) or f < 0):
            raise ValueError(f"f must be a non-negative integer, got {f!r}")
        if not (np.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature must be a finite positive number, got {temperature!r}")
        self.mode, self.f, self.temperature = mode, f, float(temperature)
        self._n, self._keep = 0, 0
        self._observed: tuple[str, ...] = ()

    def reset(self, env: Any, seed: int) -> None:
        self._n = int(env.n_workers)
        f = int(env.scenario.n_byzantine) if self.f is None else self.f
        if f >= self._n:
            raise ValueError(f"loss_greedy keeps n - f workers; needs f < n, got n={self._n}, f={f}")
        self._keep = self._n - f
        self._observed = _observing_loss_change(getattr(env, "worker_features", None))

    def act(self, round_input: RoundInput) -> Decision:
        if not self._n:
            raise RuntimeError("call reset(env, seed) before act()")
        change = relative_loss_changes(round_input.observation, self._n, self._observed)
        if self.mode == "top":
            chosen = np.argsort(change, kind="stable")[: self._keep]
            credit = np.zeros(self._n)
            credit[chosen] = 1.0 / self._keep
            return Decision(credit=credit)
        z = -change / self.temperature
        e = np.exp(z - z.max())
        return Decision(credit=e / e.sum())
