"""The functional torch core: scenario, tasks, attacks, simulator and round features.

Imports no gymnasium; the Gymnasium env (``byz_gym.env``) is a thin wrapper on top.
"""

from byz_gym.sim.attacks import SCHEDULES, TAMPERINGS, Schedule, TamperContext, Tampering
from byz_gym.sim.features import (
    FEATURE_SETS,
    GLOBAL_FEATURES,
    WORKER_FEATURES,
    Feature,
    resolve_worker_features,
    round_features,
)
from byz_gym.sim.geometry import finite_rows, pairwise_sq_distances, symlog
from byz_gym.sim.model import FlatModel
from byz_gym.sim.scenario import AttackSpec, Component, Scenario
from byz_gym.sim.simulator import SimState, Simulator, round_generator
from byz_gym.sim.tasks import TASKS, Task, make_task

__all__ = [
    "FEATURE_SETS",
    "GLOBAL_FEATURES",
    "SCHEDULES",
    "TAMPERINGS",
    "TASKS",
    "WORKER_FEATURES",
    "AttackSpec",
    "Component",
    "Feature",
    "FlatModel",
    "Scenario",
    "Schedule",
    "SimState",
    "Simulator",
    "Task",
    "TamperContext",
    "Tampering",
    "finite_rows",
    "make_task",
    "pairwise_sq_distances",
    "resolve_worker_features",
    "round_features",
    "round_generator",
    "symlog",
]
