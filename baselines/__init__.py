"""Statistical gradient aggregation rules (GARs) behind one tensor-first protocol.

The rules arrive with the baselines issue; plain averaging is ``agents.Uniform`` (policy ``uniform``).
"""

__all__: list[str] = []
