"""``ByzantineAggregationEnv``: the Gymnasium wrapper around ``byz_gym.sim``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from byz_gym.scenarios import get_scenario
from byz_gym.sim import GLOBAL_FEATURES, WORKER_FEATURES, Scenario, SimState, Simulator
from byz_gym.sim.features import compute_round_features, resolve_worker_features
from byz_gym.spaces import Simplex

__all__ = ["ByzantineAggregationEnv"]

ACTION_MODES = ("softmax", "simplex")


def resolve_scenario(scenario: str | Scenario | Mapping[str, Any], overrides: Mapping[str, Any]) -> Scenario:
    """A ``Scenario`` from a preset name, a ``Scenario`` or a dict, with field ``overrides`` applied."""
    if isinstance(scenario, str):
        base = get_scenario(scenario)
    elif isinstance(scenario, Scenario):
        base = scenario
    elif isinstance(scenario, Mapping):
        base = Scenario.from_dict(scenario)
    else:
        raise ValueError(f"scenario must be a preset name, a Scenario or a dict, got {type(scenario).__name__}")
    return base.replace(**overrides) if overrides else base


class ByzantineAggregationEnv(gym.Env):
    """
    ## Description

    A parameter server trains a model with ``n`` workers, ``round(β n)`` of which are Byzantine.
    Each round every worker submits a gradient Vᵢ; the agent gives each worker a credit αᵢ (a point
    on the simplex) and the server steps θ ← θ − λ Σᵢ αᵢ Vᵢ. This is the setting of Pan et al.,
    "Justinian's GAAvernor: Robust Distributed Learning with Gradient Aggregation Agent", USENIX
    Security 2020 (https://www.usenix.org/conference/usenixsecurity20/presentation/pan). The agent
    never sees raw gradients, only per-worker statistics, and is rewarded for lowering the loss on
    a small quasi-validation (QV) batch that the server holds.

    ## Action Space

    ``action_mode="softmax"`` (default): ``Box(-1, 1, (n,), float32)``, mapped to the credit
    ``α = softmax(temperature · a)``; the default temperature 5 lets the box span credit ratios up to
    e¹⁰ ≈ 22,000 between two workers, enough to silence any of them (at 1 the ratio is capped at
    e² ≈ 7.4, and Byzantine workers at β = 0.7 keep at least 24 % of the credit whatever the agent
    does). ``action_mode="simplex"``: ``Simplex(n)``, a ``Box(0, 1, (n,))``
    whose members sum to 1; the action is the credit itself. Actions of the wrong shape, with NaN,
    outside the box or (simplex) with a sum off 1 by more than 1e-4 raise ``ValueError``.

    ## Observation Space

    ``Box(low, high, (n·7 + 3,), float32)``: a per-worker block of 7 features, flattened row by row
    (worker i occupies entries ``7i … 7i+6``), then 3 global features. Every entry is finite, also
    when attackers send NaN or Inf. Raw gradients are never observed.

    | Num     | Feature            | Min    | Max   | Meaning                                                     |
    |---------|--------------------|--------|-------|-------------------------------------------------------------|
    | 7i+0    | log_norm           | -100   | 100   | symlog ‖Vᵢ‖                                                 |
    | 7i+1    | cos_mean           | -1     | 1     | cosine of Vᵢ with the mean submission                       |
    | 7i+2    | cos_median         | -1     | 1     | cosine of Vᵢ with the coordinate-wise median                |
    | 7i+3    | cos_qv             | -1     | 1     | cosine of Vᵢ with the QV-batch gradient ∇f_B(θ_t)           |
    | 7i+4    | qv_loss_change     | -100   | 100   | symlog (f_B(θ_t − λVᵢ) − f_B(θ_t)) / f_B(θ_t)               |
    | 7i+5    | distance_score     | -100   | 100   | symlog median_j ‖Vᵢ − Vⱼ‖ / median over all pairs           |
    | 7i+6    | previous_credit    | 0      | n     | n·α_{t−1,i} (1 = uniform; α₀ = 1/n at reset)                |
    | 7n+0    | log_qv_loss        | -100   | 100   | symlog f_B(θ_t)                                             |
    | 7n+1    | log_mean_norm      | -100   | 100   | symlog ‖mean Vᵢ‖                                            |
    | 7n+2    | log_qv_grad_norm   | -100   | 100   | symlog ‖∇f_B(θ_t)‖                                          |

    ``features="compact"`` observes only ``log_norm``, ``cos_mean``, ``cos_qv`` and
    ``previous_credit`` (``Box((4n + 3,))``, the same numbers as those columns of the full
    observation) and skips computing the median, the distances and the n one-step QV losses: a
    step then costs about 1.25-1.3x a simulator round instead of 1.5x (``benchmarks/bench_env.py``). A
    list of names picks any subset; columns keep the order of the table. ``env.unwrapped.worker_features``
    names the observed columns.

    ## Rewards

    ``r_t = f_B(θ_t) − f_B(θ_{t+1})``: the drop of the mean loss on round t's QV batch B (the same
    batch before and after the step). If the loss after the step is not finite the episode
    terminates with reward ``−divergence_penalty``.

    ## Starting State

    θ₀ from the model's default initialiser, a fresh Byzantine set drawn by the attack schedule,
    and α₀ = 1/n, all derived from the ``reset`` seed. The data split is fixed by the task.

    ## Episode End

    1. Termination: θ or the QV loss becomes non-finite (``info["termination_reason"]`` says which).
    2. Truncation: at the scenario's ``horizon`` (``gym.make(id, horizon=N)``; the registered
       ``max_episode_steps`` is the preset's horizon and truncates too, so pass both to run longer
       than the preset: ``gym.make(id, horizon=500, max_episode_steps=500)``).

    ## Information

    The same keys on ``reset`` and ``step``, with fixed types:

    | Key                    | Type          | Meaning                                                           |
    |------------------------|---------------|-------------------------------------------------------------------|
    | ``round``              | int           | t, server steps taken                                             |
    | ``credit``             | float32[n]    | credit applied this step (α₀ = 1/n at reset; NaN after ``step_update``) |
    | ``byzantine_mask``     | bool[n]       | workers Byzantine in the *current* round (the one observed)       |
    | ``byzantine_credit``   | float         | credit mass on the workers that were Byzantine when it was applied |
    | ``qv_loss_before``     | float         | f_B(θ_t) on the step's QV batch                                   |
    | ``qv_loss_after``      | float         | f_B(θ_{t+1}) on the same batch                                    |
    | ``test_accuracy``      | float         | test accuracy at round ``test_accuracy_round`` (latest evaluation) |
    | ``test_accuracy_round``| int           | round of that evaluation: every ``eval_every`` rounds and at ``horizon`` |
    | ``termination_reason`` | str           | "" unless terminated                                              |

    ## Arguments

    ```python
    >>> import gymnasium as gym
    >>> import byz_gym
    >>> env = gym.make("ByzGym/Digits-v0", n_workers=10, horizon=20)
    >>> env.observation_space.shape
    (73,)

    ```

    | Parameter            | Type                    | Default     | Description                                          |
    |----------------------|-------------------------|-------------|------------------------------------------------------|
    | scenario             | str / Scenario / dict   | "Digits"    | a preset name from ``byz_gym.SCENARIOS`` or a scenario |
    | action_mode          | str                     | "softmax"   | "softmax" or "simplex"                               |
    | temperature          | float                   | 5.0         | scale of the action in the softmax (inverse temp.)   |
    | divergence_penalty   | float                   | 10.0        | reward when the QV loss becomes non-finite           |
    | render_mode          | str or None             | None        | "ansi" or "rgb_array"                                |
    | features             | str or list of str      | "full"      | "full", "compact" or per-worker feature names        |
    | ``**overrides``      |                         |             | any ``Scenario`` field: task, n_workers, byzantine_fraction, attack, learning_rate, worker_batch_size, qv_batch_size, eval_every, horizon |

    ## Registered Configurations

    - ``ByzGym/Digits-Clean-v0``: no Byzantine worker.
    - ``ByzGym/Digits-v0``: static Random Fault, β = 0.3.
    - ``ByzGym/Digits-Majority-v0``: static Random Fault, β = 0.7.
    - ``ByzGym/Digits-Randomized-v0``: randomized Random Fault: 49 of 50 workers compromised, 24
      initially malicious, every 5 rounds each flips its role with probability 0.5 (the paper's).
    - ``ByzGym/Digits-Pretense-v0``: 35 workers honest for L = 100 rounds, then Random Fault (the
      paper's L = 1000 scaled to the 300-round episode).
    - ``ByzGym/Digits-Periodic-v0``: 45 workers send Random Fault in rounds 0–99 and 200–299 and
      are honest in rounds 100–199 (the paper's period 1000 scaled to the episode).
    - ``ByzGym/Digits-Adaptive-v0``: static adaptive fault, Case A (α = 10), β = 0.7: descends the
      loss on the QV pool while ascending it on the attackers' own shards.
    - ``ByzGym/Digits-ALIE-v0``: static "a little is enough" (omniscient), β = 0.3.

    All on digits with n = 50. ``byz_gym.SCENARIOS`` holds their ``Scenario``;
    ``info["byzantine_mask"]`` follows the schedule round by round.

    ## Version History

    - v0: initial release. Later, without changing the default observation or dynamics: the
      ``features`` option, and truncation at the scenario's ``horizon`` by the env itself (before,
      only the registered ``max_episode_steps`` truncated, so ``horizon=N`` alone did not shorten episodes).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    def __init__(
        self,
        scenario: str | Scenario | Mapping[str, Any] = "Digits",
        *,
        action_mode: str = "softmax",
        temperature: float = 5.0,
        divergence_penalty: float = 10.0,
        render_mode: str | None = None,
        features: str | list[str] = "full",
        **overrides: Any,
    ) -> None:
        if action_mode not in ACTION_MODES:
            raise ValueError(f"action_mode must be one of {ACTION_MODES}, got {action_mode!r}")
        if not (np.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature must be a finite positive number, got {temperature!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.scenario = resolve_scenario(scenario, overrides)
        self.action_mode = action_mode
        self.temperature = float(temperature)
        self.divergence_penalty = float(divergence_penalty)
        self.render_mode = render_mode
        self.worker_features = resolve_worker_features(features)

        self.sim = Simulator(self.scenario)
        n = self.n_workers = self.scenario.n_workers
        self.action_space = spaces.Box(-1.0, 1.0, (n,), np.float32) if action_mode == "softmax" else Simplex(n)
        observed = [f for f in WORKER_FEATURES if f.name in self.worker_features]
        low = np.array([f.low for f in observed], dtype=np.float32)
        high = np.array([n if f.high is None else f.high for f in observed], dtype=np.float32)
        global_low = np.array([f.low for f in GLOBAL_FEATURES], dtype=np.float32)
        global_high = np.array([f.high for f in GLOBAL_FEATURES], dtype=np.float32)
        self.observation_space = spaces.Box(
            np.concatenate([np.tile(low, n), global_low]),
            np.concatenate([np.tile(high, n), global_high]),
            dtype=np.float32,
        )
        self._state: SimState | None = None
        self._qv_loss = float("nan")  # f_B(θ_t) of the current round, from its observation features
        self._credit = np.full(n, 1.0 / n, dtype=np.float32)
        self._test_accuracy = (float("nan"), -1)
        self._last_info: dict[str, Any] = {}

    # -- Gymnasium API -------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        state = self.sim.reset(int(self.np_random.integers(2**62)))
        self._state = state
        self._credit = np.full(self.n_workers, 1.0 / self.n_workers, dtype=np.float32)
        self._test_accuracy = (self.sim.test_accuracy(state), 0)
        observation = self._observation()
        info = self._info(self._credit, state.byzantine_mask, self._qv_loss, self._qv_loss, "")
        return observation, info

    def step(self, action: np.ndarray):
        return self._step_credit(self.credit_from_action(action))  # on the simplex by construction

    def render(self) -> str | np.ndarray | None:
        if self.render_mode is None or self._state is None:
            return None
        from byz_gym.rendering import render_credit_ansi, render_credit_rgb

        mask = self._state.byzantine_mask.numpy()
        credit = self._last_info.get("credit", self._credit)
        if self.render_mode == "ansi":
            return render_credit_ansi(credit, mask, self._state.round_index)
        return render_credit_rgb(credit, mask)

    # -- public extensions used by policies that produce credits or updates ----------------------
    @property
    def sim_state(self) -> SimState:
        """The current round's immutable ``SimState``, for agents that differentiate through
        ``env.sim`` (GAA's online training). It holds the true Byzantine mask: a policy that reads
        ``byzantine_mask`` from it is privileged."""
        return self._require_state()

    @property
    def submissions(self) -> torch.Tensor:
        """``[n, d]`` gradients submitted in the current round (for aggregation rules; a copy)."""
        return self._require_state().submissions.detach().clone()

    def credit_from_action(self, action: Any) -> np.ndarray:
        """The credit vector an action maps to, after validating it against the action space."""
        a = self._as_vector(action, "action")
        if self.action_mode == "softmax":
            if a.min() < -1.0 or a.max() > 1.0:  # NaN was rejected by _as_vector
                raise ValueError(f"action must lie in {self.action_space}; got values in [{a.min()}, {a.max()}]")
            z = self.temperature * a.astype(np.float64)
            e = np.exp(z - z.max())
            return self._check_credit((e / e.sum()).astype(np.float32))
        return self._check_credit(a)

    def step_credit(self, credit: Any):
        """Step with an explicit credit vector (a point on the simplex), whatever the action mode."""
        return self._step_credit(self._check_credit(self._as_vector(credit, "credit")))

    def step_update(self, update: Any):
        """Step with an aggregated update u (non-linear rules): θ ← θ − λ u. ``info["credit"]`` is NaN."""
        state = self._require_state()
        update = torch.as_tensor(update, dtype=torch.float32)
        if update.shape != (self.sim.dim,):
            raise ValueError(f"update must have shape ({self.sim.dim},), got {tuple(update.shape)}")
        next_state = self.sim.apply_update(state, update)
        return self._advance(state, next_state, np.full(self.n_workers, np.nan, dtype=np.float32))

    def evaluate_test_accuracy(self) -> float:
        """Test accuracy of the current θ (reporting only; never part of rewards or observations)."""
        state = self._require_state()
        self._test_accuracy = (self.sim.test_accuracy(state), state.round_index)
        return self._test_accuracy[0]

    # -- internals -------------------------------------------------------------------------------
    def _step_credit(self, credit: np.ndarray):
        state = self._require_state()
        return self._advance(state, self.sim.apply(state, torch.from_numpy(credit)), credit)

    def _advance(self, state: SimState, next_state: SimState, credit: np.ndarray):
        qv_before = self._qv_loss  # f_B(θ_t), computed with round t's observation
        self._state = next_state
        if np.all(np.isfinite(credit)):
            self._credit = credit
        observation = self._observation()  # round t + 1's; replaces the cached QV loss
        # The reward's forward pass comes right after the observation's QV forward and backward,
        # whose code and data are then still in cache (it cost 2-4x as much right after the
        # worker gradients).
        with torch.no_grad():
            qv_after = float(self.sim.qv_losses_at(state, next_state.theta.detach()[None])[0])
        reason = ""
        if not bool(torch.isfinite(next_state.theta).all()):
            reason = "non-finite parameters"
        elif not np.isfinite(qv_after):
            reason = "non-finite QV loss"
        reward = qv_before - qv_after if not reason else -self.divergence_penalty
        t = next_state.round_index
        if t % self.scenario.eval_every == 0 or t == self.scenario.horizon or reason:
            self._test_accuracy = (self.sim.test_accuracy(next_state), t)
        info = self._info(credit, state.byzantine_mask, qv_before, qv_after, reason)
        info["byzantine_mask"] = next_state.byzantine_mask.numpy().copy()
        truncated = not reason and t >= self.scenario.horizon  # the scenario's horizon ends the episode
        return observation, float(reward), bool(reason), truncated, info

    def _observation(self) -> np.ndarray:
        """Round t's observation; also caches f_B(θ_t) for the reward of the coming step."""
        features = compute_round_features(
            self.sim, self._require_state(), torch.from_numpy(self._credit), self.worker_features
        )
        self._qv_loss = float(features.qv_loss)
        obs = np.concatenate([features.per_worker.numpy().reshape(-1), features.global_.numpy()])
        return np.clip(obs, self.observation_space.low, self.observation_space.high, out=obs)

    def _info(self, credit: np.ndarray, mask: torch.Tensor, qv_before: float, qv_after: float, reason: str):
        mask_np = mask.numpy().copy()
        info = {
            "round": self._require_state().round_index,
            "credit": credit.copy(),
            "byzantine_mask": mask_np,
            "byzantine_credit": float(credit[mask_np].sum()),
            "qv_loss_before": qv_before,
            "qv_loss_after": qv_after,
            "test_accuracy": self._test_accuracy[0],
            "test_accuracy_round": self._test_accuracy[1],
            "termination_reason": reason,
        }
        self._last_info = info
        return info

    def _require_state(self) -> SimState:
        if self._state is None:
            raise RuntimeError("call reset() before step() or reading the round")
        return self._state

    def _as_vector(self, value: Any, what: str) -> np.ndarray:
        try:
            a = np.asarray(value, dtype=np.float32)
        except (TypeError, ValueError):
            raise ValueError(
                f"{what} must be an array of {self.n_workers} floats, got {type(value).__name__}"
            ) from None
        if a.shape != (self.n_workers,):
            raise ValueError(f"{what} must have shape ({self.n_workers},) for {self.action_space}, got {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{what} contains NaN or Inf; expected a finite vector in {self.action_space}")
        return a

    def _check_credit(self, credit: np.ndarray) -> np.ndarray:
        total = float(credit.sum(dtype=np.float64))
        if credit.min() < 0 or abs(total - 1.0) > 1e-4:
            raise ValueError(
                f"credit must lie on the simplex (entries >= 0, sum 1 within 1e-4); "
                f"got min {credit.min():.3g}, sum {total:.6g}"
            )
        return (credit / total).astype(np.float32)
