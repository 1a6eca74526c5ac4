"""Run one policy on one env for one seed and summarise the run."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from byz_gym.experiments.detection import DetectionTracker
from byz_gym.policy import Decision, Policy, RoundInput

__all__ = ["RunResult", "run_episode"]


@dataclass
class RunResult:
    """Summary of one training run; ``to_dict`` is the JSON record the CLI prints."""

    env: str
    policy: str
    seed: int
    rounds: int  # rounds actually run (fewer than asked if the run diverged)
    final_test_accuracy: float
    byzantine_credit_mass: float  # mean over rounds of the credit on Byzantine workers (NaN if no credit)
    final_qv_loss: float
    wall_seconds: float
    privileged: bool = False
    terminated: bool = False
    termination_reason: str = ""
    total_reward: float = 0.0
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    accuracy_curve: list[tuple[int, float]] = field(default_factory=list)  # (round, test accuracy)
    # {"gaa+"|"geomed+": {K: mean precision}} over the second half of the rounds (``detection=True``)
    detection: dict[str, dict[int, float]] = field(default_factory=dict)
    # ``record_credits=True``: the credit of every round [rounds][n] and which workers were Byzantine
    # in at least one of those rounds (the initially Byzantine ones for a static attack)
    credits: list[list[float]] = field(default_factory=list)
    byzantine_workers: list[bool] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe record: tuples become lists, NaN and Inf become ``None``."""
        record = asdict(self)
        record["accuracy_curve"] = [list(point) for point in self.accuracy_curve]
        return _json_safe(record)

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> RunResult:
        """Inverse of ``to_dict`` (after a JSON round trip); keys that are not fields are ignored."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        required = [n for n, f in fields.items() if f.default is MISSING and f.default_factory is MISSING]
        missing = [name for name in required if name not in record]
        if missing:
            raise ValueError(f"not a run record: missing {missing}")
        values = {
            k: (float("nan") if v is None and fields[k].type == "float" else v)
            for k, v in record.items()
            if k in fields
        }
        values["accuracy_curve"] = [
            (int(r), float("nan") if a is None else float(a)) for r, a in record.get("accuracy_curve", [])
        ]
        values["detection"] = {
            method: {int(k): float("nan") if v is None else float(v) for k, v in scores.items()}
            for method, scores in (record.get("detection") or {}).items()
        }
        return cls(**values)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _step(env: Any, decision: Decision):
    if decision.action is not None:
        return env.step(decision.action)
    if decision.credit is not None:
        credit = decision.credit
        if isinstance(credit, torch.Tensor):
            credit = credit.detach().cpu().numpy()
        return env.step_credit(credit)
    return env.step_update(decision.update)


def run_episode(
    env_id: str,
    policy: Policy,
    *,
    seed: int = 0,
    rounds: int | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    progress: bool = False,
    detection: bool = False,
    record_credits: bool = False,
) -> RunResult:
    """Train the env's model for ``rounds`` rounds (default: its horizon) with ``policy`` choosing
    each round's credit. Test accuracy is recorded at the env's evaluation cadence and at the end.

    ``detection=True`` also scores, over the second half of the rounds (once the policy had time to
    learn), the paper's detectors against the true Byzantine mask: GAA+ (the K workers with the least
    credit; linear policies only) and GeoMed+ (Procedure 1 on the round's submissions), at the
    paper's K = 1, 10, 35 (Table 4). ``record_credits=True`` keeps every round's credit (NaN for
    non-linear rules) and which workers were Byzantine in some round, for :func:`plot_policy_curve`
    (paper Fig. 8).
    """
    env_kwargs = dict(env_kwargs or {})
    wrapped = gym.make(env_id, **env_kwargs)
    env = wrapped.unwrapped
    rounds = env.scenario.horizon if rounds is None else int(rounds)
    if rounds < 1:
        raise ValueError(f"rounds must be a positive integer, got {rounds}")
    start = time.perf_counter()
    observation, info = env.reset(seed=seed)
    policy.reset(env, seed)
    curve = [(0, info["test_accuracy"])]
    credit_mass: list[float] = []
    total_reward, terminated, reason = 0.0, False, ""
    iterator = range(rounds)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc=f"{policy.name} on {env_id}", unit="round", leave=False)
    trackers = {"gaa+": DetectionTracker("gaa+"), "geomed+": DetectionTracker("geomed+")} if detection else {}
    credits: list[list[float]] = []
    ever_byzantine = np.zeros(env.n_workers, dtype=bool)
    for t in iterator:
        round_input = RoundInput(observation, info, lambda: env.submissions)
        decision = policy.act(round_input)
        submissions = round_input.submissions if trackers and t >= rounds // 2 else None
        observation, reward, terminated, _, info = _step(env, decision)
        if submissions is not None:
            trackers["geomed+"].update(submissions, info["byzantine_mask"])
            if np.isfinite(info["credit"]).all():
                trackers["gaa+"].update(info["credit"], info["byzantine_mask"])
        policy.observe(reward, info)
        total_reward += reward
        credit_mass.append(info["byzantine_credit"])
        if record_credits:
            credits.append([float(c) for c in info["credit"]])
            ever_byzantine |= np.asarray(info["byzantine_mask"], dtype=bool)
        if info["test_accuracy_round"] != curve[-1][0]:
            curve.append((info["test_accuracy_round"], info["test_accuracy"]))
        if terminated:
            reason = info["termination_reason"]
            break
    if curve[-1][0] != info["round"]:
        curve.append((info["round"], env.evaluate_test_accuracy()))
    wrapped.close()
    masses = np.asarray(credit_mass, dtype=np.float64)
    detected = {
        method: {k: v["precision"] for k, v in tracker.summary().items()}
        for method, tracker in trackers.items()
        if tracker.rounds
    }
    return RunResult(
        env=env_id,
        policy=policy.name,
        seed=int(seed),
        rounds=int(info["round"]),
        final_test_accuracy=float(curve[-1][1]),
        byzantine_credit_mass=float(np.nanmean(masses)) if np.isfinite(masses).any() else float("nan"),
        final_qv_loss=float(info["qv_loss_after"]),
        wall_seconds=time.perf_counter() - start,
        privileged=policy.privileged,
        terminated=bool(terminated),
        termination_reason=reason,
        total_reward=float(total_reward),
        env_kwargs=env_kwargs,
        accuracy_curve=curve,
        detection=detected,
        credits=credits,
        byzantine_workers=[bool(b) for b in ever_byzantine] if record_credits else [],
    )
