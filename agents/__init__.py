"""Policies that learn or reason about credit: the GAA agent, loss-greedy and reference policies, and
Stable-Baselines3 helpers (equivariant extractor and policies, training, the ``sb3`` policy)."""

from agents.gaa import GAA, GAAPolicy
from agents.gaa_trainer import GAATrainer, SegmentRecord, rollout_segment, segment_loss, train_gaa
from agents.loss_greedy import LossGreedy, relative_loss_changes
from agents.reference import Oracle, RandomCredit, Uniform
from agents.sb3 import SB3Policy, WorkerSetExtractor, evaluate_sb3, load_sb3, train_sb3

__all__ = [
    "GAA",
    "GAAPolicy",
    "GAATrainer",
    "LossGreedy",
    "Oracle",
    "RandomCredit",
    "SB3Policy",
    "SegmentRecord",
    "Uniform",
    "WorkerSetExtractor",
    "evaluate_sb3",
    "load_sb3",
    "relative_loss_changes",
    "rollout_segment",
    "segment_loss",
    "train_gaa",
    "train_sb3",
]
