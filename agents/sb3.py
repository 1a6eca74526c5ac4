"""Stable-Baselines3 on byz-gym: an equivariant extractor and policies, RL-Zoo style hyperparameters,
training, evaluation, and the ``sb3`` policy.

The observation is ``n`` rows of 7 per-worker features followed by 3 globals (see
``ByzantineAggregationEnv``). Renaming the workers permutes the rows and should permute the credit in
the same way, so the networks here treat the workers as a set (Deep Sets / PointNet style):

- :class:`WorkerSetExtractor` applies one MLP ``φ`` to every row ``[wᵢ ‖ g]`` (worker features and
  globals), pools the results (mean and max) into a context ``c``, and embeds every worker again
  with ``ψ([φᵢ ‖ c])``. Its features are ``[e₁ … eₙ ‖ c]``: ``n·k`` per-worker embeddings (worker
  major) then the pooled context. Permuting the workers permutes the ``eᵢ`` blocks and leaves ``c``
  unchanged.
- An SB3 action head is a flat linear layer over the features, which would undo that. The
  ``WorkerSetPolicy`` classes (:class:`WorkerSetActorCriticPolicy` for PPO/A2C,
  :class:`WorkerSetSACPolicy`, :class:`WorkerSetTD3Policy`) replace it with one small head shared by
  all workers, ``aᵢ = h(eᵢ)`` (PPO/A2C: one log-std shared by all workers). Their critics are
  invariant: the value reads the context, and Q pools the pairs ``(eᵢ, aᵢ)``. The deterministic
  action of worker i therefore never depends on the workers' order.

The extractor alone also works with SB3's ``MlpPolicy`` through ``policy_kwargs`` (the action head is
then a linear map over all ``n·k + 2h`` features, which is not equivariant).

``train_sb3`` reads ``agents/hyperparams/<algo>.yml`` (RL-Zoo format, keyed by env id), builds the
vectorised env (Monitor, optional VecNormalize), trains with a progress bar and saves ``model.zip``,
``vecnormalize.pkl`` (when normalising), ``monitor/*.monitor.csv`` and ``config.json`` in a run
folder. ``make_policy("sb3:RUN_DIR")`` (or ``"sb3"`` with ``path=``) plays the saved model through
the common policy interface.
"""

from __future__ import annotations

import ast
import inspect
import io
import json
import math
import pickle
import platform
import time
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import yaml
from gymnasium import spaces
from stable_baselines3 import A2C, PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.distributions import DiagGaussianDistribution
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise
from stable_baselines3.common.policies import ActorCriticPolicy, ContinuousCritic
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, FlattenExtractor
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecNormalize
from stable_baselines3.sac.policies import Actor as SACActor
from stable_baselines3.sac.policies import SACPolicy
from stable_baselines3.td3.policies import Actor as TD3Actor
from stable_baselines3.td3.policies import TD3Policy
from torch import Tensor, nn

from byz_gym.policy import Decision, Policy, RoundInput, register_policy
from byz_gym.sim import GLOBAL_FEATURES, WORKER_FEATURES

__all__ = [
    "ALGOS",
    "EvaluationResult",
    "SB3Policy",
    "TqdmCallback",
    "TrainSpec",
    "WorkerSetActorCriticPolicy",
    "WorkerSetExtractor",
    "WorkerSetLayout",
    "WorkerSetSACPolicy",
    "WorkerSetTD3Policy",
    "default_run_dir",
    "detect_algo",
    "env_make_kwargs",
    "evaluate_sb3",
    "hyperparams_file",
    "load_hyperparams",
    "load_sb3",
    "make_sb3_env",
    "parse_policy_kwargs",
    "train_sb3",
    "training_spec",
]

N_WORKER_FEATURES = len(WORKER_FEATURES)  # 7
N_GLOBAL_FEATURES = len(GLOBAL_FEATURES)  # 3
ALGOS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "a2c": A2C, "sac": SAC, "td3": TD3}
MODEL_FILE, VECNORMALIZE_FILE, CONFIG_FILE, MONITOR_DIR = "model.zip", "vecnormalize.pkl", "config.json", "monitor"
INFO_KEYWORDS = ("test_accuracy", "byzantine_credit")  # logged by Monitor at each episode end


# ---------------------------------------------------------------------------------------------------
# Equivariant networks
# ---------------------------------------------------------------------------------------------------
def n_workers_of(observation_space: spaces.Space, worker_features: int = N_WORKER_FEATURES) -> int:
    """``n`` from a byz-gym observation space ``Box((k·n + 3,))`` with ``k = worker_features`` per-worker
    columns (7 for the full observation, 4 for ``features="compact"``); ``ValueError`` for any other space."""
    k = int(worker_features)
    shape = getattr(observation_space, "shape", None)
    if not isinstance(observation_space, spaces.Box) or shape is None or len(shape) != 1:
        raise ValueError(f"expected a flat Box observation space of shape ({k}n + 3,), got {observation_space}")
    n, rest = divmod(shape[0] - N_GLOBAL_FEATURES, k)
    if n < 1 or rest:
        raise ValueError(
            f"observation size {shape[0]} is not {k}·n + {N_GLOBAL_FEATURES} "
            f"(n worker rows of {k} features, then 3 globals): not a byz-gym observation with "
            f"{k} per-worker features (pass worker_features=len(env.unwrapped.worker_features))"
        )
    return n


