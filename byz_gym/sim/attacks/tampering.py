"""Tampering: what Byzantine workers send in place of their honest gradient.

A tampering is a callable ``tampering(context) -> Tensor[k, d]`` returning the rows of the k
Byzantine workers of the round, in worker order. ``TamperContext`` says what they may know. Plain
faults read only their own honest rows or the round's generator; *omniscient* attacks
(``omniscient = True``: ``alie``, ``ipm``, ``mimic``, the line searches) also read the honest
gradients of the other workers; data attacks (``label_flip``, ``adaptive``) recompute gradients on
data of their own with the context's ``gradient_fn``.

All randomness comes from ``context.generator``, which the simulator seeds by ``(episode seed, t)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor
from torch.func import vmap

from byz_gym.registry import Registry

if TYPE_CHECKING:
    from byz_gym.sim.tasks.base import Task

__all__ = [
    "ALIE",
    "IPM",
    "TAMPERINGS",
    "ALIELineSearch",
    "AdaptiveFault",
    "Constant",
    "GaussianNoise",
    "GradientFn",
    "Huge",
    "IPMLineSearch",
    "LabelFlip",
    "Mimic",
    "NonFinite",
    "RandomFault",
    "Scaled",
    "SignFlip",
    "TamperContext",
    "Tampering",
    "Zero",
    "alie_z",
    "register_tampering",
]

TAMPERINGS: Registry[Tampering] = Registry("tampering")
register_tampering = TAMPERINGS.register

# (theta [d], x [b, ...], y [b], weight [b] or None) -> gradient [d] of the (weighted) mean loss.
GradientFn = Callable[..., Tensor]


@dataclass(frozen=True)
class TamperContext:
    """What a Byzantine worker may know in one round.

    The first four fields are always set. The others are references the ``Simulator`` fills in at
    no cost (nothing is computed until a tampering uses it); they stay ``None`` when a context is
    built by hand, and the tamperings that need them say so.
    """

    honest: Tensor  # [n, d] gradients every worker would send if honest (omniscient attacks only)
    mask: Tensor  # bool[n], the Byzantine workers this round
    theta: Tensor  # [d] current parameters (detached)
    generator: torch.Generator  # the round's tampering stream
    batch_x: Tensor | None = None  # [n, b, *input_shape] each worker's minibatch of this round
    batch_y: Tensor | None = None  # [n, b] int64 labels of those minibatches
    task: Task | None = None  # shards, QV pool, num_classes (the attacker's knowledge of the data)
    gradient_fn: GradientFn | None = None  # g(theta, x, y, weight=None) -> [d], ∇ of the mean loss
    loss_fn: Callable[..., Tensor] | None = None  # l(theta, x, y, weight=None) -> scalar mean loss
    round_index: int = 0  # t

    @property
    def n_byzantine(self) -> int:
        """k, the number of Byzantine rows to return."""
        return int(self.mask.sum())

    def honest_rows(self) -> Tensor:
        """``[n − k, d]`` honest gradients of the honest workers; all n rows when fewer than 2 are
        honest (then the attackers estimate from their own honest gradients, as in Baruch et al.)."""
        rows = self.honest[~self.mask]
        return rows if rows.shape[0] >= 2 else self.honest

    def require(self, who: str, *names: str) -> None:
        """Raise ``ValueError`` if a field ``who`` needs was not provided."""
        missing = [name for name in names if getattr(self, name) is None]
        if missing:
            raise ValueError(
                f"tampering {who!r} needs {missing} in its TamperContext; the Simulator provides them, "
                "a hand-built context must pass them too"
            )


class Tampering:
    """Base class: ``__call__`` returns the ``[k, d]`` rows of the k Byzantine workers, in worker order."""

    omniscient: ClassVar[bool] = False  # True when the attack reads other workers' honest gradients

    def __call__(self, context: TamperContext) -> Tensor:
        raise NotImplementedError


def _finite(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _rescale(rows: Tensor, norms: Tensor) -> Tensor:
    """Each row scaled to the matching norm (zero rows stay zero)."""
    current = rows.norm(dim=1, keepdim=True)
    return torch.where(current > 0, rows * (norms[:, None] / current.clamp_min(1e-30)), rows)


# -- simple faults ----------------------------------------------------------------------------------


@register_tampering("random_fault")
class RandomFault(Tampering):
    """Gaussian random fault of the GAA paper: each Byzantine row is a sample of N(μ·1, σ²I).

    Defaults μ = 0.5, σ = 2e-6 (Pan et al., 2020). The rows are nearly identical, so they form a
    tight cluster that distance-based rules mistake for a consensus once they are a majority.
    """

    def __init__(self, *, mean: float = 0.5, std: float = 2e-6) -> None:
        if not (math.isfinite(mean) and math.isfinite(std) and std >= 0):
            raise ValueError(f"random_fault needs finite mean and std >= 0, got mean={mean}, std={std}")
        self.mean, self.std = float(mean), float(std)

    def __call__(self, context: TamperContext) -> Tensor:
        k, d = int(context.mask.sum()), context.honest.shape[1]
        noise = torch.randn(k, d, generator=context.generator, dtype=context.honest.dtype)
        return self.mean + self.std * noise


@register_tampering("sign_flip")
class SignFlip(Tampering):
    """Byzantine workers send ``-scale`` times their own honest gradient."""

    def __init__(self, *, scale: float = 1.0) -> None:
        if not math.isfinite(scale):
            raise ValueError(f"sign_flip needs a finite scale, got {scale}")
        self.scale = float(scale)

    def __call__(self, context: TamperContext) -> Tensor:
        return -self.scale * context.honest[context.mask]


@register_tampering("zero")
class Zero(Tampering):
    """Byzantine workers send the zero vector (a crashed or lazy worker)."""

    def __call__(self, context: TamperContext) -> Tensor:
        return context.honest.new_zeros(context.n_byzantine, context.honest.shape[1])


@register_tampering("constant")
class Constant(Tampering):
    """Byzantine workers send ``value · 1`` (every coordinate equal to ``value``)."""

    def __init__(self, *, value: float = 1.0) -> None:
        self.value = _finite("constant value", value)

    def __call__(self, context: TamperContext) -> Tensor:
        return context.honest.new_full((context.n_byzantine, context.honest.shape[1]), self.value)


@register_tampering("scaled")
class Scaled(Tampering):
    """Byzantine workers send ``factor`` times their own honest gradient (a boosting attack)."""

    def __init__(self, *, factor: float = 10.0) -> None:
        self.factor = _finite("scaled factor", factor)

    def __call__(self, context: TamperContext) -> Tensor:
        return self.factor * context.honest[context.mask]


@register_tampering("gaussian_noise")
class GaussianNoise(Tampering):
    """Byzantine workers add N(0, std²I) noise to their own honest gradient."""

    def __init__(self, *, std: float = 1.0) -> None:
        self.std = _finite("gaussian_noise std", std)
        if self.std < 0:
            raise ValueError(f"gaussian_noise std must be >= 0, got {std}")

    def __call__(self, context: TamperContext) -> Tensor:
        own = context.honest[context.mask]
        noise = torch.randn(own.shape, generator=context.generator, dtype=own.dtype)
        return own + self.std * noise


@register_tampering("nonfinite")
class NonFinite(Tampering):
    """Byzantine workers send non-finite rows: all NaN (``"nan"``), all +Inf (``"inf"``), all −Inf
    (``"-inf"``), or each entry drawn uniformly from the three (``"mixed"``)."""

    KINDS: ClassVar[dict[str, float]] = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}

    def __init__(self, *, value: str = "nan") -> None:
        if value not in (*self.KINDS, "mixed"):
            raise ValueError(f"nonfinite value must be one of {[*self.KINDS, 'mixed']}, got {value!r}")
        self.value = value

    def __call__(self, context: TamperContext) -> Tensor:
        shape, dtype = (context.n_byzantine, context.honest.shape[1]), context.honest.dtype
        if self.value != "mixed":
            return torch.full(shape, self.KINDS[self.value], dtype=dtype)
        choices = torch.tensor(list(self.KINDS.values()), dtype=dtype)
        return choices[torch.randint(0, 3, shape, generator=context.generator)]


@register_tampering("huge")
class Huge(Tampering):
    """Byzantine workers send a uniformly random direction with Euclidean norm ``norm`` (1e30 by
    default: finite in float32, but it swamps any average it enters)."""

    def __init__(self, *, norm: float = 1e30) -> None:
        self.norm = _finite("huge norm", norm)
        if not 0 < self.norm <= torch.finfo(torch.float32).max:
            raise ValueError(f"huge norm must be in (0, float32 max], got {norm}")

    def __call__(self, context: TamperContext) -> Tensor:
        shape = (context.n_byzantine, context.honest.shape[1])
        direction = torch.randn(shape, generator=context.generator, dtype=torch.float64)
        direction = direction / direction.norm(dim=1, keepdim=True).clamp_min(1e-300)
        return (self.norm * direction).to(context.honest.dtype)


# -- data attacks -----------------------------------------------------------------------------------


@register_tampering("label_flip")
class LabelFlip(Tampering):
    """Each Byzantine worker sends the honest gradient of its own minibatch with flipped labels.

    ``mapping``: ``"reverse"`` sends label y to C − 1 − y (Allen-Zhu et al., 2020), ``"shift"`` to
    (y + 1) mod C, ``"random"`` to a uniformly drawn other label. Needs ``batch_x``, ``batch_y``,
    ``task`` and ``gradient_fn`` in the context (the simulator provides them).
    """

    MAPPINGS: ClassVar[tuple[str, ...]] = ("reverse", "shift", "random")

    def __init__(self, *, mapping: str = "reverse") -> None:
        if mapping not in self.MAPPINGS:
            raise ValueError(f"label_flip mapping must be one of {list(self.MAPPINGS)}, got {mapping!r}")
        self.mapping = mapping

    def flip(self, labels: Tensor, num_classes: int, generator: torch.Generator) -> Tensor:
        """The flipped labels (``random`` draws from ``generator``)."""
        if self.mapping == "reverse":
            return num_classes - 1 - labels
        if self.mapping == "shift":
            return (labels + 1) % num_classes
        offset = torch.randint(1, num_classes, labels.shape, generator=generator)
        return (labels + offset) % num_classes

    def __call__(self, context: TamperContext) -> Tensor:
        context.require("label_flip", "batch_x", "batch_y", "task", "gradient_fn")
        x, y = context.batch_x[context.mask], context.batch_y[context.mask]
        flipped = self.flip(y, context.task.num_classes, context.generator)
        return vmap(context.gradient_fn, in_dims=(None, 0, 0))(context.theta, x, flipped)


@register_tampering("adaptive")
class AdaptiveFault(Tampering):
    """The adaptive fault of Pan et al. (2020) against quasi-validation (QV) based defences.

    Byzantine worker i sends ``Vᵢ ∝ ∇θ(ℓ(θ, D0) − α·ℓ(θ, D1ᵢ))``: it looks good on the data the
    server validates with (descends ℓ on D0) while damaging the model elsewhere (ascends ℓ on D1).

    - Case A (``case="A"``): D0 is the whole QV pool (the distribution the server's QV batches
      come from, not the round's batch), D1ᵢ is worker i's own training shard. α = 10.
    - Case B (``case="B"``): the server's QV pool lacks some classes (task parameter
      ``qv_classes``) and the attacker knows which. D0 is the QV pool (present classes only),
      D1ᵢ the samples of the missing classes in worker i's shard (pooled over all Byzantine shards
      for a worker that holds none; if none holds any, D1 contributes nothing).

    With ``project=True`` (default) the ascent direction −∇ℓ(D1ᵢ) is first made orthogonal to
    ∇ℓ(D0), so that a step along Vᵢ lowers the QV loss to first order whatever α is; with the raw
    formula (``project=False``) and α = 10 the D1 term dominates and, on iid data, the step also
    raises the QV loss. ``norm="honest"`` (default) rescales Vᵢ to the norm of worker i's honest
    gradient so that its size gives nothing away; ``norm="raw"`` keeps the formula's scale.

    Needs ``task`` and ``gradient_fn`` in the context (the simulator provides them). Not
    omniscient: it reads no other worker's gradient, only the QV pool and its own data.
    """

    def __init__(self, *, case: str = "A", alpha: float = 10.0, project: bool = True, norm: str = "honest") -> None:
        if case not in ("A", "B"):
            raise ValueError(f"adaptive case must be 'A' or 'B', got {case!r}")
        if norm not in ("honest", "raw"):
            raise ValueError(f"adaptive norm must be 'honest' or 'raw', got {norm!r}")
        self.alpha = _finite("adaptive alpha", alpha)
        if self.alpha < 0:
            raise ValueError(f"adaptive alpha must be >= 0, got {alpha}")
        self.case, self.project, self.norm = case, bool(project), norm

    @staticmethod
    def missing_classes(task: Task) -> Tensor:
        """Case B: the classes absent from the QV pool (``ValueError`` if none is)."""
        present = set(torch.unique(task.qv_y).tolist())
        missing = torch.tensor([c for c in range(task.num_classes) if c not in present], dtype=torch.int64)
        if missing.numel() == 0:
            raise ValueError(
                "adaptive case 'B' needs a QV pool that lacks some classes; restrict it with the task "
                "parameter qv_classes, e.g. task={'name': 'digits', 'params': {'qv_classes': [0, 1]}}"
            )
        return missing

    def __call__(self, context: TamperContext) -> Tensor:
        context.require("adaptive", "task", "gradient_fn")
        task, theta, grad_fn = context.task, context.theta, context.gradient_fn
        shard_x, shard_y = task.shard_x[context.mask], task.shard_y[context.mask]
        descent = grad_fn(theta, task.qv_x, task.qv_y)  # ∇ℓ(D0), [d]
        per_worker = vmap(grad_fn, in_dims=(None, 0, 0, 0))
        if self.case == "A":
            weights = torch.full(shard_y.shape, 1.0 / shard_y.shape[1])
            ascent = per_worker(theta, shard_x, shard_y, weights)  # ∇ℓ(D1ᵢ), [k, d]
        else:
            hit = torch.isin(shard_y, self.missing_classes(task)).to(torch.float32)  # [k, m]
            ascent = per_worker(theta, shard_x, shard_y, hit / hit.sum(dim=1, keepdim=True).clamp_min(1.0))
            empty = hit.sum(dim=1) == 0
            if bool(empty.any()) and not bool(empty.all()):
                pooled = hit.flatten() / hit.sum()
                shared = grad_fn(theta, shard_x.flatten(0, 1), shard_y.flatten(), pooled)
                ascent = torch.where(empty[:, None], shared, ascent)
        if self.project:
            ascent = ascent - (ascent @ descent)[:, None] / (descent @ descent).clamp_min(1e-30) * descent
        rows = descent - self.alpha * ascent
        if self.norm == "honest":
            rows = _rescale(rows, context.honest[context.mask].detach().norm(dim=1))
        return rows


# -- omniscient attacks ------------------------------------------------------------------------------


def alie_z(n: int, f: int) -> float:
    """The z of "A little is enough" (Baruch et al., 2019): ``s = ⌊n/2 + 1⌋ − f`` workers must be
    won over; ``z = Φ⁻¹((n − s)/n)``, the probability clamped to [0.5, 0.99] (so z ∈ [0, 2.33])
    for the cases the paper does not cover (f = 0, or a Byzantine majority)."""
    if n < 1:
        raise ValueError(f"alie_z needs n >= 1, got {n}")
    s = math.floor(n / 2 + 1) - f
    return NormalDist().inv_cdf(min(max((n - s) / n, 0.5), 0.99))


@register_tampering("alie")
class ALIE(Tampering):
    """ "A little is enough" (Baruch et al., NeurIPS 2019, https://arxiv.org/abs/1902.06156).

    Omniscient: every Byzantine worker sends ``μ − z·σ``, with μ and σ the coordinate-wise mean
    and standard deviation of the round's honest gradients. The shift stays within z standard
    deviations of the honest mean in every coordinate, so robust rules keep it, yet it is
    consistent across coordinates and rounds. ``z=None`` takes z from n and f (``alie_z``).
    """

    omniscient = True

    def __init__(self, *, z: float | None = None) -> None:
        self.z = None if z is None else _finite("alie z", z)

    @staticmethod
    def direction(context: TamperContext) -> tuple[Tensor, Tensor]:
        """``(μ, −σ)``: the row at scale z is ``μ − z·σ``."""
        rows = context.honest_rows().detach()
        return rows.mean(dim=0), -rows.std(dim=0)

    def __call__(self, context: TamperContext) -> Tensor:
        z = alie_z(context.mask.numel(), context.n_byzantine) if self.z is None else self.z
        base, step = self.direction(context)
        return (base + z * step).expand(context.n_byzantine, -1).clone()


@register_tampering("ipm")
class IPM(Tampering):
    """Inner-product manipulation (Xie et al., UAI 2019, https://arxiv.org/abs/1903.03936).

    Omniscient: every Byzantine worker sends ``−ε·μ``, μ the mean of the round's honest gradients,
    so that the aggregate's inner product with the true gradient turns small or negative. Small ε
    (0.1) targets median and Krum; large ε (around n) targets the mean.
    """

    omniscient = True

    def __init__(self, *, epsilon: float = 0.1) -> None:
        self.epsilon = _finite("ipm epsilon", epsilon)

    @staticmethod
    def direction(context: TamperContext) -> tuple[Tensor, Tensor]:
        """``(0, −μ)``: the row at scale ε is ``−ε·μ``."""
        mean = context.honest_rows().detach().mean(dim=0)
        return torch.zeros_like(mean), -mean

    def __call__(self, context: TamperContext) -> Tensor:
        base, step = self.direction(context)
        return (base + self.epsilon * step).expand(context.n_byzantine, -1).clone()


@register_tampering("mimic")
class Mimic(Tampering):
    """Mimic (Karimireddy et al., ICLR 2022, https://arxiv.org/abs/2006.09365).

    Omniscient: every Byzantine worker sends a copy of one honest worker's gradient, the same
    worker every round, over-weighting its data (harmful under heterogeneous data). The target is
    worker ``target``, or the honest worker with the lowest index when ``target`` is None or is
    Byzantine this round.
    """

    omniscient = True

    def __init__(self, *, target: int | None = None) -> None:
        if target is not None and (isinstance(target, bool) or not isinstance(target, int) or target < 0):
            raise ValueError(f"mimic target must be a worker index >= 0 or None, got {target!r}")
        self.target = target

    def __call__(self, context: TamperContext) -> Tensor:
        honest_ids = (~context.mask).nonzero().flatten()
        if honest_ids.numel() == 0:  # nobody to copy: send the own honest gradient
            return context.honest[context.mask]
        n = context.mask.numel()
        if self.target is not None and self.target < n and not bool(context.mask[self.target]):
            target = self.target
        else:
            target = int(honest_ids[0])
        return context.honest[target].expand(context.n_byzantine, -1).clone()


class _LineSearch(Tampering):
    """ALIE / IPM with the scale chosen each round against a given aggregation rule (GAR).

    Omniscient. For each candidate scale s (``scales``, increasing) the attackers build the round's
    submissions with their rows at scale s and run the GAR on them. They send the largest scale the
    GAR still *accepts*: with ``criterion="credit"``, the GAR gives the Byzantine rows positive
    credit (linear rules such as Krum); with ``criterion="damage"``, the one that moves the aggregate
    farthest from the honest mean (Shejwalkar & Houmansadr, NDSS 2021; the largest such scale on
    ties). ``"auto"`` uses credit when the GAR returns it, damage otherwise. If no scale is accepted
    under ``"credit"``, the most damaging one is sent.

    ``gar`` is a rule name resolved lazily with ``baselines.make(gar, n=n, f=f, **gar_params)``
    (``byz_gym.sim`` does not import ``baselines`` at module level), or, programmatically, any
    callable ``grads[n, d] -> update[d]`` or object with ``aggregate(grads) -> Aggregate``
    (``.update``, optional ``.credit``). ``f`` is the GAR's assumed number of Byzantine workers
    (default: the number attacking this round).
    """

    omniscient = True
    base_attack: ClassVar[type[ALIE] | type[IPM]]

    def __init__(
        self,
        *,
        gar: str | Callable[..., Any] | Any = "krum",
        gar_params: Mapping[str, Any] | None = None,
        f: int | None = None,
        scales: Sequence[float] | None = None,
        criterion: str = "auto",
    ) -> None:
        if not (isinstance(gar, str) or callable(gar) or callable(getattr(gar, "aggregate", None))):
            raise ValueError(f"gar must be a rule name, a callable or an object with .aggregate, got {gar!r}")
        if criterion not in ("auto", "credit", "damage"):
            raise ValueError(f"criterion must be 'auto', 'credit' or 'damage', got {criterion!r}")
        if f is not None and (isinstance(f, bool) or not isinstance(f, int) or f < 0):
            raise ValueError(f"f must be an integer >= 0 or None, got {f!r}")
        grid = torch.logspace(-2, 2, 17, dtype=torch.float64) if scales is None else torch.tensor(scales)
        if grid.ndim != 1 or grid.numel() == 0 or not bool(torch.isfinite(grid).all()):
            raise ValueError(f"scales must be a non-empty list of finite numbers, got {scales!r}")
        self.gar, self.gar_params, self.f, self.criterion = gar, dict(gar_params or {}), f, criterion
        self.scales = grid.sort().values.tolist()
        self._rules: dict[tuple[int, int], Callable[[Tensor], Any]] = {}

    def _rule(self, n: int, f: int) -> Callable[[Tensor], Any]:
        if (n, f) not in self._rules:
            rule: Any = self.gar
            if isinstance(rule, str):
                try:
                    import baselines
                except ImportError as error:  # pragma: no cover - baselines ships with byz-gym
                    raise ValueError(
                        f"line search against GAR {rule!r} needs the baselines package; pass a callable gar instead"
                    ) from error
                rule = baselines.make(rule, n=n, f=f, **self.gar_params)
            self._rules[(n, f)] = rule.aggregate if hasattr(rule, "aggregate") else rule
        return self._rules[(n, f)]

    def search(self, context: TamperContext) -> tuple[float, Tensor]:
        """``(scale, rows)``: the chosen scale and the ``[k, d]`` Byzantine rows at that scale."""
        k, n = context.n_byzantine, context.mask.numel()
        rule = self._rule(n, k if self.f is None else self.f)
        base, step = self.base_attack.direction(context)
        honest_mean = context.honest_rows().detach().mean(dim=0)
        grads = context.honest.detach().clone()
        damage, accepted = [], []
        for s in self.scales:
            grads[context.mask] = base + s * step
            out = rule(grads)
            update, credit = (out, None) if isinstance(out, Tensor) else (out.update, getattr(out, "credit", None))
            gap = float((update.to(torch.float64) - honest_mean).norm())
            damage.append(gap if math.isfinite(gap) else -math.inf)
            criterion = self.criterion if self.criterion != "auto" else ("damage" if credit is None else "credit")
            if criterion == "credit":
                if credit is None:
                    raise ValueError("criterion='credit' needs a GAR that returns credit (a linear rule)")
                accepted.append(float(torch.as_tensor(credit)[context.mask].sum()) > 1e-9)
        chosen = [i for i, ok in enumerate(accepted) if ok]
        if not chosen:  # damage criterion, or nothing accepted: the most damaging scale, largest on ties
            best = max(damage)
            chosen = [i for i, v in enumerate(damage) if v >= best - 1e-6 * abs(best)]
        scale = self.scales[chosen[-1]]
        return scale, (base + scale * step).expand(k, -1).clone()

    def __call__(self, context: TamperContext) -> Tensor:
        return self.search(context)[1]


@register_tampering("alie_line_search")
class ALIELineSearch(_LineSearch):
    __doc__ = "ALIE (``μ − z·σ``) with z picked by line search.\n\n    " + (_LineSearch.__doc__ or "")
    base_attack = ALIE


@register_tampering("ipm_line_search")
class IPMLineSearch(_LineSearch):
    __doc__ = "IPM (``−ε·μ``) with ε picked by line search.\n\n    " + (_LineSearch.__doc__ or "")
    base_attack = IPM
