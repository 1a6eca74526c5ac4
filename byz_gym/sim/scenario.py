"""``Scenario``: the one typed description of a Byzantine training run.

Everything that makes a run (task, number of workers, Byzantine fraction, attack, learning rate,
batch sizes, episode length) lives here, round-trips through JSON, and is what ``gymnasium.make``
overrides, sweep files and the CLI all speak. Components (task, schedule, tampering) are written
``{"name": ..., "params": {...}}``; a bare string is shorthand for ``{"name": s}``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AttackSpec", "Component", "Scenario"]


def _check_keys(cls: type, data: Mapping[str, Any]) -> None:
    valid = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(valid))
    if unknown:
        raise ValueError(f"{cls.__name__} got unknown key(s) {unknown}; valid keys: {valid}")


@dataclass(frozen=True)
class Component:
    """A registered component by name with JSON-serialisable parameters."""

    name: str  # registry key, e.g. "digits", "static", "random_fault"
    params: Mapping[str, Any] = field(default_factory=dict)  # keyword arguments of the factory

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"component name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.params, Mapping):
            raise ValueError(f"component {self.name!r}: params must be a mapping, got {type(self.params).__name__}")
        try:
            json.dumps(dict(self.params), allow_nan=False)
        except (TypeError, ValueError) as error:
            raise ValueError(f"component {self.name!r}: params must be JSON-serialisable ({error})") from None
        object.__setattr__(self, "params", dict(self.params))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "params": dict(self.params)}

    @classmethod
    def from_dict(cls, data: str | Mapping[str, Any] | Component) -> Component:
        if isinstance(data, Component):
            return data
        if isinstance(data, str):
            return cls(name=data)
        if not isinstance(data, Mapping):
            raise ValueError(f"a component is a name or {{'name': ..., 'params': {{...}}}}, got {data!r}")
        _check_keys(cls, data)
        if "name" not in data:
            raise ValueError(f"component {dict(data)!r} has no 'name'")
        return cls(name=data["name"], params=data.get("params", {}))


@dataclass(frozen=True)
class AttackSpec:
    """Who is Byzantine at round t (``schedule``) and what they send (``tampering``)."""

    schedule: Component = field(default_factory=lambda: Component("static"))
    tampering: Component = field(default_factory=lambda: Component("random_fault"))

    def __post_init__(self) -> None:
        object.__setattr__(self, "schedule", Component.from_dict(self.schedule))
        object.__setattr__(self, "tampering", Component.from_dict(self.tampering))

    def to_dict(self) -> dict[str, Any]:
        return {"schedule": self.schedule.to_dict(), "tampering": self.tampering.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | AttackSpec) -> AttackSpec:
        if isinstance(data, AttackSpec):
            return data
        if not isinstance(data, Mapping):
            raise ValueError(f"attack must be {{'schedule': ..., 'tampering': ...}}, got {data!r}")
        _check_keys(cls, data)
        return cls(**data)


@dataclass(frozen=True)
class Scenario:
    """A Byzantine distributed-learning run: task, workers, attack and server settings.

    The number of Byzantine workers is ``round(byzantine_fraction * n_workers)``; with a fraction of
    0 the attack is inert and every worker is honest.
    """

    task: Component = field(default_factory=lambda: Component("digits"))  # data set + model
    n_workers: int = 50  # n, workers submitting a gradient each round
    byzantine_fraction: float = 0.0  # β in [0, 1]: share of Byzantine workers
    attack: AttackSpec = field(default_factory=AttackSpec)  # schedule + tampering
    learning_rate: float = 0.05  # λ, server step size (the paper's default)
    worker_batch_size: int = 64  # [samples] per worker gradient
    qv_batch_size: int = 32  # [samples] |B|, QV batch drawn from the QV pool each round
    eval_every: int = 10  # [rounds] test accuracy cadence (also always at round == horizon)
    horizon: int = 300  # [rounds] episode length registered as max_episode_steps

    def __post_init__(self) -> None:
        object.__setattr__(self, "task", Component.from_dict(self.task))
        object.__setattr__(self, "attack", AttackSpec.from_dict(self.attack))
        for name in ("n_workers", "worker_batch_size", "qv_batch_size", "eval_every", "horizon"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Scenario.{name} must be a positive integer, got {value!r}")
        beta = self.byzantine_fraction
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0.0 <= beta <= 1.0:
            raise ValueError(f"Scenario.byzantine_fraction must be a number in [0, 1], got {beta!r}")
        lr = self.learning_rate
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"Scenario.learning_rate must be a finite positive number, got {lr!r}")
        object.__setattr__(self, "byzantine_fraction", float(beta))
        object.__setattr__(self, "learning_rate", float(lr))

    @property
    def n_byzantine(self) -> int:
        """Number of Byzantine workers, ``round(β n)``."""
        return int(round(self.byzantine_fraction * self.n_workers))

    def replace(self, **changes: Any) -> Scenario:
        """A copy with ``changes`` applied; nested components may be given as dicts or names."""
        _check_keys(type(self), changes)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task.to_dict(),
            "n_workers": self.n_workers,
            "byzantine_fraction": self.byzantine_fraction,
            "attack": self.attack.to_dict(),
            "learning_rate": self.learning_rate,
            "worker_batch_size": self.worker_batch_size,
            "qv_batch_size": self.qv_batch_size,
            "eval_every": self.eval_every,
            "horizon": self.horizon,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Scenario:
        if not isinstance(data, Mapping):
            raise ValueError(f"a Scenario is built from a mapping, got {type(data).__name__}")
        _check_keys(cls, data)
        return cls(**data)

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_json(cls, text: str) -> Scenario:
        return cls.from_dict(json.loads(text))
