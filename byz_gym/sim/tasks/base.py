"""``Task``: model factory, per-worker training shards, quasi-validation pool and test set."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from byz_gym.registry import Registry

__all__ = [
    "PARTITIONS",
    "TASKS",
    "Task",
    "make_task",
    "partition_indices",
    "register_task",
    "restrict_qv_classes",
    "shard_data",
]

PARTITIONS = ("iid", "label_skew", "shared")


@dataclass(frozen=True)
class Task:
    """Data and model of one learning problem, already split for ``n`` workers.

    Shards have equal sizes so that per-worker batches stack into one ``[n, b, ...]`` tensor.
    The QV pool is disjoint from the shards; the test set is used for reporting only.
    """

    name: str
    model_factory: Callable[[], nn.Module]  # builds the model; its parameters become θ
    shard_x: Tensor  # [n, m, *input_shape] worker training data
    shard_y: Tensor  # [n, m] int64 labels
    qv_x: Tensor  # [q, *input_shape] quasi-validation pool the server draws QV batches from
    qv_y: Tensor  # [q]
    test_x: Tensor  # [t, *input_shape] held-out test set (never used in rewards or observations)
    test_y: Tensor  # [t]
    num_classes: int

    @property
    def n_workers(self) -> int:
        return self.shard_x.shape[0]

    @property
    def shard_size(self) -> int:
        return self.shard_x.shape[1]


TASKS: Registry[Task] = Registry("task")
register_task = TASKS.register


def make_task(name: str, *, n_workers: int, qv_classes: Sequence[int] | None = None, **params) -> Task:
    """Build the registered task ``name`` split across ``n_workers`` workers.

    ``qv_classes`` (any task) keeps only those classes in the QV pool: a server whose
    quasi-validation data lacks some classes (the setting of the adaptive attack's Case B). In a
    ``Scenario`` it is a task parameter: ``task={"name": "digits", "params": {"qv_classes": [0]}}``.
    """
    TASKS.check_params(name, params, reserved=("n_workers",))
    task = TASKS.get(name)(n_workers=n_workers, **params)
    return task if qv_classes is None else restrict_qv_classes(task, qv_classes)


def restrict_qv_classes(task: Task, classes: Sequence[int]) -> Task:
    """``task`` with a QV pool holding only the samples of ``classes``."""
    if isinstance(classes, (str, bytes)) or not isinstance(classes, Sequence) or not classes:
        raise ValueError(f"qv_classes must be a non-empty list of class indices, got {classes!r}")
    bad = [c for c in classes if isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < task.num_classes]
    if bad:
        raise ValueError(f"qv_classes must be integers in [0, {task.num_classes}), got {bad}")
    keep = torch.isin(task.qv_y, torch.tensor(sorted(set(classes)), dtype=task.qv_y.dtype))
    if not bool(keep.any()):
        raise ValueError(
            f"the QV pool of task {task.name!r} has no sample of classes {list(classes)}; enlarge qv_pool_size"
        )
    return dataclasses.replace(task, qv_x=task.qv_x[keep], qv_y=task.qv_y[keep])


def partition_indices(labels: Tensor, n_workers: int, partition: str, generator: torch.Generator) -> Tensor:
    """Split sample indices into ``[n_workers, m]`` shards.

    ``"iid"`` deals a random permutation into disjoint shards; ``"label_skew"`` sorts by label and
    gives every worker two label-contiguous chunks, so each sees about two classes (McMahan et al.,
    2017). The few samples that do not fill a whole shard are dropped. ``"shared"`` gives every
    worker the whole training set (an expanded view, no copy): each round's minibatches are then
    i.i.d. draws from one distribution, the setting of Krum's analysis (Blanchard et al., 2017), in
    which a rule that applies a single worker's gradient still sees all the data over the rounds.
    """
    count = labels.shape[0]
    if partition == "iid":
        shard = count // n_workers
        if shard < 1:
            raise ValueError(f"{count} training samples cannot give each of n_workers={n_workers} at least one")
        return torch.randperm(count, generator=generator)[: n_workers * shard].view(n_workers, shard)
    if partition == "label_skew":
        chunk = count // (2 * n_workers)
        if chunk < 1:
            raise ValueError(f"{count} training samples cannot fill 2 label chunks for each of n_workers={n_workers}")
        shuffled = torch.randperm(count, generator=generator)
        by_label = shuffled[torch.sort(labels[shuffled], stable=True).indices][: 2 * n_workers * chunk]
        chunks = by_label.view(2 * n_workers, chunk)
        assignment = torch.randperm(2 * n_workers, generator=generator).view(n_workers, 2)
        return chunks[assignment].reshape(n_workers, 2 * chunk)
    if partition == "shared":
        if count < 1:
            raise ValueError("the shared partition needs at least one training sample")
        return torch.arange(count).expand(n_workers, count)
    raise ValueError(f"unknown partition {partition!r}; expected one of {list(PARTITIONS)}")


def shard_data(x: Tensor, y: Tensor, shards: Tensor) -> tuple[Tensor, Tensor]:
    """``(shard_x, shard_y)`` for ``[n, m]`` shard indices; a shared partition stays a view of one copy."""
    n = shards.shape[0]
    if n > 1 and shards.stride(0) == 0:  # every worker holds the same rows
        shared_x, shared_y = x[shards[0]], y[shards[0]]
        return shared_x.expand(n, *shared_x.shape), shared_y.expand(n, -1)
    return x[shards], y[shards]
