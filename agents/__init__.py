"""Policies that learn or reason about credit: reference policies now; GAA and SB3 helpers next."""

from agents.reference import Oracle, RandomCredit, Uniform

__all__ = ["Oracle", "RandomCredit", "Uniform"]
