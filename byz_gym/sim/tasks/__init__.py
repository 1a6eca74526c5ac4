"""Learning tasks by name. ``digits`` is embedded and ``synthetic`` generated (no download); loaders for
downloaded data sets register here."""

from byz_gym.sim.tasks import digits as _digits  # noqa: F401  (registers "digits")
from byz_gym.sim.tasks import synthetic as _synthetic  # noqa: F401  (registers "synthetic")
from byz_gym.sim.tasks.base import TASKS, Task, make_task, partition_indices, register_task, restrict_qv_classes

__all__ = ["TASKS", "Task", "make_task", "partition_indices", "register_task", "restrict_qv_classes"]
