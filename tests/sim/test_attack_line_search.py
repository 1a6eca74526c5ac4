"""Line-search ALIE / IPM against a GAR written here (the tests do not depend on ``baselines``)."""

from __future__ import annotations

import subprocess
import sys
import types
from dataclasses import dataclass

import pytest
import torch

from byz_gym.sim import TAMPERINGS, Scenario, Simulator, TamperContext


def coordinate_median(grads: torch.Tensor) -> torch.Tensor:
    return grads.median(dim=0).values


@dataclass
class Aggregate:
    update: torch.Tensor
    credit: torch.Tensor | None


class Krum:
    """Krum (Blanchard et al., 2017) with exact distances; credit is one-hot on the chosen row."""

    def __init__(self, f: int) -> None:
        self.f = f

    def aggregate(self, grads: torch.Tensor) -> Aggregate:
        g = grads.double()
        dist = ((g[:, None, :] - g[None, :, :]) ** 2).sum(dim=2)
        n = g.shape[0]
        scores = dist.sort(dim=1).values[:, 1 : n - self.f - 1].sum(dim=1)
        best = int(scores.argmin())
        return Aggregate(grads[best], torch.eye(n, dtype=grads.dtype)[best])


def round_context(n: int = 20, beta: float = 0.3, seed: int = 0, rounds: int = 10) -> TamperContext:
    sim = Simulator(Scenario(n_workers=n, byzantine_fraction=beta))
    state = sim.reset(seed)
    for _ in range(rounds):
        state = sim.apply(state, (~state.byzantine_mask).float() / float((~state.byzantine_mask).sum()))
    honest = sim.honest_gradients(state.theta, seed, state.round_index)
    return TamperContext(honest, state.byzantine_mask, state.theta, torch.Generator().manual_seed(0))


def damage(ctx: TamperContext, rows: torch.Tensor, gar) -> float:
    grads = ctx.honest.clone()
    grads[ctx.mask] = rows
    out = gar(grads)
    update = out if isinstance(out, torch.Tensor) else out.update
    return float((update.double() - ctx.honest[~ctx.mask].mean(dim=0)).norm())


@pytest.mark.parametrize("name", ["alie_line_search", "ipm_line_search"])
def test_damage_criterion_picks_the_most_damaging_scale(name):
    ctx = round_context()
    attack = TAMPERINGS.make(name, gar=coordinate_median)
    scale, rows = attack.search(ctx)
    base_name = name.removesuffix("_line_search")
    by_scale = {s: damage(ctx, TAMPERINGS.make(base_name, **{"z" if base_name == "alie" else "epsilon": s})(ctx), coordinate_median) for s in attack.scales}  # fmt: skip
    best = max(by_scale.values())
    assert by_scale[scale] >= best - 1e-6 * best
    assert scale == max(s for s, v in by_scale.items() if v >= best - 1e-6 * best), "largest scale on ties"
    assert rows.shape == (int(ctx.mask.sum()), ctx.honest.shape[1]) and torch.equal(attack(ctx), rows)


def test_credit_criterion_picks_the_largest_scale_krum_still_selects():
    ctx = round_context()
    f = int(ctx.mask.sum())
    krum = Krum(f)
    attack = TAMPERINGS.make("alie_line_search", gar=krum)
    scale, rows = attack.search(ctx)
    grads = ctx.honest.clone()
    grads[ctx.mask] = rows
    assert float(krum.aggregate(grads).credit[ctx.mask].sum()) == 1.0, "Krum must select a Byzantine row"
    larger = [s for s in attack.scales if s > scale]
    for s in larger:  # every larger grid scale is rejected
        grads[ctx.mask] = TAMPERINGS.make("alie", z=s)(ctx)
        assert float(krum.aggregate(grads).credit[ctx.mask].sum()) == 0.0
    fixed = TAMPERINGS.make("alie", z=attack.scales[0])(ctx)
    assert damage(ctx, rows, krum.aggregate) >= damage(ctx, fixed, krum.aggregate)


def test_gar_by_name_resolves_lazily_through_baselines(monkeypatch):
    calls = []

    def make(name, *, n, f, **params):
        calls.append((name, n, f, params))
        return Krum(f)

    monkeypatch.setitem(sys.modules, "baselines", types.SimpleNamespace(make=make))
    attack = TAMPERINGS.make("ipm_line_search", gar="krum", gar_params={"m": 1}, scales=[0.1, 1.0])
    assert calls == [], "nothing is resolved at construction"
    ctx = round_context()
    attack(ctx)
    attack(ctx)
    assert calls == [("krum", 20, int(ctx.mask.sum()), {"m": 1})], "resolved once per (n, f)"
    TAMPERINGS.make("ipm_line_search", gar="krum", f=2, scales=[0.1])(ctx)
    assert calls[-1][2] == 2


def test_credit_criterion_needs_credit():
    with pytest.raises(ValueError, match="credit"):
        TAMPERINGS.make("alie_line_search", gar=coordinate_median, criterion="credit")(round_context(rounds=0))


BLOCKED_IMPORT = """
import importlib.abc, importlib.util, sys, types

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("gymnasium", "baselines"):
            raise ImportError(f"byz_gym.sim imported {name}")

sys.meta_path.insert(0, Block())
package = types.ModuleType("byz_gym")  # byz_gym/__init__ registers envs; load the core on its own
package.__path__ = list(importlib.util.find_spec("byz_gym").submodule_search_locations)
sys.modules["byz_gym"] = package
import byz_gym.sim
"""


def test_sim_imports_neither_gymnasium_nor_baselines():
    subprocess.run([sys.executable, "-c", BLOCKED_IMPORT], check=True)
