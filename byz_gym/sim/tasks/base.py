"""``Task``: model factory, per-worker training shards, quasi-validation pool and test set."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from byz_gym.registry import Registry

__all__ = ["TASKS", "Task", "make_task", "partition_indices", "register_task"]


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


def make_task(name: str, *, n_workers: int, **params) -> Task:
    """Build the registered task ``name`` split across ``n_workers`` workers."""
    TASKS.check_params(name, params, reserved=("n_workers",))
    return TASKS.get(name)(n_workers=n_workers, **params)


def partition_indices(labels: Tensor, n_workers: int, partition: str, generator: torch.Generator) -> Tensor:
    """Split sample indices into ``[n_workers, m]`` equal shards.

    ``"iid"`` deals a random permutation; ``"label_skew"`` sorts by label and gives every worker
    two label-contiguous chunks, so each sees about two classes (McMahan et al., 2017). The few
    samples that do not fill a whole shard are dropped.
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
    raise ValueError(f"unknown partition {partition!r}; expected 'iid' or 'label_skew'")
