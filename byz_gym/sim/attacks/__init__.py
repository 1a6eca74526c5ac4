"""Attacks = a schedule (who is Byzantine at round t) x a tampering (what they send)."""

from byz_gym.sim.attacks.schedules import SCHEDULES, Schedule, Static, register_schedule
from byz_gym.sim.attacks.tampering import (
    TAMPERINGS,
    RandomFault,
    SignFlip,
    TamperContext,
    Tampering,
    register_tampering,
)

__all__ = [
    "SCHEDULES",
    "TAMPERINGS",
    "RandomFault",
    "Schedule",
    "SignFlip",
    "Static",
    "TamperContext",
    "Tampering",
    "register_schedule",
    "register_tampering",
]
