"""The GAA agent of "Justinian's GAAvernor" (Pan et al., USENIX Security 2020) and its policy.

GAA is a recurrent credit assigner ``α_t = h_ψ(s_t, α_{t−1})`` whose output goes through a softmax
across workers, with ``α_{−1} = 1/n`` at the start of an episode. The credit of round t is applied
to that round's submissions: ``θ_{t+1} = θ_t − λ Σᵢ α_{t,i} V_{t,i}``. Two recurrent units:

- ``unit="equivariant"`` (default): one small MLP (two tanh hidden layers, each after a
  LayerNorm) scores each worker from its own feature row (the per-worker features of
  :func:`byz_gym.sim.features.round_features`, its previous credit and the global features
  broadcast to every row); a softmax across workers turns the scores into credit. The same ψ
  serves any number of workers and any worker order (permutation-equivariant).
- ``unit="paper"``: as published, one fully-connected layer (no hidden layer) over the flattened
  concatenation of ``s_t`` and ``α_{t−1}``, softmax output. It needs a fixed ``n``.
  ``state="features"`` (default) uses as ``s_t`` the flattened per-worker features (without their
  previous-credit column) and the global features; ``state="raw"`` uses the paper's raw state:
  the flattened submissions ``Q_t`` ``[n·d]``, ``θ_t`` ``[d]`` and ``f_B(θ_t)`` ``[1]``. The weight
  matrix has ``(input size) × n`` entries, so the constructor refuses any configuration whose
  parameter count exceeds ``max_parameters`` (raw state on any model of realistic size).

State inputs are detached (features are computed under ``no_grad``; raw submissions and θ are
detached): gradients w.r.t. ψ flow through the credits, the recurrent ``α_{t−1}`` input and the
differentiable server steps of the rollout (see :mod:`agents.gaa_trainer`).

``GAAPolicy`` (registered as ``"gaa"``) runs the agent through the common policy interface, either
online (ψ trained during the run with Algorithm 1's segment loss, one optimiser step every ``T``
rounds) or frozen (weights loaded from :meth:`GAA.save`, no training).
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from byz_gym.io import atomic_write_bytes, write_json
from byz_gym.policy import Decision, Policy, RoundInput, register_policy
from byz_gym.sim.features import (
    GLOBAL_FEATURES,
    WORKER_FEATURE_NAMES,
    WORKER_FEATURES,
    resolve_worker_features,
    round_features,
)
from byz_gym.sim.simulator import SimState, Simulator

__all__ = [
    "GAA",
    "GAAPolicy",
    "STATES",
    "UNITS",
    "check_training_options",
    "make_optimizer",
    "normalized_entropy",
    "optimizer_step",
    "round_term",
    "unobserved_features",
]

UNITS = ("equivariant", "paper")
STATES = ("features", "raw")
CREDIT_INPUTS = ("linear", "log")
DEFAULT: Any = object()  # "the unit's own default" for options where None means "off"
N_WORKER_FEATURES = len(WORKER_FEATURES)  # the last one is the previous credit
N_GLOBAL_FEATURES = len(GLOBAL_FEATURES)
_SCORED_FEATURES = WORKER_FEATURE_NAMES[:-1]  # the unit's own credit replaces the last (previous_credit)


def _feature_names(names: Sequence[str]) -> tuple[str, ...]:
    """``names`` as a tuple of known per-worker feature names, or ``ValueError`` listing them."""
    if isinstance(names, str):
        names = [names]
    unknown = [name for name in names if name not in _SCORED_FEATURES]
    if unknown:
        raise ValueError(f"unknown feature(s) {unknown} in ignore_features; choose among {list(_SCORED_FEATURES)}")
    return tuple(dict.fromkeys(names))


def unobserved_features(worker_features: str | Sequence[str] | None) -> tuple[str, ...]:
    """The ``ignore_features`` of a unit that reads only what an env with ``features=worker_features``
    observes (``()`` for the full observation)."""
    observed = resolve_worker_features(worker_features)
    return tuple(name for name in _SCORED_FEATURES if name not in observed)


def _all_columns(per_worker: Tensor, names: Sequence[str]) -> Tensor:
    """``[n, 7]`` per-worker features from the columns ``names`` (in ``WORKER_FEATURES`` order), zeros
    where a feature was not computed (the unit ignores it)."""
    if len(names) == N_WORKER_FEATURES:
        return per_worker
    full = per_worker.new_zeros(per_worker.shape[0], N_WORKER_FEATURES)
    full[:, [WORKER_FEATURE_NAMES.index(name) for name in names]] = per_worker
    return full


_CONFIG_FILE, _WEIGHTS_FILE = "gaa_config.json", "gaa_weights.pt"


class GAA(nn.Module):
    """The recurrent unit ``h_ψ``: ``forward(per_worker, global_, previous_credit) -> credit``.

    Parameters
    ----------
    unit: ``"equivariant"`` (any ``n``) or ``"paper"`` (one linear layer, fixed ``n``).
    n_workers: required by the paper unit; ignored (may be ``None``) by the equivariant unit.
    state: ``"features"`` or, paper unit only, ``"raw"`` (submissions, θ and the QV loss).
    model_dim: ``d``, the number of model parameters; required when ``state="raw"``.
    hidden: width of the equivariant unit's two hidden layers.
    standardize: equivariant unit only: also feed each feature relative to the round's other workers
        ((x − mean) / (std + 0.01) across workers).
    credit_input: how α_{t−1} enters the unit: ``"linear"`` (n·α, as published) or ``"log"``
        (log(n·α + 10⁻³), bounded for a worker holding all credit). Default: ``"log"`` for the
        equivariant unit, ``"linear"`` for the paper unit.
    max_logit: bound the scores with ``max_logit · tanh(s / max_logit)`` before the softmax, so the
        credit never becomes exactly one-hot and ψ keeps a gradient; ``None``: no bound. Default:
        10 for the equivariant unit, ``None`` for the paper unit (docs/gaa.md has the measurements).
    max_parameters: the paper unit refuses to build a weight matrix with more entries than this.
    layer_norm: equivariant unit only: normalise each hidden layer's pre-activations (LayerNorm)
        before its tanh. Without it, Adam's steps grew the hidden weights until every tanh unit
        saturated; the unit then scored all workers alike, the credit stayed uniform and no
        gradient revived it (1 of 5 Pretense seeds, docs/gaa.md). Agents saved without the key
        load with ``False``.
    ignore_features: names of per-worker features (``WORKER_FEATURES``, previous credit excepted)
        the unit sees as 0, for ablations (which observation features does the agent need?) and
        for speed: :meth:`inputs` does not compute them, and the agent runs on an env whose
        ``features`` leave them out (``["cos_median", "qv_loss_change", "distance_score"]`` is
        the env's ``features="compact"``).
    seed: seeds ψ's initialisation without touching the global random state.

    Inputs of ``forward`` (``state="features"``): ``per_worker`` ``[n, 7]`` and ``global_`` ``[3]``
    from ``round_features``; the features' previous-credit column is replaced by
    ``n · previous_credit`` (or its log, see ``credit_input``) so that the recurrent path ``α_{t−1} → α_t`` is differentiable. With
    ``state="raw"``: ``per_worker`` = submissions ``[n, d]``, ``global_`` = ``[θ_t, f_B(θ_t)]``
    ``[d + 1]``. :meth:`inputs` builds either from a simulator state.
    """

    def __init__(
        self,
        unit: str = "equivariant",
        *,
        n_workers: int | None = None,
        state: str = "features",
        model_dim: int | None = None,
        hidden: int = 32,
        standardize: bool = False,
        credit_input: str | None = None,
        max_logit: float | None = DEFAULT,
        max_parameters: int = 1_000_000,
        layer_norm: bool | None = None,
        ignore_features: Sequence[str] = (),
        seed: int | None = 0,
    ) -> None:
        super().__init__()
        if unit not in UNITS:
            raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
        if state not in STATES:
            raise ValueError(f"state must be one of {STATES}, got {state!r}")
        if unit == "equivariant" and state != "features":
            raise ValueError("the equivariant unit scores per-worker features; use state='features' (or unit='paper')")
        if int(hidden) < 1:
            raise ValueError(f"hidden must be a positive integer, got {hidden!r}")
        self.unit, self.state_mode = unit, state
        self.n_workers = None if n_workers is None else int(n_workers)
        self.model_dim = None if model_dim is None else int(model_dim)
        self.hidden, self.max_parameters = int(hidden), int(max_parameters)
        self.standardize = bool(standardize)
        if layer_norm and unit != "equivariant":
            raise ValueError(
                "layer_norm=True is an option of the equivariant unit (the paper unit has no hidden layer)"
            )
        self.layer_norm = unit == "equivariant" if layer_norm is None else bool(layer_norm)
        self.ignore_features = _feature_names(ignore_features)
        if self.ignore_features and state != "features":
            raise ValueError("ignore_features selects among the per-worker features; it needs state='features'")
        self._ignored = [_SCORED_FEATURES.index(name) for name in self.ignore_features]
        equivariant = unit == "equivariant"
        if credit_input is None:  # by unit: the paper unit feeds α as published
            credit_input = "log" if equivariant else "linear"
        if max_logit is DEFAULT:
            max_logit = 10.0 if equivariant else None
        if credit_input not in CREDIT_INPUTS:
            raise ValueError(f"credit_input must be one of {CREDIT_INPUTS}, got {credit_input!r}")
        self.credit_input = credit_input
        if max_logit is not None and not float(max_logit) > 0:
            raise ValueError(f"max_logit must be positive or None, got {max_logit!r}")
        self.max_logit = None if max_logit is None else float(max_logit)
        if self.standardize and unit != "equivariant":
            raise ValueError("standardize=True is an option of the equivariant unit")
        self.seed = seed
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(int(seed))
            if unit == "equivariant":
                width = N_WORKER_FEATURES + N_GLOBAL_FEATURES + (N_WORKER_FEATURES - 1) * self.standardize
                layers: list[nn.Module] = []
                for size in (width, self.hidden):  # no placeholder modules: saved weights keep their names
                    layers += [
                        nn.Linear(size, self.hidden),
                        *([nn.LayerNorm(self.hidden)] * self.layer_norm),
                        nn.Tanh(),
                    ]
                self.net: nn.Module = nn.Sequential(*layers, nn.Linear(self.hidden, 1))
            else:
                in_features = self._paper_input_size()
                self.net = nn.Linear(in_features, self.n_workers)  # type: ignore[arg-type]

    def _paper_input_size(self) -> int:
        n = self.n_workers
        if n is None or n < 1:
            raise ValueError("unit='paper' needs a fixed positive n_workers (its weight matrix is n-specific)")
        if self.state_mode == "features":
            state_size = n * (N_WORKER_FEATURES - 1) + N_GLOBAL_FEATURES
        else:
            if self.model_dim is None or self.model_dim < 1:
                raise ValueError("state='raw' needs model_dim (the number of model parameters d)")
            state_size = n * self.model_dim + self.model_dim + 1
        in_features = state_size + n  # s_t concatenated with α_{t−1}
        count = in_features * n + n
        if count > self.max_parameters:
            detail = f"d={self.model_dim}, " if self.state_mode == "raw" else ""
            raise ValueError(
                f"unit='paper' with state={self.state_mode!r} needs a {in_features:,} x {n} weight matrix "
                f"({count:,} parameters for n={n}, {detail}input size {in_features:,}), over "
                f"max_parameters={self.max_parameters:,}; use unit='equivariant' (any n, features), "
                f"state='features', or raise max_parameters"
            )
        return in_features

    # -- configuration and persistence -------------------------------------------------------------
    @property
    def config(self) -> dict[str, Any]:
        """JSON-serialisable constructor arguments (``GAA(**config)`` rebuilds the architecture)."""
        return {
            "unit": self.unit,
            "n_workers": self.n_workers,
            "state": self.state_mode,
            "model_dim": self.model_dim,
            "hidden": self.hidden,
            "standardize": self.standardize,
            "credit_input": self.credit_input,
            "max_logit": self.max_logit,
            "max_parameters": self.max_parameters,
            "layer_norm": self.layer_norm,
            "ignore_features": list(self.ignore_features),
            "seed": self.seed,
        }

    def save(self, path: str | Path) -> Path:
        """Write ``gaa_config.json`` and ``gaa_weights.pt`` into the directory ``path``."""
        path = Path(path)
        weights = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in self.state_dict().items()}, weights)
        atomic_write_bytes(path / _WEIGHTS_FILE, weights.getvalue())  # each file whole or not at all
        write_json(path / _CONFIG_FILE, self.config)
        return path

    @classmethod
    def load(cls, path: str | Path) -> GAA:
        """The agent saved by :meth:`save` in directory ``path``."""
        path = Path(path)
        config_file, weights_file = path / _CONFIG_FILE, path / _WEIGHTS_FILE
        if not (config_file.is_file() and weights_file.is_file()):
            raise FileNotFoundError(
                f"no saved GAA agent in {str(path)!r}: expected {_CONFIG_FILE} and {_WEIGHTS_FILE} "
                "written by GAA.save(path)"
            )
        config = json.loads(config_file.read_text())
        config.setdefault("layer_norm", False)  # saved before the option existed
        agent = cls(**config)
        agent.load_state_dict(torch.load(weights_file, weights_only=True))
        return agent

    # -- inputs and forward --------------------------------------------------------------------------
    @property
    def used_features(self) -> tuple[str, ...]:
        """The per-worker features the unit reads (``WORKER_FEATURES`` order; previous credit aside)."""
        return tuple(name for name in _SCORED_FEATURES if name not in self.ignore_features)

    def inputs(self, sim: Simulator, state: SimState, previous_credit: Tensor) -> tuple[Tensor, Tensor]:
        """``(per_worker, global_)`` for ``forward`` at round ``state`` (detached inputs); ignored
        features are not computed."""
        if self.state_mode == "features":
            names = resolve_worker_features([*self.used_features, "previous_credit"])
            per_worker, global_ = round_features(sim, state, previous_credit.detach(), names)
            return _all_columns(per_worker, names), global_
        with torch.no_grad():
            qv_loss = sim.qv_loss(state).reshape(1)
        return state.submissions.detach(), torch.cat([state.theta.detach(), qv_loss.to(state.theta.dtype)])

    def inputs_from_observation(
        self, observation: np.ndarray | Tensor, n: int, worker_features: str | Sequence[str] | None = None
    ) -> tuple[Tensor, Tensor]:
        """``(per_worker, global_)`` from the env's flat observation (``state="features"`` only);
        ``worker_features`` names its per-worker columns (the env's ``worker_features``; default:
        all). ``ValueError`` when it lacks a feature the unit reads."""
        if self.state_mode != "features":
            raise ValueError("the env's observation holds features; state='raw' needs the simulator state")
        names = self.check_observed(worker_features)
        obs = torch.as_tensor(np.asarray(observation, dtype=np.float32))
        split = n * len(names)
        if obs.shape != (split + N_GLOBAL_FEATURES,):
            raise ValueError(
                f"an observation of {n} workers with {len(names)} features each must have shape "
                f"({split + N_GLOBAL_FEATURES},), got {tuple(obs.shape)}"
            )
        return _all_columns(obs[:split].reshape(n, len(names)), names), obs[split:]

    def check_observed(self, worker_features: str | Sequence[str] | None) -> tuple[str, ...]:
        """The resolved names of an env's per-worker features, or ``ValueError`` if the unit reads one
        they leave out."""
        names = resolve_worker_features(worker_features)
        missing = [name for name in self.used_features if name not in names]
        if missing:
            raise ValueError(
                f"this GAA unit reads {missing}, which the env does not observe (its features: {list(names)}); "
                "make the env with features='full' or build the unit with those in ignore_features"
            )
        return names

    def forward(self, per_worker: Tensor, global_: Tensor, previous_credit: Tensor) -> Tensor:
        """Credit ``α_t`` ``[n]`` on the simplex from ``s_t`` and ``α_{t−1}`` (``previous_credit``)."""
        dtype = next(self.parameters()).dtype
        n = per_worker.shape[0]
        if previous_credit.shape != (n,):
            raise ValueError(f"previous_credit must have shape ({n},), got {tuple(previous_credit.shape)}")
        if self.n_workers is not None and self.unit == "paper" and n != self.n_workers:
            raise ValueError(f"this paper unit was built for n_workers={self.n_workers}, got {n} workers")
        prev = n * previous_credit.to(dtype)
        if self.credit_input == "log":  # bounded: a worker holding all credit must not saturate the unit
            prev = torch.log(prev + 1e-3)
        if self.state_mode == "features":
            features = per_worker.detach().to(dtype)[:, : N_WORKER_FEATURES - 1]
            if self._ignored:
                features = features.clone()
                features[:, self._ignored] = 0.0
            glob = global_.detach().to(dtype)
            if self.unit == "equivariant":
                columns = [features, prev[:, None], glob.expand(n, -1)]
                if self.standardize:  # each feature relative to this round's other workers (scale-free)
                    spread = features.std(dim=0, unbiased=False, keepdim=True) if n > 1 else torch.ones_like(features)
                    columns.append((features - features.mean(dim=0, keepdim=True)) / (spread + 1e-2))
                rows = torch.cat(columns, dim=1)
                scores = self.net(rows).squeeze(-1)
            else:
                scores = self.net(torch.cat([features.reshape(-1), glob, prev]))
        else:  # raw state; attackers' NaN/Inf must not poison the credit
            raw = torch.cat([per_worker.detach().reshape(-1), global_.detach().reshape(-1)]).to(dtype)
            raw = torch.nan_to_num(raw, nan=0.0, posinf=0.0, neginf=0.0)
            scores = self.net(torch.cat([raw, prev]))
        if self.max_logit is not None:  # bounded scores: the softmax never saturates, ψ keeps a gradient
            scores = self.max_logit * torch.tanh(scores / self.max_logit)
        return torch.softmax(scores, dim=0)


def check_training_options(
    *, segment_length: int, gamma: float, entropy_bonus: float, max_grad_norm: float | None, weight_decay: float = 0.0
) -> None:
    """The checks shared by the online policy and Algorithm 1's trainer (ValueError naming the knob)."""
    if int(segment_length) < 1:
        raise ValueError(f"segment_length must be a positive integer, got {segment_length!r}")
    if not (0.0 < float(gamma) <= 1.0):
        raise ValueError(f"gamma must lie in (0, 1], got {gamma!r}")
    if not float(entropy_bonus) >= 0:
        raise ValueError(f"entropy_bonus must be a non-negative number, got {entropy_bonus!r}")
    if max_grad_norm is not None and not float(max_grad_norm) > 0:
        raise ValueError(f"max_grad_norm must be positive or None, got {max_grad_norm!r}")
    if not float(weight_decay) >= 0:
        raise ValueError(f"weight_decay must be a non-negative number, got {weight_decay!r}")


def make_optimizer(agent: GAA, learning_rate: float, weight_decay: float) -> torch.optim.Optimizer:
    """ψ's optimiser: Adam, or AdamW when ``weight_decay`` > 0 (decoupled decay on every weight)."""
    return torch.optim.AdamW(agent.parameters(), lr=learning_rate, weight_decay=float(weight_decay))


def round_term(
    sim: Simulator, state: SimState, theta: Tensor, theta_next: Tensor, credit: Tensor, entropy_bonus: float
) -> Tensor:
    """One round's term of ℓ_GAA: (1/S) Σ_{z∈B_t} [f(θ_{t+1}, z) − f(θ_t, z)], the change of the mean
    loss on round t's QV batch, minus η·H(α_t)/log n when ``entropy_bonus`` η > 0 (not in the paper)."""
    term = sim.qv_loss(state, theta_next) - sim.qv_loss(state, theta)
    if entropy_bonus:
        term = term - entropy_bonus * normalized_entropy(credit)
    return term


def optimizer_step(
    agent: nn.Module, optimizer: torch.optim.Optimizer, loss: Tensor, max_grad_norm: float | None
) -> bool:
    """One step on ψ with ∇_ψ ``loss`` (clipped to ``max_grad_norm``); skipped, returning False, when
    the loss is not finite, so that a diverged segment cannot corrupt ψ."""
    if not bool(torch.isfinite(loss)):
        return False
    optimizer.zero_grad()
    loss.backward()
    if max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(agent.parameters(), max_grad_norm)
    optimizer.step()
    return True


def normalized_entropy(credit: Tensor) -> Tensor:
    """H(α) / log n ∈ [0, 1]: 1 for uniform credit, 0 for all credit on one worker."""
    n = credit.shape[-1]
    if n < 2:
        return credit.new_zeros(())
    return -(credit * torch.log(credit.clamp_min(1e-30))).sum(-1) / math.log(n)


@register_policy("gaa")
class GAAPolicy(Policy):
    """GAA through the common policy interface.

    Online (default when no ``path`` is given), as in the paper: ψ is trained during the run. Each
    round the agent computes ``α_t`` from the round's features and ``α_{t−1}``, the segment loss
    accumulates ``γ^τ [f_B(θ_{t+1}) − f_B(θ_t)]`` (τ = round within the segment) through a
    differentiable copy of the server step, and every ``segment_length`` rounds ψ takes one
    optimiser step (BPTT through the segment); ``α`` is carried (detached) into the next segment.
    The values of θ are always the env's; only the gradient path is the policy's own.

    ``episodes`` is Algorithm 1's N (default 5, the paper's): the first N − 1 episodes run on the
    policy's own rollouts of the env's scenario (``GAATrainer``, θ re-initialised each time, seeds
    disjoint from the evaluated one), and the env's run is the N-th, trained online as above.
    ``episodes=1`` starts the env's run with an untrained agent (5× faster; at β = 0.7 it ends a few
    points lower, docs/gaa.md).

    Parameters (docs/gaa.md has the measurements behind each default)
    ----------
    path: a folder written by ``GAA.save`` / ``byz-gym train --algo gaa``: act frozen.
    online: train ψ during the run (default: only when no ``path`` is given).
    unit, hidden, standardize, credit_input, max_logit, layer_norm, ignore_features, seed: the new
        agent's architecture (see ``GAA``); ``ignore_features`` defaults to what the env does not
        observe (nothing on the full observation, the three costly features on ``features="compact"``).
    entropy_bonus: η of the per-round term −η·H(α_t)/log n (0 is the paper's loss).
    segment_length, gamma: Algorithm 1's T and γ. agent_learning_rate: Adam's step size on ψ.
    weight_decay: AdamW's decoupled weight decay on ψ (0: plain Adam).
    max_grad_norm: clip ∇ψ before each step (``None``: no clipping). episodes: Algorithm 1's N.

    Frozen: ``GAAPolicy(path=...)`` loads an agent saved by ``GAA.save`` and acts without training
    (pass ``online=True`` to fine-tune it online instead).
    """

    name = "gaa"

    def __init__(
        self,
        path: str | None = None,
        *,
        online: bool | None = None,
        unit: str = "equivariant",
        hidden: int = 32,
        standardize: bool = False,
        credit_input: str | None = None,
        max_logit: float | None = DEFAULT,
        entropy_bonus: float = 0.01,
        segment_length: int = 5,
        gamma: float = 0.9,
        agent_learning_rate: float = 0.05,
        max_grad_norm: float | None = None,
        weight_decay: float = 0.0,
        episodes: int = 5,
        layer_norm: bool | None = None,
        ignore_features: Sequence[str] | None = None,
        seed: int = 0,
    ) -> None:
        check_training_options(
            segment_length=segment_length,
            gamma=gamma,
            entropy_bonus=entropy_bonus,
            max_grad_norm=max_grad_norm,
            weight_decay=weight_decay,
        )
        self.weight_decay = float(weight_decay)
        self.agent: GAA | None = GAA.load(path) if path is not None else None
        self.online = path is None if online is None else bool(online)
        if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
            raise ValueError(f"episodes (Algorithm 1's N) must be a positive integer, got {episodes!r}")
        # the new agent's constructor arguments (n comes from the env at reset); names checked now
        self.architecture: dict[str, Any] = dict(
            unit=unit,
            hidden=int(hidden),
            standardize=bool(standardize),
            credit_input=credit_input,
            max_logit=max_logit,
            layer_norm=layer_norm,
            ignore_features=None if ignore_features is None else _feature_names(ignore_features),
            seed=int(seed),
        )
        self.entropy_bonus = float(entropy_bonus)
        self.segment_length, self.gamma = int(segment_length), float(gamma)
        self.agent_learning_rate = float(agent_learning_rate)
        self.max_grad_norm = None if max_grad_norm is None else float(max_grad_norm)
        self.episodes = episodes
        self.optimizer: torch.optim.Optimizer | None = None
        self.optimizer_steps = 0
        self.segment_losses: list[float] = []
        self._env: Any = None

    def reset(self, env: Any, seed: int) -> None:
        self._env = env
        n = env.sim.n_workers
        if self.agent is None:
            architecture = dict(self.architecture)
            if architecture["ignore_features"] is None:
                architecture["ignore_features"] = unobserved_features(getattr(env, "worker_features", None))
            self.agent = GAA(n_workers=n, **architecture)
        if self.agent.state_mode != "features":
            raise ValueError("GAAPolicy runs agents with state='features' (the env's observation)")
        self._observed = self.agent.check_observed(getattr(env, "worker_features", None))
        if self.online and self.optimizer is None:
            self.optimizer = make_optimizer(self.agent, self.agent_learning_rate, self.weight_decay)
        if self.online and self.episodes > 1:
            self._warm_up(env.sim, seed)
        self._alpha = torch.full((n,), 1.0 / n)  # α_{−1}: the recurrent state at episode start
        self._start_segment()

    def _warm_up(self, sim: Simulator, seed: int) -> None:
        """Algorithm 1's first N − 1 episodes on the policy's own rollouts of the scenario, with seeds
        disjoint from the evaluated one (the env's run is the N-th episode)."""
        from agents.gaa_trainer import GAATrainer  # the trainer imports this module

        seeds = [1_000_003 * (e + 1) + int(seed) for e in range(self.episodes - 1)]
        self.warmup_seeds = seeds
        trainer = GAATrainer(
            sim,
            self.agent,
            episodes=self.episodes - 1,
            segment_length=self.segment_length,
            gamma=self.gamma,
            optimizer=lambda _params: self.optimizer,
            max_grad_norm=self.max_grad_norm,
            entropy_bonus=self.entropy_bonus,
            seeds=seeds,
        )
        trainer.train()
        self.optimizer_steps += trainer.optimizer_steps
        self.warmup_history = trainer.history

    def _start_segment(self) -> None:
        self._alpha = self._alpha.detach()  # α₀ ← α_old
        self._loss: Tensor | None = None
        self._theta: Tensor | None = None  # differentiable θ_t of the segment (values are the env's)
        self._tau = 0

    def act(self, round_input: RoundInput) -> Decision:
        if self.agent is None or self._env is None:
            raise RuntimeError("call reset(env, seed) before act()")
        n = self._alpha.shape[0]
        per_worker, global_ = self.agent.inputs_from_observation(round_input.observation, n, self._observed)
        if not self.online:
            with torch.no_grad():
                self._alpha = self.agent(per_worker, global_, self._alpha)
            return Decision(credit=self._alpha.to(torch.float64).numpy())

        env, sim = self._env, self._env.sim
        state = env.sim_state
        alpha = self.agent(per_worker, global_, self._alpha)
        # θ_t: the env's value, with the gradient path of this segment's earlier credits.
        theta = (
            state.theta.detach() if self._theta is None else state.theta.detach() + (self._theta - self._theta.detach())
        )
        theta_next = theta - sim.scenario.learning_rate * sim.credited_update(state.submissions, alpha)
        weighted = self.gamma**self._tau * round_term(sim, state, theta, theta_next, alpha, self.entropy_bonus)
        self._loss = weighted if self._loss is None else self._loss + weighted
        self._theta, self._alpha, self._tau = theta_next, alpha, self._tau + 1
        if self._tau == self.segment_length:
            self._step()
        applied = alpha.detach().to(torch.float64)
        return Decision(credit=(applied / applied.sum()).numpy())

    def _step(self) -> None:
        assert self.optimizer is not None and self._loss is not None
        loss = self._loss
        if optimizer_step(self.agent, self.optimizer, loss, self.max_grad_norm):
            self.optimizer_steps += 1
        self.segment_losses.append(float(loss.detach()))
        self._start_segment()
