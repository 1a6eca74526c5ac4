"""The embedded default task: scikit-learn's bundled 8x8 digits with a 64-32-10 MLP.

Needs no download: ``sklearn.datasets.load_digits`` ships with scikit-learn (1,797 images).
Features are standardised with training-set statistics.
"""

from __future__ import annotations

from functools import lru_cache, partial

import numpy as np
import torch
from torch import nn

from byz_gym.sim.tasks.base import Task, partition_indices, register_task, shard_data

__all__ = ["DigitsMLP", "digits"]


class DigitsMLP(nn.Module):
    """64-32-10 ReLU perceptron (2,410 parameters)."""

    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@lru_cache(maxsize=1)
def _load() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    data = load_digits()
    return data.data.astype(np.float32), data.target.astype(np.int64)


@register_task("digits")
def digits(
    *,
    n_workers: int,
    partition: str = "iid",
    test_fraction: float = 0.2,
    qv_pool_size: int = 100,
    hidden: int = 32,
    split_seed: int = 0,
) -> Task:
    """Digits split into a test set, a QV pool and ``n_workers`` equal training shards.

    Parameters
    ----------
    partition: ``"iid"`` (disjoint random shards of 26 images at n = 50), ``"label_skew"`` (about
        two classes per worker) or ``"shared"`` (every worker samples from all training images).
    test_fraction: share of the 1,797 images held out for test accuracy.
    qv_pool_size: images reserved for the server's quasi-validation pool (disjoint from shards).
    hidden: width of the hidden layer.
    split_seed: seed of the split, fixed so that every episode sees the same data.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    features, labels = _load()
    generator = torch.Generator().manual_seed(split_seed)
    order = torch.randperm(len(labels), generator=generator)
    n_test = int(round(test_fraction * len(labels)))
    if not 0 < qv_pool_size < len(labels) - n_test:
        raise ValueError(f"qv_pool_size must be in [1, {len(labels) - n_test - 1}], got {qv_pool_size}")
    test_idx, qv_idx, train_idx = order[:n_test], order[n_test : n_test + qv_pool_size], order[n_test + qv_pool_size :]

    x = torch.from_numpy(features)
    y = torch.from_numpy(labels)
    mean, std = x[train_idx].mean(0), x[train_idx].std(0)
    x = (x - mean) / torch.where(std > 0, std, torch.ones_like(std))

    shard_x, shard_y = shard_data(
        x[train_idx], y[train_idx], partition_indices(y[train_idx], n_workers, partition, generator)
    )
    return Task(
        name="digits",
        model_factory=partial(DigitsMLP, hidden),
        shard_x=shard_x,
        shard_y=shard_y,
        qv_x=x[qv_idx],
        qv_y=y[qv_idx],
        test_x=x[test_idx],
        test_y=y[test_idx],
        num_classes=10,
    )