@dataclass(frozen=True)
class WorkerSetLayout:
    """Where things sit in the extractor's features: ``n·k`` per-worker entries, then ``context`` entries."""

    n_workers: int
    worker_dim: int  # k
    context_dim: int

    @property
    def features_dim(self) -> int:
        return self.n_workers * self.worker_dim + self.context_dim

    def split(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """``([B, n, k], [B, context])`` from features ``[B, features_dim]``."""
        split = self.n_workers * self.worker_dim
        return features[:, :split].reshape(-1, self.n_workers, self.worker_dim), features[:, split:]


def _mlp(sizes: Sequence[int], activation_fn: type[nn.Module], *, last_activation: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if last_activation or i < len(sizes) - 2:
            layers.append(activation_fn())
    return nn.Sequential(*layers)


class WorkerSetExtractor(BaseFeaturesExtractor):
    """Permutation-equivariant features of a byz-gym observation.

    ``hᵢ = φ([wᵢ ‖ g])`` (``φ``: 10 → hidden → hidden), ``c = [mean_i hᵢ ‖ max_i hᵢ]``,
    ``eᵢ = ψ([hᵢ ‖ c])`` (``ψ``: 3·hidden → worker_dim); features ``[e₁ … eₙ ‖ c]`` of size
    ``n·worker_dim + 2·hidden``. ``layout`` says where each part sits.

    Parameters
    ----------
    observation_space: the env's ``Box((k·n + 3,))``; ``n`` is read from its size.
    hidden: width of ``φ`` (the context has ``2·hidden`` entries).
    worker_dim: size ``k`` of each worker's embedding ``eᵢ``.
    activation_fn: activation of ``φ`` and ``ψ`` (outputs are bounded when it is ``Tanh``).
    worker_features: per-worker columns ``k`` of the observation (7, or 4 with ``features="compact"``;
        ``train_sb3`` sets it from the env).
    """

    def __init__(
        self,
        observation_space: spaces.Box,
        hidden: int = 64,
        worker_dim: int = 16,
        activation_fn: type[nn.Module] = nn.Tanh,
        worker_features: int = N_WORKER_FEATURES,
    ) -> None:
        n = n_workers_of(observation_space, worker_features)
        hidden, worker_dim = int(hidden), int(worker_dim)
        if hidden < 1 or worker_dim < 1:
            raise ValueError(f"hidden and worker_dim must be positive integers, got {hidden}, {worker_dim}")
        layout = WorkerSetLayout(n, worker_dim, 2 * hidden)
        super().__init__(observation_space, layout.features_dim)
        self.layout = layout
        self.worker_features = int(worker_features)
        self.n_workers, self.hidden, self.worker_dim = n, hidden, worker_dim
        self.phi = _mlp([self.worker_features + N_GLOBAL_FEATURES, hidden, hidden], activation_fn, last_activation=True)
        self.psi = _mlp([3 * hidden, worker_dim], activation_fn, last_activation=True)

    def forward(self, observations: Tensor) -> Tensor:
        n = self.n_workers
        obs = observations.reshape(observations.shape[0], -1)
        k = self.worker_features
        rows = obs[:, : n * k].reshape(-1, n, k)
        globals_ = obs[:, n * k :]
        h = self.phi(torch.cat([rows, globals_[:, None, :].expand(-1, n, -1)], dim=-1))  # [B, n, hidden]
        context = torch.cat([h.mean(dim=1), h.amax(dim=1)], dim=-1)  # [B, 2·hidden], invariant
        e = self.psi(torch.cat([h, context[:, None, :].expand(-1, n, -1)], dim=-1))  # [B, n, k], equivariant
        return torch.cat([e.reshape(e.shape[0], -1), context], dim=-1)


class PerWorkerHead(nn.Module):
    """One MLP shared by all workers: features ``[B, n·k + C]`` → ``[B, n]``, ``outᵢ = h(eᵢ)``."""

    def __init__(self, layout: WorkerSetLayout, net_arch: Sequence[int], activation_fn: type[nn.Module]) -> None:
        super().__init__()
        self.layout = layout
        self.net = _mlp([layout.worker_dim, *net_arch, 1], activation_fn, last_activation=False)

    def forward(self, features: Tensor) -> Tensor:
        per_worker, _ = self.layout.split(features)
        return self.net(per_worker).squeeze(-1)


class WorkerSetQNetwork(nn.Module):
    """Q from ``[features ‖ actions]``, invariant to permuting workers and their actions together:
    ``zᵢ = ρ([eᵢ ‖ aᵢ])``, ``Q = MLP([c ‖ mean_i zᵢ ‖ max_i zᵢ])``."""

    def __init__(
        self, layout: WorkerSetLayout, net_arch: Sequence[int], activation_fn: type[nn.Module], width: int = 64
    ) -> None:
        super().__init__()
        self.layout = layout
        self.rho = _mlp([layout.worker_dim + 1, width], activation_fn, last_activation=True)
        self.head = _mlp([layout.context_dim + 2 * width, *net_arch, 1], activation_fn, last_activation=False)

    def forward(self, features_and_actions: Tensor) -> Tensor:
        features = features_and_actions[:, : self.layout.features_dim]
        actions = features_and_actions[:, self.layout.features_dim :]
        per_worker, context = self.layout.split(features)
        z = self.rho(torch.cat([per_worker, actions[..., None]], dim=-1))
        return self.head(torch.cat([context, z.mean(dim=1), z.amax(dim=1)], dim=-1))


class _WorkerSetLatents(nn.Module):
    """``mlp_extractor`` of :class:`WorkerSetActorCriticPolicy`: the actor latent is the features
    themselves (the per-worker action head reads them), the critic latent an MLP of the context."""

    def __init__(self, layout: WorkerSetLayout, vf_arch: Sequence[int], activation_fn: type[nn.Module]) -> None:
        super().__init__()
        self.layout = layout
        self.value_net = _mlp([layout.context_dim, *vf_arch], activation_fn, last_activation=True)
        self.latent_dim_pi = layout.features_dim
        self.latent_dim_vf = vf_arch[-1] if vf_arch else layout.context_dim

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        return self.forward_actor(features), self.forward_critic(features)

    def forward_actor(self, features: Tensor) -> Tensor:
        return features

    def forward_critic(self, features: Tensor) -> Tensor:
        return self.value_net(self.layout.split(features)[1])


def _layout_of(extractor: nn.Module, policy: str) -> WorkerSetLayout:
    if not isinstance(extractor, WorkerSetExtractor):
        raise ValueError(
            f"{policy} needs features_extractor_class=WorkerSetExtractor (or a subclass), got "
            f"{type(extractor).__name__}; use MlpPolicy for other extractors"
        )
    return extractor.layout


def _split_arch(net_arch: Any, keys: tuple[str, str], default: dict[str, list[int]]) -> dict[str, list[int]]:
    if net_arch is None:
        return dict(default)
    if isinstance(net_arch, (list, tuple)):
        return {keys[0]: list(net_arch), keys[1]: list(net_arch)}
    if isinstance(net_arch, Mapping) and set(net_arch) <= set(keys):
        return {k: list(net_arch.get(k, default[k])) for k in keys}
    raise ValueError(f"net_arch must be a list of layer sizes or a dict with keys {keys}, got {net_arch!r}")


class WorkerSetActorCriticPolicy(ActorCriticPolicy):
    """Equivariant PPO/A2C policy (``policy="WorkerSetPolicy"`` in the hyperparameter files).

    Mean action ``aᵢ = h(eᵢ)`` with ``h`` a shared MLP of sizes ``net_arch["pi"]`` (default: linear),
    one log-std for all workers, value ``V = MLP(c)`` with sizes ``net_arch["vf"]`` (default
    ``[64, 64]``). gSDE is not supported.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Any,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] = nn.Tanh,
        *args: Any,
        features_extractor_class: type[BaseFeaturesExtractor] = WorkerSetExtractor,
        use_sde: bool = False,
        **kwargs: Any,
    ) -> None:
        if use_sde:
            raise ValueError("WorkerSetActorCriticPolicy does not support gSDE (use_sde=True)")
        arch = _split_arch(net_arch, ("pi", "vf"), {"pi": [], "vf": [64, 64]})
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            arch,
            activation_fn,
            *args,
            features_extractor_class=features_extractor_class,
            use_sde=False,
            **kwargs,
        )

    def _build_mlp_extractor(self) -> None:
        layout = _layout_of(self.features_extractor, type(self).__name__)
        self.mlp_extractor = _WorkerSetLatents(layout, self.net_arch["vf"], self.activation_fn)

    def _build(self, lr_schedule: Any) -> None:
        super()._build(lr_schedule)  # builds SB3's flat action head; replaced below
        if not isinstance(self.action_dist, DiagGaussianDistribution):
            raise ValueError(f"WorkerSetActorCriticPolicy needs a Box action space, got {self.action_space}")
        layout = _layout_of(self.features_extractor, type(self).__name__)
        self.action_net = PerWorkerHead(layout, self.net_arch["pi"], self.activation_fn)
        self.log_std = nn.Parameter(torch.full((1,), float(self.log_std_init)), requires_grad=True)
        if self.ortho_init:
            self.action_net.apply(partial(self.init_weights, gain=np.sqrt(2)))
            self.init_weights(self.action_net.net[-1], gain=0.01)
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)  # type: ignore[call-arg]


class WorkerSetCritic(ContinuousCritic):
    """SAC/TD3 critic whose Q-networks are :class:`WorkerSetQNetwork` (sizes ``net_arch`` after pooling)."""

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        net_arch: list[int],
        features_extractor: BaseFeaturesExtractor,
        features_dim: int,
        activation_fn: type[nn.Module] = nn.ReLU,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            observation_space, action_space, net_arch, features_extractor, features_dim, activation_fn, **kwargs
        )
        layout = _layout_of(self.features_extractor, type(self).__name__)
        for idx in range(len(self.q_networks)):
            q_net = WorkerSetQNetwork(layout, net_arch, activation_fn)
            self.add_module(f"qf{idx}", q_net)
            self.q_networks[idx] = q_net


class WorkerSetSACActor(SACActor):
    """SAC actor with per-worker mean and log-std heads (``net_arch`` = the heads' hidden sizes)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.use_sde:
            raise ValueError("WorkerSetSACPolicy does not support gSDE (use_sde=True)")
        layout = _layout_of(self.features_extractor, "WorkerSetSACPolicy")
        self.latent_pi = nn.Identity()
        self.mu = PerWorkerHead(layout, self.net_arch, self.activation_fn)
        self.log_std = PerWorkerHead(layout, self.net_arch, self.activation_fn)  # type: ignore[assignment]


class WorkerSetTD3Actor(TD3Actor):
    """TD3 actor ``aᵢ = tanh(h(eᵢ))`` (``net_arch`` = the head's hidden sizes)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        layout = _layout_of(self.features_extractor, "WorkerSetTD3Policy")
        self.mu = nn.Sequential(PerWorkerHead(layout, self.net_arch, self.activation_fn), nn.Tanh())


class _WorkerSetOffPolicy:
    """What the SAC and TD3 policies share: ``net_arch`` split into ``pi``/``qf``, a per-worker actor
    (``actor_class``) and :class:`WorkerSetCritic`. Mixed in before SB3's policy class."""

    actor_class: type

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        lr_schedule: Any,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        *args: Any,
        features_extractor_class: type[BaseFeaturesExtractor] = WorkerSetExtractor,
        **kwargs: Any,
    ) -> None:
        arch = _split_arch(net_arch, ("pi", "qf"), {"pi": [], "qf": [64, 64]})
        super().__init__(  # type: ignore[call-arg]
            observation_space,
            action_space,
            lr_schedule,
            arch,
            *args,
            features_extractor_class=features_extractor_class,
            **kwargs,
        )

    def make_actor(self, features_extractor: BaseFeaturesExtractor | None = None) -> Any:
        actor_kwargs = self._update_features_extractor(self.actor_kwargs, features_extractor)  # type: ignore[attr-defined]
        return self.actor_class(**actor_kwargs).to(self.device)  # type: ignore[attr-defined]

    def make_critic(self, features_extractor: BaseFeaturesExtractor | None = None) -> ContinuousCritic:
        critic_kwargs = self._update_features_extractor(self.critic_kwargs, features_extractor)  # type: ignore[attr-defined]
        return WorkerSetCritic(**critic_kwargs).to(self.device)  # type: ignore[attr-defined]


class WorkerSetSACPolicy(_WorkerSetOffPolicy, SACPolicy):
    """Equivariant SAC policy: per-worker actor heads (``net_arch["pi"]``, default linear) and
    :class:`WorkerSetCritic` (``net_arch["qf"]``, default ``[64, 64]``)."""

    actor_class = WorkerSetSACActor


class WorkerSetTD3Policy(_WorkerSetOffPolicy, TD3Policy):
    """Equivariant TD3 policy: a per-worker actor head (``net_arch["pi"]``, default linear) and
    :class:`WorkerSetCritic` (``net_arch["qf"]``, default ``[64, 64]``)."""

    actor_class = WorkerSetTD3Actor


WORKER_SET_POLICIES: dict[str, type] = {
    "ppo": WorkerSetActorCriticPolicy,
    "a2c": WorkerSetActorCriticPolicy,
    "sac": WorkerSetSACPolicy,
    "td3": WorkerSetTD3Policy,
}


# ---------------------------------------------------------------------------------------------------
# Hyperparameters (RL-Zoo format)
# ---------------------------------------------------------------------------------------------------
# Names a policy_kwargs string may use. RL-Zoo evaluates these strings with eval(); we parse them
# (literals, dict(...), lists) and resolve only these names.
_SAFE_NAMES: dict[str, Any] = {
    "WorkerSetExtractor": WorkerSetExtractor,
    "FlattenExtractor": FlattenExtractor,
    **{f"{prefix}.{name}": getattr(nn, name) for prefix in ("nn", "th.nn", "torch.nn") for name in (
        "ReLU", "Tanh", "ELU", "LeakyReLU", "GELU", "SiLU", "Sigmoid",
    )},
    **{f"{prefix}.{name}": getattr(torch.optim, name) for prefix in ("optim", "th.optim", "torch.optim") for name in (
        "Adam", "AdamW", "RMSprop", "SGD",
    )},
}  # fmt: skip


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def _safe_eval(node: ast.AST, text: str) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        values = [_safe_eval(v, text) for v in node.elts]
        return values if isinstance(node, ast.List) else tuple(values)
    if isinstance(node, ast.Dict):
        return {_safe_eval(k, text): _safe_eval(v, text) for k, v in zip(node.keys, node.values, strict=True)}  # type: ignore[arg-type]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_safe_eval(node.operand, text)
    if isinstance(node, ast.Call) and _dotted(node.func) == "dict" and not node.args:
        return {kw.arg: _safe_eval(kw.value, text) for kw in node.keywords}
    name = _dotted(node)
    if name in _SAFE_NAMES:
        return _SAFE_NAMES[name]
    raise ValueError(
        f"policy_kwargs {text!r}: cannot use {ast.unparse(node)!r}; allowed: literals, lists, dict(...) "
        f"and the names {', '.join(sorted(_SAFE_NAMES))}"
    )


def parse_policy_kwargs(value: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """``policy_kwargs`` from an RL-Zoo string such as ``"dict(net_arch=[64, 64], activation_fn=nn.ReLU)"``
    (parsed, never ``eval``-ed: literals, ``dict(...)`` and a few known class names) or a mapping."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    if not isinstance(value, str):
        raise ValueError(f"policy_kwargs must be a string like 'dict(net_arch=[64])' or a dict, got {value!r}")
    try:
        tree = ast.parse(value.strip(), mode="eval")
    except SyntaxError as error:
        raise ValueError(f"policy_kwargs {value!r} is not a Python expression: {error.msg}") from None
    result = _safe_eval(tree.body, value)
    if not isinstance(result, dict):
        raise ValueError(f"policy_kwargs {value!r} must evaluate to a dict, got {type(result).__name__}")
    return result


def _check_algo(algo: str) -> str:
    key = str(algo).lower()
    if key not in ALGOS:
        raise ValueError(f"unknown SB3 algorithm {algo!r}; available: {', '.join(ALGOS)}")
    return key


def _bare_env_id(env_id: str) -> str:
    return env_id.split(":", 1)[1] if ":" in env_id else env_id


def hyperparams_file(algo: str) -> Path:
    """The packaged ``agents/hyperparams/<algo>.yml``."""
    return Path(str(resources.files(__package__) / "hyperparams" / f"{_check_algo(algo)}.yml"))


def _read_mapping(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"hyperparameter file {str(path)!r} does not exist")
    text = path.read_text()
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if not isinstance(data, Mapping):
        raise ValueError(
            f"{path}: expected a mapping of hyperparameters (or of env ids to them), got {type(data).__name__}"
        )
    return dict(data)


def load_hyperparams(
    algo: str, env_id: str, hyperparams: str | Path | Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The hyperparameters of ``algo`` on ``env_id``, RL-Zoo style.

    ``None``: the packaged ``agents/hyperparams/<algo>.yml`` entry for ``env_id``. A mapping: those
    values overriding the packaged entry. A path (YAML or JSON): that file replaces the packaged one;
    if it is keyed by env ids its ``env_id`` entry is used, otherwise the whole mapping.
    """
    algo, key = _check_algo(algo), _bare_env_id(env_id)
    if hyperparams is not None and not isinstance(hyperparams, Mapping):
        data = _read_mapping(hyperparams)
        if key in data:
            return dict(data[key])
        if any(isinstance(v, Mapping) and "/" in str(k) for k, v in data.items()):
            raise ValueError(f"{hyperparams}: no entry for {key!r}; entries: {', '.join(map(str, data))}")
        return data
    packaged = _read_mapping(hyperparams_file(algo))
    if key not in packaged:
        raise ValueError(
            f"no {algo} hyperparameters for {key!r} in {hyperparams_file(algo)} (entries: {', '.join(packaged)}); "
            "pass hyperparams= a dict or a YAML file"
        )
    return {**packaged[key], **dict(hyperparams or {})}


@dataclass
class TrainSpec:
    """What ``train_sb3`` builds from a hyperparameter entry (see :func:`training_spec`)."""

    policy: Any
    policy_kwargs: dict[str, Any]
    algo_kwargs: dict[str, Any]
    n_timesteps: int | None
    n_envs: int
    normalize: dict[str, Any] | None


_UNSUPPORTED_ZOO_KEYS = ("env_wrapper", "frame_stack", "callback", "vec_env_wrapper")


def _schedule(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("lin_"):
        return LinearSchedule(float(value[4:]), 0.0, 1.0)  # RL-Zoo: linear decay to 0 over training
    return value


def _number(value: Any) -> Any:
    if isinstance(value, str):  # YAML reads "3e-4" (no dot) as a string
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _normalize_kwargs(value: Any) -> dict[str, Any] | None:
    if value is None or value is False:
        return None
    if value is True:
        return {}
    if isinstance(value, str):
        return parse_policy_kwargs(value)
    if isinstance(value, Mapping):
        return dict(value)
    raise ValueError(f"normalize must be a bool, a dict of VecNormalize arguments or such a string, got {value!r}")


def _with_worker_features(policy: Any, policy_kwargs: Mapping[str, Any], worker_features: int) -> dict[str, Any]:
    """``policy_kwargs`` telling a ``WorkerSetExtractor`` how many per-worker columns the env observes,
    when that is not the full observation's 7 (an explicit ``worker_features`` is kept)."""
    out = dict(policy_kwargs)
    extractor = out.get("features_extractor_class")
    if extractor is None and policy in WORKER_SET_POLICIES.values():
        extractor = WorkerSetExtractor
    if (
        worker_features != N_WORKER_FEATURES
        and isinstance(extractor, type)
        and issubclass(extractor, WorkerSetExtractor)
    ):
        out["features_extractor_kwargs"] = {
            "worker_features": worker_features,
            **out.get("features_extractor_kwargs", {}),
        }
    return out


def training_spec(algo: str, hp: Mapping[str, Any], action_space: spaces.Box | None = None) -> TrainSpec:
    """Split an RL-Zoo entry into the policy class (``WorkerSetPolicy`` → this algorithm's equivariant
    policy; SB3 names such as ``MlpPolicy`` pass through), parsed ``policy_kwargs``, the algorithm's
    keyword arguments (``lin_<x>`` → linear schedule; ``noise_type``/``noise_std`` → action noise,
    which needs ``action_space``), ``n_timesteps``, ``n_envs`` and ``normalize``. Unknown keys raise
    ``ValueError`` listing the algorithm's parameters."""
    hp = dict(hp)
    bad = [k for k in _UNSUPPORTED_ZOO_KEYS if k in hp]
    if bad:
        raise ValueError(f"hyperparameter key(s) {bad} are RL-Zoo features that train_sb3 does not support")
    policy = hp.pop("policy", "WorkerSetPolicy")
    if policy == "WorkerSetPolicy":
        policy = WORKER_SET_POLICIES[algo]
    policy_kwargs = parse_policy_kwargs(hp.pop("policy_kwargs", None))
    n_timesteps = hp.pop("n_timesteps", None)
    n_envs = int(hp.pop("n_envs", 1))
    normalize = _normalize_kwargs(hp.pop("normalize", None))
    noise_type, noise_std = hp.pop("noise_type", None), hp.pop("noise_std", None)
    kwargs = {k: _schedule(_number(v)) for k, v in hp.items()}
    if noise_type is not None:
        if action_space is None:
            raise ValueError("noise_type needs the env's action space")
        size, sigma = action_space.shape[0], float(noise_std if noise_std is not None else 0.1)
        if noise_type == "normal":
            kwargs["action_noise"] = NormalActionNoise(np.zeros(size), sigma * np.ones(size))
        elif noise_type == "ornstein-uhlenbeck":
            kwargs["action_noise"] = OrnsteinUhlenbeckActionNoise(np.zeros(size), sigma * np.ones(size))
        else:
            raise ValueError(f"noise_type must be 'normal' or 'ornstein-uhlenbeck', got {noise_type!r}")
    valid = [p for p in inspect.signature(ALGOS[algo]).parameters if p not in ("self", "policy", "env")]
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise ValueError(f"{algo} got unknown hyperparameter(s) {unknown}; valid: {valid}")
    return TrainSpec(
        policy=policy,
        policy_kwargs=policy_kwargs,
        algo_kwargs=kwargs,
        n_timesteps=None if n_timesteps is None else int(float(n_timesteps)),
        n_envs=n_envs,
        normalize=normalize,
    )


# ---------------------------------------------------------------------------------------------------
# Environments
# ---------------------------------------------------------------------------------------------------
def _env_spec(env_id: str) -> gym.envs.registration.EnvSpec:
    import byz_gym  # noqa: F401  (registers the ids)

    key = _bare_env_id(env_id)
    if key not in gym.registry:
        ids = [i for i, s in gym.registry.items() if str(s.entry_point).startswith("byz_gym.")]
        raise ValueError(f"unknown env id {key!r}; byz-gym ids: {', '.join(ids)}")
    return gym.registry[key]


def env_make_kwargs(env_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """``gym.make`` keywords for ``env_kwargs``: a ``horizon`` override also sets ``max_episode_steps``
    (the registered time limit is the preset's horizon) unless that is given too."""
    kwargs = dict(env_kwargs or {})
    if "horizon" in kwargs and "max_episode_steps" not in kwargs:
        kwargs["max_episode_steps"] = kwargs["horizon"]
    return kwargs


@dataclass(frozen=True)
class _WorkerProcessEnv:
    """Env factory for ``SubprocVecEnv`` workers: one torch thread per worker process (several
    processes each running a multi-threaded OpenMP pool on shared cores are many times slower)."""

    env_id: str

    def __call__(self, **kwargs: Any) -> gym.Env:
        torch.set_num_threads(1)
        return gym.make(self.env_id, **kwargs)


def make_sb3_env(
    env_id: str,
    n_envs: int = 1,
    *,
    seed: int | None = 0,
    vec: str = "dummy",
    env_kwargs: Mapping[str, Any] | None = None,
    monitor_dir: str | Path | None = None,
    normalize: bool | Mapping[str, Any] | None = None,
    gamma: float | None = None,
) -> VecEnv:
    """``n_envs`` copies of ``env_id`` (env i seeded ``seed + i`` at its first reset), each in a
    ``Monitor`` (CSV under ``monitor_dir`` when given, with the final ``test_accuracy`` and
    ``byzantine_credit`` of each episode), in a ``DummyVecEnv`` or a ``SubprocVecEnv`` started with
    ``spawn`` (one torch thread per worker process); then ``VecNormalize(**normalize)`` when
    ``normalize`` is true or a dict."""
    if vec not in ("dummy", "subproc"):
        raise ValueError(f"vec must be 'dummy' or 'subproc', got {vec!r}")
    if int(n_envs) < 1:
        raise ValueError(f"n_envs must be a positive integer, got {n_envs!r}")
    spec = _env_spec(env_id)
    byz = str(spec.entry_point).startswith("byz_gym.")
    # "module:id" makes gym.make import byz_gym first, which a spawned worker process needs.
    make_id = f"byz_gym:{spec.id}" if byz else spec.id
    kwargs = env_make_kwargs(env_kwargs)
    if vec == "subproc":  # fail here with a clear message rather than in a worker process
        gym.make(make_id, **kwargs).close()
    venv = make_vec_env(
        _WorkerProcessEnv(make_id) if vec == "subproc" else make_id,
        n_envs=int(n_envs),
        seed=seed,
        monitor_dir=None if monitor_dir is None else str(monitor_dir),
        env_kwargs=kwargs,
        vec_env_cls=SubprocVecEnv if vec == "subproc" else DummyVecEnv,
        vec_env_kwargs={"start_method": "spawn"} if vec == "subproc" else None,
        monitor_kwargs={"info_keywords": INFO_KEYWORDS} if byz else None,
    )
    norm = _normalize_kwargs(normalize)
    if norm is not None:
        if gamma is not None:
            norm.setdefault("gamma", gamma)
        venv = VecNormalize(venv, **norm)
    return venv


# ---------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------
class TqdmCallback(BaseCallback):
    """A tqdm progress bar over environment steps (SB3's own bar needs ``rich``), with the mean
    return of the last episodes."""

    def __init__(self, total_timesteps: int, desc: str = "training") -> None:
        super().__init__()
        self.total, self.desc = int(total_timesteps), desc
        self._bar: Any = None
        self._start = 0

    def _on_training_start(self) -> None:
        from tqdm.auto import tqdm

        self._start = self.model.num_timesteps
        self._bar = tqdm(total=self.total, desc=self.desc, unit="step", dynamic_ncols=True)

    def _on_step(self) -> bool:
        done = self.model.num_timesteps - self._start
        self._bar.update(max(0, min(done, self.total) - self._bar.n))
        buffer = self.model.ep_info_buffer
        if buffer and self.n_calls % 50 == 0:
            self._bar.set_postfix(ep_return=f"{np.mean([e['r'] for e in buffer]):.4g}", refresh=False)
        return True

    def _on_training_end(self) -> None:
        if self._bar is not None:
            self._bar.close()


def default_run_dir(algo: str, env_id: str, seed: int, root: str | Path = "runs") -> Path:
    """``runs/<algo>/<env-name>_s<seed>``, e.g. ``runs/ppo/Digits-v0_s0`` for ``ByzGym/Digits-v0``."""
    name = _bare_env_id(env_id).split("/")[-1]
    return Path(root) / str(algo).lower() / f"{name}_s{int(seed)}"


def _json_safe(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    return repr(value)


def versions() -> dict[str, str]:
    """Library versions recorded in each run's ``config.json``."""
    import stable_baselines3

    import byz_gym

    return {
        "byz_gym": byz_gym.__version__,
        "stable_baselines3": stable_baselines3.__version__,
        "torch": torch.__version__,
        "gymnasium": gym.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def train_sb3(
    algo: str,
    env_id: str,
    total_timesteps: int | None = None,
    seed: int = 0,
    *,
    n_envs: int | None = None,
    vec: str = "dummy",
    normalize: bool | Mapping[str, Any] | None = None,
    hyperparams: str | Path | Mapping[str, Any] | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    tensorboard: str | Path | None = None,
    out_dir: str | Path | None = None,
    progress: bool = True,
    device: str | None = None,
    verbose: int = 0,
) -> tuple[BaseAlgorithm, Path]:
    """Train ``algo`` (``ppo``, ``a2c``, ``sac``, ``td3``) on ``env_id`` and save the run.

    ``hyperparams``: see :func:`load_hyperparams` (default: the packaged entry for ``env_id``).
    ``total_timesteps``, ``n_envs`` and ``normalize`` default to the hyperparameters' ``n_timesteps``,
    ``n_envs`` (else 1) and ``normalize`` (else off); ``normalize`` may be a dict of ``VecNormalize``
    arguments. Envs run in a ``DummyVecEnv`` or (``vec="subproc"``) a ``SubprocVecEnv`` started
    with ``spawn``. ``tensorboard`` is SB3's ``tensorboard_log`` folder. ``device`` defaults to the
    hyperparameters' ``device``, else ``"cpu"`` for PPO/A2C (SB3's advice for MLP policies) and
    ``"auto"`` for SAC/TD3.

    The run folder (``out_dir``, default :func:`default_run_dir`) receives ``monitor/<i>.monitor.csv``
    during training and, at the end, each written atomically: ``model.zip``, ``vecnormalize.pkl``
    (when normalising; a stale one is removed otherwise) and ``config.json`` (algorithm, env id and
    kwargs, timesteps, seed, hyperparameters, library versions). Returns ``(model, run_dir)``.
    """
    from byz_gym.io import atomic_write_bytes, write_json

    algo = _check_algo(algo)
    spec_env = _env_spec(env_id)
    hp = load_hyperparams(algo, env_id, hyperparams)
    probe = gym.make(spec_env.id, **env_make_kwargs(env_kwargs))  # validates env_kwargs, gives the spaces
    action_space, worker_features = probe.action_space, len(probe.unwrapped.worker_features)
    probe.close()
    spec = training_spec(algo, hp, action_space)
    policy_kwargs = _with_worker_features(spec.policy, spec.policy_kwargs, worker_features)
    timesteps = spec.n_timesteps if total_timesteps is None else int(total_timesteps)
    if timesteps is None or timesteps < 1:
        raise ValueError(
            f"total_timesteps must be a positive integer (or n_timesteps in the hyperparameters), got {timesteps}"
        )
    n_envs = spec.n_envs if n_envs is None else int(n_envs)
    norm = spec.normalize if normalize is None else _normalize_kwargs(normalize)
    if tensorboard is not None:
        try:
            import tensorboard as _tb  # noqa: F401
        except ImportError:
            raise ValueError("tensorboard logging needs the tensorboard package: pip install tensorboard") from None
    run_dir = Path(out_dir) if out_dir is not None else default_run_dir(algo, spec_env.id, seed)
    monitor_dir = run_dir / MONITOR_DIR
    for stale in monitor_dir.glob("*.monitor.csv"):
        stale.unlink()

    venv = make_sb3_env(
        spec_env.id,
        n_envs,
        seed=seed,
        vec=vec,
        env_kwargs=env_kwargs,
        monitor_dir=monitor_dir,
        normalize=norm,
        gamma=spec.algo_kwargs.get("gamma"),
    )
    algo_kwargs = dict(spec.algo_kwargs)
    default_device = algo_kwargs.pop("device", "cpu" if algo in ("ppo", "a2c") else "auto")
    start = time.perf_counter()
    try:
        model = ALGOS[algo](
            spec.policy,
            venv,
            seed=seed,
            policy_kwargs=policy_kwargs or None,
            tensorboard_log=None if tensorboard is None else str(tensorboard),
            device=default_device if device is None else device,
            verbose=verbose,
            **algo_kwargs,
        )
        callback = TqdmCallback(timesteps, desc=f"{algo} on {spec_env.id}") if progress else None
        model.learn(timesteps, callback=callback, tb_log_name=f"{algo}_{run_dir.name}")
    finally:
        venv.close()

    buffer = io.BytesIO()
    model.save(buffer)
    atomic_write_bytes(run_dir / MODEL_FILE, buffer.getvalue())
    if isinstance(venv, VecNormalize):
        atomic_write_bytes(run_dir / VECNORMALIZE_FILE, pickle.dumps(venv))
    else:
        (run_dir / VECNORMALIZE_FILE).unlink(missing_ok=True)
    config = {
        "algo": algo,
        "env_id": spec_env.id,
        "env_kwargs": dict(env_kwargs or {}),
        "total_timesteps": timesteps,
        "num_timesteps": int(model.num_timesteps),
        "seed": int(seed),
        "n_envs": n_envs,
        "vec": vec,
        "normalize": norm,
        "policy": spec.policy if isinstance(spec.policy, str) else spec.policy.__name__,
        "hyperparams": hp,
        "device": str(model.device),
        "files": {"model": MODEL_FILE, "vecnormalize": VECNORMALIZE_FILE if norm is not None else None},
        "wall_seconds": time.perf_counter() - start,
        "versions": versions(),
    }
    write_json(run_dir / CONFIG_FILE, _json_safe(config))
    return model, run_dir


# ---------------------------------------------------------------------------------------------------
# Loading, evaluation and the policy adapter
# ---------------------------------------------------------------------------------------------------
def _resolve_model_path(path: str | Path) -> Path:
    path = Path(path)
    if path.is_dir():
        if (path / MODEL_FILE).is_file():
            return path / MODEL_FILE
        zips = sorted(path.glob("*.zip"))
        if len(zips) == 1:
            return zips[0]
        raise FileNotFoundError(
            f"no SB3 model in folder {str(path)!r}: expected {MODEL_FILE} (written by train_sb3 / byz-gym train)"
            + (f"; found several zips {[z.name for z in zips]}" if zips else "")
        )
    if path.is_file():
        return path
    if path.with_name(path.name + ".zip").is_file():
        return path.with_name(path.name + ".zip")
    raise FileNotFoundError(f"SB3 model {str(path)!r} not found: pass a run folder or a model .zip")


def _read_config(model_path: Path) -> dict[str, Any]:
    config_file = model_path.parent / CONFIG_FILE
    if config_file.is_file():
        try:
            return json.loads(config_file.read_text())
        except json.JSONDecodeError:
            return {}
    return {}


def detect_algo(model_path: str | Path) -> str:
    """Which algorithm saved ``model_path``: ``config.json`` beside it, else the zip's saved attributes."""
    model_path = _resolve_model_path(model_path)
    algo = _read_config(model_path).get("algo")
    if algo in ALGOS:
        return algo
    try:
        with zipfile.ZipFile(model_path) as archive:
            data = json.loads(archive.read("data"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as error:
        raise ValueError(f"{model_path} is not an SB3 model zip ({error})") from None
    for key, name in (
        ("clip_range", "ppo"),
        ("target_policy_noise", "td3"),
        ("target_entropy", "sac"),
        ("n_steps", "a2c"),
    ):
        if key in data:
            return name
    raise ValueError(f"cannot tell which algorithm saved {model_path}; expected one of {', '.join(ALGOS)}")


def _stats_file(model_path: Path, config: Mapping[str, Any]) -> Path | None:
    """``vecnormalize.pkl`` beside the model, unless its ``config.json`` says the run did not normalise."""
    stats_file = model_path.parent / VECNORMALIZE_FILE
    if config and not (config.get("files") or {}).get("vecnormalize", VECNORMALIZE_FILE):
        return None
    return stats_file if stats_file.is_file() else None


def _read_vecnormalize(stats_file: Path | None) -> VecNormalize | None:
    if stats_file is None:
        return None
    with stats_file.open("rb") as handle:
        vec_normalize = pickle.load(handle)
    if not isinstance(vec_normalize, VecNormalize):
        raise ValueError(f"{stats_file} does not hold VecNormalize statistics")
    vec_normalize.training, vec_normalize.norm_reward = False, False
    return vec_normalize


def load_sb3(path: str | Path, *, device: str = "cpu") -> tuple[BaseAlgorithm, VecNormalize | None, dict[str, Any]]:
    """``(model, vec_normalize, config)`` from a run folder or a model zip. ``vec_normalize`` holds the
    observation statistics (``vecnormalize.pkl`` beside the model; ``None`` if absent) in eval mode,
    without an env: use ``vec_normalize.normalize_obs(obs)``, or ``set_venv`` it onto one env."""
    model_path = _resolve_model_path(path)
    config = _read_config(model_path)
    algo = detect_algo(model_path)
    model = ALGOS[algo].load(model_path, device=device)
    vec_normalize = _read_vecnormalize(_stats_file(model_path, config))
    config.setdefault("algo", algo)
    return model, vec_normalize, config


@dataclass
class EvaluationResult:
    """Returns and end-of-episode numbers of a model over seeds x episodes."""

    model: str
    algo: str
    env_id: str
    seeds: list[int]
    episodes: int
    returns: list[float]
    lengths: list[int]
    final_test_accuracy: list[float] = field(default_factory=list)
    byzantine_credit: list[float] = field(default_factory=list)  # per episode: mean over rounds
    env_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def mean_return(self) -> float:
        return float(np.mean(self.returns))

    @property
    def std_return(self) -> float:
        return float(np.std(self.returns))

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record.update(mean_return=self.mean_return, std_return=self.std_return)
        return _json_safe(record)

    def summary(self) -> str:
        """Human-readable lines: mean ± std of the episode return and of the end-of-episode metrics."""

        def stat(values: Sequence[float]) -> str:
            values = np.asarray(values, dtype=np.float64)
            return f"{np.nanmean(values):.4g} ± {np.nanstd(values):.2g}" if values.size else "n/a"

        lines = [
            f"{self.algo} model {self.model} on {self.env_id}: seeds {self.seeds} x {self.episodes} episode(s)",
            f"episode return: {stat(self.returns)} (n={len(self.returns)})",
        ]
        if self.final_test_accuracy:
            lines.append(f"final test accuracy: {stat(self.final_test_accuracy)}")
        if self.byzantine_credit:
            lines.append(f"credit on Byzantine workers: {stat(self.byzantine_credit)}")
        return "\n".join(lines)


def evaluate_sb3(
    path: str | Path,
    env_id: str | None = None,
    *,
    seeds: Iterable[int] = (0,),
    episodes: int = 1,
    env_kwargs: Mapping[str, Any] | None = None,
    deterministic: bool = True,
) -> EvaluationResult:
    """Evaluate a saved model with SB3's ``evaluate_policy``: ``episodes`` episodes from each seed.
    ``env_id`` and ``env_kwargs`` default to the training run's (``config.json``); saved
    ``VecNormalize`` statistics normalise the observations (returns are the raw rewards)."""
    if int(episodes) < 1:
        raise ValueError(f"episodes must be a positive integer, got {episodes!r}")
    model, vec_normalize, config = load_sb3(path)
    stats_file = _stats_file(_resolve_model_path(path), config)
    env_id = env_id or config.get("env_id")
    if env_id is None:
        raise ValueError(f"no env id: {path} has no config.json; pass env_id")
    env_kwargs = dict(config.get("env_kwargs") or {}) if env_kwargs is None else dict(env_kwargs)
    seeds = [int(s) for s in seeds]
    result = EvaluationResult(
        str(path), config["algo"], _bare_env_id(env_id), seeds, int(episodes), [], [], env_kwargs=env_kwargs
    )
    for seed in seeds:
        venv = make_sb3_env(env_id, 1, seed=seed, env_kwargs=env_kwargs)
        try:
            _check_spaces(model, venv.observation_space, venv.action_space, where=f"{env_id} with {env_kwargs}")
        except ValueError:
            venv.close()
            raise
        if vec_normalize is not None:
            normalizer = _read_vecnormalize(stats_file)  # a fresh copy: a VecNormalize wraps one venv for life
            assert normalizer is not None
            normalizer.set_venv(venv)
            venv = normalizer
        credits: list[float] = []

        def collect(local_vars: dict[str, Any], _globals: dict[str, Any], credits: list[float] = credits) -> None:
            info = local_vars["info"]
            credits.append(float(info.get("byzantine_credit", np.nan)))
            if local_vars["done"]:
                result.final_test_accuracy.append(float(info.get("test_accuracy", np.nan)))
                result.byzantine_credit.append(float(np.nanmean(credits)) if np.isfinite(credits).any() else np.nan)
                credits.clear()

        try:
            returns, lengths = evaluate_policy(
                model,
                venv,
                n_eval_episodes=int(episodes),
                deterministic=deterministic,
                return_episode_rewards=True,
                callback=collect,
            )
        finally:
            venv.close()
        result.returns.extend(float(r) for r in returns)
        result.lengths.extend(int(n) for n in lengths)
    return result


def _check_spaces(
    model: BaseAlgorithm, observation_space: spaces.Space, action_space: spaces.Space, where: str
) -> None:
    if model.observation_space.shape != observation_space.shape or model.action_space.shape != action_space.shape:
        raise ValueError(
            f"the model was trained on observations {model.observation_space.shape} and actions "
            f"{model.action_space.shape} (n = {model.action_space.shape[0]} workers) but {where} has "
            f"{observation_space.shape} and {action_space.shape}: use the same n_workers"
        )


@register_policy("sb3")
class SB3Policy(Policy):
    """A saved Stable-Baselines3 model as a policy: ``make_policy("sb3:RUN_DIR")`` or
    ``make_policy("sb3", path=...)``. ``path`` is a run folder of ``train_sb3`` / ``byz-gym train``
    or a model zip; saved ``VecNormalize`` statistics normalise the observation. Each round it returns
    ``Decision(action=model.predict(obs, deterministic=deterministic)[0])``.
    """

    name = "sb3"

    def __init__(self, path: str, *, deterministic: bool = True, device: str = "cpu") -> None:
        self.path = str(path)
        self.model, self.vec_normalize, self.config = load_sb3(path, device=device)
        self.algo = self.config["algo"]
        self.name = f"sb3:{self.algo}"  # type: ignore[misc]  (instance label for result records)
        self.deterministic = bool(deterministic)

    def reset(self, env: Any, seed: int) -> None:
        _check_spaces(self.model, env.observation_space, env.action_space, where="this env")
        if getattr(env, "action_mode", "softmax") != "softmax":
            raise ValueError(
                "SB3 models act in the env's softmax action space; build the env with action_mode='softmax'"
            )

    def act(self, round_input: RoundInput) -> Decision:
        obs = np.asarray(round_input.observation, dtype=np.float32)
        if self.vec_normalize is not None:
            obs = self.vec_normalize.normalize_obs(obs).astype(np.float32)
        action, _ = self.model.predict(obs, deterministic=self.deterministic)
        return Decision(action=np.clip(np.asarray(action, dtype=np.float32).reshape(-1), -1.0, 1.0))
