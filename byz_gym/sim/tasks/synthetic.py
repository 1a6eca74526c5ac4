"""A generated task: Gaussian class clusters in ``input_dim`` dimensions with an MLP of the paper's size.

For benchmarks and scaling studies at the paper's model sizes without data files: with the defaults
(``input_dim=784``, ``hidden=32``, 10 classes) the model is the 784-32-10 MNIST perceptron of the
GAA paper, d = 784·32 + 32 + 32·10 + 10 = 25,450 parameters, and any number of workers gets its
own ``samples_per_worker`` samples, so ``n`` scales without running out of data. Nothing is
downloaded; everything is drawn from a generator seeded by ``split_seed``.

Each class c has a mean μ_c ~ N(0, (separation² / input_dim)·I) and its samples are
x = μ_c + ε with ε ~ N(0, I): features have about unit variance, like standardised pixels, and
two class means lie about ``separation·√2`` noise standard deviations apart. With the default
``separation`` the MLP learns the task to high but not perfect test accuracy in a few hundred
SGD rounds at λ = 0.05 (the per-sample noise in 784 dimensions makes a finite training set
overfittable, as with real data).
"""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import Tensor, nn

from byz_gym.sim.tasks.base import Task, partition_indices, register_task, shard_data

__all__ = ["SyntheticMLP", "synthetic"]


class SyntheticMLP(nn.Module):
    """``input_dim``-``hidden``-``num_classes`` ReLU perceptron (25,450 parameters by default)."""

    def __init__(self, input_dim: int = 784, hidden: int = 32, num_classes: int = 10) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(input_dim, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"synthetic: {name} must be a positive integer, got {value!r}")
    return value


def _balanced_labels(count: int, num_classes: int, generator: torch.Generator) -> Tensor:
    """``count`` labels with every class as frequent as possible, in random order."""
    labels = torch.arange(count) % num_classes
    return labels[torch.randperm(count, generator=generator)]


@register_task("synthetic")
def synthetic(
    *,
    n_workers: int,
    input_dim: int = 784,
    num_classes: int = 10,
    hidden: int = 32,
    samples_per_worker: int = 64,
    qv_pool_size: int = 100,
    test_size: int = 500,
    separation: float = 4.0,
    partition: str = "iid",
    split_seed: int = 0,
) -> Task:
    """Gaussian class clusters split into ``n_workers`` shards, a QV pool and a test set.

    Parameters
    ----------
    input_dim: number of input features (784 = 28x28, MNIST-shaped).
    num_classes: number of classes (and of model outputs).
    hidden: width of the hidden layer.
    samples_per_worker: training samples per worker (``n_workers · samples_per_worker`` are drawn;
        with ``partition="label_skew"`` an odd count loses one sample per shard).
    qv_pool_size: samples of the server's quasi-validation pool (disjoint from the shards).
    test_size: samples of the held-out test set.
    separation: spread of the class means in noise standard deviations (about ``separation·√2``
        between two means); larger is easier.
    partition: ``"iid"``, ``"label_skew"`` (about two classes per worker) or ``"shared"`` (every
        worker samples from all ``n_workers · samples_per_worker`` training samples).
    split_seed: seed of the class means and of every sample, fixed so that every episode sees the
        same data.
    """
    for name, value in (
        ("n_workers", n_workers),
        ("input_dim", input_dim),
        ("hidden", hidden),
        ("samples_per_worker", samples_per_worker),
        ("qv_pool_size", qv_pool_size),
        ("test_size", test_size),
    ):
        _positive_int(name, value)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"synthetic: num_classes must be an integer >= 2, got {num_classes!r}")
    if (
        isinstance(separation, bool)
        or not isinstance(separation, (int, float))
        or not (math.isfinite(separation) and separation > 0)
    ):
        raise ValueError(f"synthetic: separation must be a finite positive number, got {separation!r}")

    generator = torch.Generator().manual_seed(int(split_seed))
    means = torch.randn(num_classes, input_dim, generator=generator) * (float(separation) / math.sqrt(input_dim))

    def draw(count: int) -> tuple[Tensor, Tensor]:
        labels = _balanced_labels(count, num_classes, generator)
        return means[labels] + torch.randn(count, input_dim, generator=generator), labels

    train_x, train_y = draw(n_workers * samples_per_worker)
    qv_x, qv_y = draw(qv_pool_size)
    test_x, test_y = draw(test_size)
    shard_x, shard_y = shard_data(train_x, train_y, partition_indices(train_y, n_workers, partition, generator))
    return Task(
        name="synthetic",
        model_factory=partial(SyntheticMLP, input_dim, hidden, num_classes),
        shard_x=shard_x,
        shard_y=shard_y,
        qv_x=qv_x,
        qv_y=qv_y,
        test_x=test_x,
        test_y=test_y,
        num_classes=num_classes,
    )
