"""Policies that learn or reason about credit: the GAA agent, reference policies; SB3 helpers next."""

from agents.gaa import GAA, GAAPolicy
from agents.gaa_trainer import GAATrainer, SegmentRecord, rollout_segment, segment_loss, train_gaa
from agents.reference import Oracle, RandomCredit, Uniform

__all__ = [
    "GAA",
    "GAAPolicy",
    "GAATrainer",
    "Oracle",
    "RandomCredit",
    "SegmentRecord",
    "Uniform",
    "rollout_segment",
    "segment_loss",
    "train_gaa",
]
