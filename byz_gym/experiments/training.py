"""Training, evaluation and plotting entry points behind ``byz-gym train | evaluate | plot``.

``train`` trains a Stable-Baselines3 algorithm (``agents.sb3.train_sb3``) or the paper's GAA agent
(Algorithm 1, ``agents.gaa_trainer.GAATrainer``) on a registered env id and saves a run folder,
``runs/<algo>/<env-name>_s<seed>`` by default; both kinds of folder play back with
``make_policy("sb3:DIR")`` / ``make_policy("gaa:DIR")``.
"""

from __future__ import annotations

import inspect
import json
import math
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from byz_gym.experiments.plots import plot_accuracy_curves
from byz_gym.experiments.runner import RunResult
from byz_gym.experiments.sweep import read_results as read_records
from byz_gym.io import write_json
from byz_gym.sim import Scenario

__all__ = [
    "SB3_ALGOS",
    "TRAIN_ALGOS",
    "evaluate",
    "plot_results",
    "read_results",
    "scenario_for_env",
    "train",
    "train_gaa_run",
]

SB3_ALGOS = ("ppo", "sac", "td3", "a2c")
TRAIN_ALGOS = (*SB3_ALGOS, "gaa")
_GAA_FIXED_KEYS = ("n_workers", "seed", "state", "model_dim")  # set by train_gaa_run (features state)


def scenario_for_env(env_id: str, env_kwargs: Mapping[str, Any] | None = None) -> Scenario:
    """The ``Scenario`` behind a registered byz-gym id with the Scenario fields of ``env_kwargs``
    applied (env-only keywords such as ``temperature`` are ignored)."""
    import gymnasium as gym

    from byz_gym.env import ByzantineAggregationEnv, resolve_scenario

    # gym.make keywords that configure the env or its time limit, not the Scenario
    parameters = inspect.signature(ByzantineAggregationEnv).parameters.values()
    env_only = {p.name for p in parameters if p.kind is p.KEYWORD_ONLY} | {"max_episode_steps"}

    key = env_id.split(":", 1)[1] if ":" in env_id else env_id
    spec = gym.registry.get(key)
    if spec is None or not str(spec.entry_point).startswith("byz_gym."):
        import byz_gym

        raise ValueError(f"unknown byz-gym env id {key!r}; registered: {', '.join(byz_gym.registered_env_ids())}")
    kwargs = {**spec.kwargs, **dict(env_kwargs or {})}
    scenario = kwargs.pop("scenario", "Digits")
    overrides = {k: v for k, v in kwargs.items() if k not in env_only}
    return resolve_scenario(scenario, overrides)


def _load_mapping(value: str | Path | Mapping[str, Any] | None, env_id: str) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    import yaml

    path = Path(value)
    if not path.is_file():
        raise FileNotFoundError(f"hyperparameter file {str(path)!r} does not exist")
    data = json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: expected a mapping of hyperparameters, got {type(data).__name__}")
    key = env_id.split(":", 1)[1] if ":" in env_id else env_id
    return dict(data.get(key, data))


def _versions() -> dict[str, str]:
    from agents.sb3 import versions

    return versions()


def train_gaa_run(
    env_id: str,
    timesteps: int | None = None,
    seed: int = 0,
    *,
    env_kwargs: Mapping[str, Any] | None = None,
    hyperparams: str | Path | Mapping[str, Any] | None = None,
    out_dir: str | Path | None = None,
    progress: bool = True,
) -> Path:
    """Train GAA with Algorithm 1 on the scenario of ``env_id`` and save it to a run folder.

    ``timesteps`` counts server rounds: ``episodes = max(1, ceil(timesteps / horizon))`` (default:
    ``hyperparams["episodes"]``, else 5). ``hyperparams`` (dict or YAML/JSON file): ``GAA``
    constructor keys (``unit``, ``hidden``, ...) build the agent (``GAA(..., seed=seed)``); the rest go to ``GAATrainer``
    (``segment_length``, ``segments``, ``gamma``, ``agent_learning_rate``, ...). Episode seeds derive
    from ``seed``. The folder gets ``gaa_config.json`` and ``gaa_weights.pt`` (``GAA.save``) and
    ``config.json``, each replaced atomically. Returns the folder.
    """
    from agents.gaa import GAA, unobserved_features
    from agents.gaa_trainer import GAATrainer
    from agents.sb3 import default_run_dir

    scenario = scenario_for_env(env_id, env_kwargs)
    hp = _load_mapping(hyperparams, env_id)
    agent_keys = [k for k in inspect.signature(GAA).parameters if k not in _GAA_FIXED_KEYS]
    agent_kwargs = {k: hp.pop(k) for k in agent_keys if k in hp}
    for reserved in ("seeds", "optimizer"):
        if reserved in hp:
            raise ValueError(f"hyperparameter {reserved!r} is not settable here (seeds derive from seed)")
    episodes_hp = hp.pop("episodes", None)
    if timesteps is not None:
        if int(timesteps) < 1:
            raise ValueError(f"timesteps must be a positive integer, got {timesteps}")
        episodes = max(1, math.ceil(int(timesteps) / scenario.horizon))
    else:
        episodes = int(episodes_hp) if episodes_hp is not None else 5
    seeds = [int(s) for s in np.random.SeedSequence(int(seed)).generate_state(episodes)]
    observed = dict(env_kwargs or {}).get("features")
    agent_kwargs.setdefault("ignore_features", unobserved_features(observed))  # read what the env observes
    agent = GAA(agent_kwargs.pop("unit", "equivariant"), n_workers=scenario.n_workers, seed=int(seed), **agent_kwargs)
    agent.check_observed(observed)
    try:
        trainer = GAATrainer(scenario, agent, episodes=episodes, seeds=seeds, **hp)
    except TypeError as error:  # an unknown trainer keyword
        raise ValueError(f"bad GAA hyperparameter: {error}") from None
    run_dir = Path(out_dir) if out_dir is not None else default_run_dir("gaa", env_id, seed)

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=episodes * trainer.segments, desc=f"gaa on {env_id}", unit="segment", dynamic_ncols=True)

    def callback(record: Any) -> None:
        if bar is not None:
            bar.update(1)
            bar.set_postfix(episode=record.episode, loss=f"{record.loss:.4g}", refresh=False)

    start = time.perf_counter()
    try:
        trainer.train(callback=callback)
    finally:
        if bar is not None:
            bar.close()
    agent.save(run_dir)  # each file written atomically
    losses = [r.loss for r in trainer.history]
    config = {
        "algo": "gaa",
        "env_id": env_id,
        "env_kwargs": dict(env_kwargs or {}),
        "timesteps": None if timesteps is None else int(timesteps),
        "seed": int(seed),
        "episodes": episodes,
        "episode_seeds": seeds,
        "segment_length": trainer.segment_length,
        "segments": trainer.segments,
        "gamma": trainer.gamma,
        "hyperparams": {**agent_kwargs, **hp, **({"episodes": episodes_hp} if episodes_hp is not None else {})},
        "agent": agent.config,
        "scenario": scenario.to_dict(),
        "optimizer_steps": trainer.optimizer_steps,
        "final_segment_loss": losses[-1] if losses and math.isfinite(losses[-1]) else None,
        "wall_seconds": time.perf_counter() - start,
        "versions": _versions(),
    }
    write_json(run_dir / "config.json", config)
    return run_dir


