"""Statistical gradient aggregation rules (GARs) behind one tensor-first protocol.

``rule.aggregate(grads: Tensor[n, d], distances=None) -> Aggregate`` with ``.update`` (``[d]``),
``.credit`` (``[n]`` on the simplex for linear rules, ``None`` otherwise) and ``.exact``. Build
rules by name::

    >>> import torch, baselines
    >>> rule = baselines.make("krum", n=7, f=2)
    >>> grads = torch.zeros(7, 3)
    >>> rule.aggregate(grads).update
    tensor([0., 0., 0.])
    >>> baselines.make("median", n=50, f=10, pre=["nnm"]).name
    'nnm+median'

Every rule is also a policy of the same name (``byz-gym run --policy krum``), registered in
``byz_gym.policy.POLICIES`` on import. Share one distance matrix between rules in a round with
``D = byz_gym.sim.pairwise_sq_distances(grads)`` and ``rule.aggregate(grads, distances=D)``.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from baselines._common import GAR, GARS, PRE_AGGREGATORS, Aggregate, PreAggregator
from baselines._pipeline import Pipeline
from baselines._policy import GARPolicy, register_gar_policies
from baselines.brute import Brute, BruteForceBudgetWarning, minimum_diameter_subset
from baselines.bucketing import Bucketing
from baselines.bulyan import Bulyan
from baselines.centered_clipping import CenteredClipping
from baselines.geomed import GeoMed
from baselines.geometric_median import GeometricMedian
from baselines.krum import Krum
from baselines.mean import Mean
from baselines.median import Median
from baselines.multi_krum import MultiKrum
from baselines.nnm import NNM
from baselines.norm_clipping import NormClipping
from baselines.trimmed_mean import TrimmedMean

__all__ = [
    "GARS",
    "GAR",
    "NNM",
    "PRE_AGGREGATORS",
    "Aggregate",
    "Brute",
    "BruteForceBudgetWarning",
    "Bucketing",
    "Bulyan",
    "CenteredClipping",
    "GARPolicy",
    "GeoMed",
    "GeometricMedian",
    "Krum",
    "Mean",
    "Median",
    "MultiKrum",
    "NormClipping",
    "Pipeline",
    "PreAggregator",
    "TrimmedMean",
    "available",
    "available_pre",
    "make",
    "make_pre",
    "minimum_diameter_subset",
]


def available() -> list[str]:
    """Names of the registered aggregation rules, sorted."""
    return GARS.names()


def available_pre() -> list[str]:
    """Names of the registered pre-aggregators, sorted."""
    return PRE_AGGREGATORS.names()


def make_pre(spec: str | Mapping[str, Any] | PreAggregator, *, f: int | None = None) -> PreAggregator:
    """A pre-aggregator from a name, ``{"name": ..., "params": {...}}`` or an instance. ``f`` is
    passed to pre-aggregators that take it (NNM) unless the spec sets it."""
    if isinstance(spec, PreAggregator):
        return spec
    if isinstance(spec, str):
        name, params = spec, {}
    elif isinstance(spec, Mapping) and "name" in spec and set(spec) <= {"name", "params"}:
        name, params = spec["name"], dict(spec.get("params", {}))
    else:
        raise ValueError(
            f"a pre-aggregator is a name, {{'name': ..., 'params': {{...}}}} or a PreAggregator, got {spec!r}; "
            f"available: {', '.join(available_pre())}"
        )
    if f is not None and "f" in PRE_AGGREGATORS.parameters(name) and "f" not in params:
        params["f"] = f
    return PRE_AGGREGATORS.make(name, **params)


def make(
    name: str,
    *,
    n: int | None = None,
    f: int | None = None,
    pre: Sequence[str | Mapping[str, Any] | PreAggregator] = (),
    **params: Any,
) -> GAR | Pipeline:
    """Build the rule registered as ``name`` for ``n`` workers of which ``f`` may be Byzantine.

    Parameters
    ----------
    name : str
        Registry key (``baselines.available()``), e.g. ``"krum"``.
    n : int, optional
        Number of workers; when given, feasibility of ``(n, f)`` is checked now (otherwise at the
        first ``aggregate``).
    f : int, optional
        Number of Byzantine workers the rule is told to expect. Required by every rule but
        ``mean``.
    pre : sequence, optional
        Pre-aggregators applied in order before the rule (names such as ``"nnm"``,
        ``{"name": "bucketing", "params": {"s": 2}}`` or instances). The rule is then sized for
        the number of rows they produce, with the same ``f``.
    **params
        The rule's own knobs (e.g. ``m`` for ``multi_krum``); unknown names raise ``ValueError``.

    Returns
    -------
    GAR or Pipeline
        The rule, or a ``Pipeline`` when ``pre`` is not empty.

    Raises
    ------
    ValueError
        Unknown name or parameter, missing ``f``, or an infeasible ``(n, f)``.
    """
    factory = GARS.get(name)
    GARS.check_params(name, params, reserved=("n", "f"))
    if isinstance(pre, (str, Mapping)):
        pre = [pre]
    stages = [make_pre(spec, f=f) for spec in pre]
    kwargs = dict(params)
    if f is not None:
        kwargs["f"] = f
    elif "f" in GARS.parameters(name) and _requires(factory, "f"):
        raise ValueError(
            f"{name!r} needs f, the number of Byzantine workers to tolerate, e.g. make({name!r}, n=50, f=10)"
        )
    if n is not None:
        rows = n
        for stage in stages:
            stage.check_feasible(rows)
            rows = stage.out_workers(rows)
        kwargs["n"] = rows
    rule = factory(**kwargs)
    return Pipeline(stages, rule, n=n) if stages else rule


def _requires(factory: Any, parameter: str) -> bool:
    p = inspect.signature(factory).parameters.get(parameter)
    return p is not None and p.default is inspect.Parameter.empty


register_gar_policies()
