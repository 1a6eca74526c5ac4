"""Learning tasks by name. ``digits`` is embedded; loaders for downloaded data sets register here."""

from byz_gym.sim.tasks import digits as _digits  # noqa: F401  (registers "digits")
from byz_gym.sim.tasks.base import TASKS, Task, make_task, partition_indices, register_task, restrict_qv_classes

__all__ = ["TASKS", "Task", "make_task", "partition_indices", "register_task", "restrict_qv_classes"]
