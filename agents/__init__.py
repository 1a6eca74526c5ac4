"""Policies that learn or reason about credit: the GAA agent, loss-greedy and reference policies; SB3 helpers next."""

from agents.gaa import GAA, GAAPolicy
from agents.gaa_trainer import GAATrainer, SegmentRecord, rollout_segment, segment_loss, train_gaa
from agents.loss_greedy import LossGreedy, relative_loss_changes
from agents.reference import Oracle, RandomCredit, Uniform

__all__ = [
    "GAA",
    "GAAPolicy",
    "GAATrainer",
    "LossGreedy",
    "Oracle",
    "RandomCredit",
    "SegmentRecord",
    "Uniform",
    "relative_loss_changes",
    "rollout_segment",
    "segment_loss",
    "train_gaa",
]