def train(
    algo: str,
    env_id: str = "ByzGym/Digits-v0",
    timesteps: int | None = None,
    seed: int = 0,
    *,
    n_envs: int | None = None,
    vec: str = "dummy",
    normalize: bool | None = None,
    tensorboard: str | Path | None = None,
    out_dir: str | Path | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    hyperparams: str | Path | Mapping[str, Any] | None = None,
    progress: bool = True,
) -> Path:
    """Train ``algo`` (one of :data:`TRAIN_ALGOS`) on ``env_id`` and return the run folder.

    SB3 algorithms go to ``agents.sb3.train_sb3`` (``timesteps`` = env steps); ``"gaa"`` to
    :func:`train_gaa_run` (``timesteps`` = server rounds), which has no vectorised envs,
    normalisation or tensorboard logging.
    """
    key = str(algo).lower()
    if key not in TRAIN_ALGOS:
        raise ValueError(f"unknown algorithm {algo!r}; available: {', '.join(TRAIN_ALGOS)}")
    if key == "gaa":
        given = {
            "n_envs": n_envs is not None,
            "vec": vec != "dummy",
            "normalize": bool(normalize),
            "tensorboard": tensorboard is not None,
        }
        bad = [name for name, is_set in given.items() if is_set]
        if bad:
            raise ValueError(f"{', '.join(bad)} apply to SB3 algorithms only, not to gaa")
        return train_gaa_run(
            env_id,
            timesteps,
            seed,
            env_kwargs=env_kwargs,
            hyperparams=hyperparams,
            out_dir=out_dir,
            progress=progress,
        )
    from agents.sb3 import train_sb3

    _, run_dir = train_sb3(
        key,
        env_id,
        timesteps,
        seed,
        n_envs=n_envs,
        vec=vec,
        normalize=normalize,
        hyperparams=hyperparams,
        env_kwargs=env_kwargs,
        tensorboard=tensorboard,
        out_dir=out_dir,
        progress=progress,
    )
    return run_dir


def evaluate(
    path: str | Path,
    env_id: str | None = None,
    *,
    seeds: Iterable[int] = (0,),
    episodes: int = 1,
    env_kwargs: Mapping[str, Any] | None = None,
) -> Any:
    """Evaluate a saved SB3 model (run folder or zip) with SB3's ``evaluate_policy``; returns an
    ``agents.sb3.EvaluationResult`` (``.summary()`` prints mean ± std of the episode return)."""
    from agents.sb3 import evaluate_sb3

    if Path(path, "gaa_config.json").is_file():
        raise ValueError(
            f"{path} holds a GAA agent; evaluate it with `byz-gym run --policy gaa:{path} --seed S` "
            "(evaluate takes SB3 models)"
        )
    return evaluate_sb3(path, env_id, seeds=seeds, episodes=episodes, env_kwargs=env_kwargs)


def read_results(path: str | Path) -> list[RunResult]:
    """The ``RunResult`` records of a results JSON Lines file (``byz-gym demo`` or ``byz-gym sweep``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"results file {str(path)!r} does not exist")
    results = []
    for number, record in enumerate(read_records(path), start=1):
        try:
            results.append(RunResult.from_dict(record))
        except (ValueError, TypeError) as error:
            raise ValueError(f"{path}: record {number}: {error}") from None
    if not results:
        raise ValueError(f"{path} holds no run records")
    return results


def plot_results(results: str | Path, out: str | Path, title: str = "") -> Path:
    """PNG of the test-accuracy curves of every run in a results JSON Lines file."""
    return plot_accuracy_curves(read_results(results), out, title=title or f"test accuracy ({Path(results).name})")
