"""Sweeps: every (env, policy) cell of a grid run on the same seeds, one JSON line per (cell, seed).

A sweep file (YAML or JSON) lists the seeds and the cells; ``envs`` × ``policies`` expands to the
cartesian product, ``cells`` adds explicit ones::

    seeds: [0, 1, 2, 3, 4]
    envs: [ByzGym/Digits-v0, ByzGym/Digits-Majority-v0]
    policies: [mean, krum, {policy: gaa, label: gaa-lr0.1, policy_kwargs: {agent_learning_rate: 0.1}}]
    cells:
      - {env: ByzGym/Digits-Clean-v0, policy: uniform, label: clean}
    env_kwargs: {}          # applied to every cell (a cell's own env_kwargs win)
    detection: false        # record GAA+ / GeoMed+ precision per run (costs a little per round)

Results are appended to a JSON Lines file as each run finishes, so an interrupted sweep resumes
where it stopped (finished (cell, seed) pairs are skipped; a half-written last line is dropped).
Because every policy sees the same honest gradients on a seed (common random numbers), cells are
compared seed by seed.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from byz_gym.io import atomic_write_bytes

__all__ = ["Cell", "load_sweep", "read_results", "report", "run_sweep", "summarize"]


@dataclass(frozen=True)
class Cell:
    """One (env, policy) combination of a sweep; ``label`` names the policy column in tables."""

    env: str
    policy: str
    policy_kwargs: Mapping[str, Any] = field(default_factory=dict)
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""

    def __post_init__(self) -> None:
        if not self.label:
            object.__setattr__(self, "label", self.policy)

    @property
    def key(self) -> str:
        """Identifies the cell in result files (label, env and every parameter)."""
        return json.dumps(
            [self.label, self.env, self.policy, dict(self.policy_kwargs), dict(self.env_kwargs)], sort_keys=True
        )


def _cell_from(entry: Any, env: str | None, env_kwargs: Mapping[str, Any]) -> Cell:
    if isinstance(entry, str):
        entry = {"policy": entry}
    if not isinstance(entry, Mapping):
        raise ValueError(f"a sweep cell or policy must be a name or a mapping, got {entry!r}")
    allowed = {"env", "policy", "policy_kwargs", "env_kwargs", "label"}
    unknown = set(entry) - allowed
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)} in sweep entry {dict(entry)!r}; allowed: {sorted(allowed)}")
    if "policy" not in entry:
        raise ValueError(f"sweep entry {dict(entry)!r} needs a 'policy'")
    env_id = entry.get("env", env)
    if env_id is None:
        raise ValueError(f"sweep entry {dict(entry)!r} needs an 'env'")
    return Cell(
        env=str(env_id),
        policy=str(entry["policy"]),
        policy_kwargs=dict(entry.get("policy_kwargs") or {}),
        env_kwargs={**env_kwargs, **dict(entry.get("env_kwargs") or {})},
        label=str(entry.get("label", "")),
    )


def load_sweep(source: str | Path | Mapping[str, Any]) -> tuple[list[Cell], list[int], bool]:
    """``(cells, seeds, detection)`` from a YAML/JSON sweep file or an already-parsed mapping."""
    if isinstance(source, Mapping):
        spec = dict(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"sweep file {str(path)!r} does not exist")
        import yaml  # YAML is a superset of JSON: one loader reads both

        try:
            spec = yaml.safe_load(path.read_text())
        except yaml.YAMLError as error:
            raise ValueError(f"sweep file {str(path)!r} is not valid YAML/JSON: {error}") from None
        if not isinstance(spec, dict):
            raise ValueError(f"sweep file {str(path)!r} must hold a mapping with 'seeds' and 'cells' or 'envs'")
    allowed = {"seeds", "envs", "policies", "cells", "env_kwargs", "detection"}
    unknown = set(spec) - allowed
    if unknown:
        raise ValueError(f"unknown sweep keys {sorted(unknown)}; allowed: {sorted(allowed)}")
    seeds = spec.get("seeds", [0])
    if isinstance(seeds, int):
        seeds = list(range(seeds))
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise ValueError(f"seeds must be a non-empty list of non-negative integers (or a count), got {seeds!r}")
    env_kwargs = dict(spec.get("env_kwargs") or {})
    cells = [
        _cell_from(policy, env, env_kwargs) for env in spec.get("envs") or [] for policy in spec.get("policies") or []
    ]
    cells += [_cell_from(entry, None, env_kwargs) for entry in spec.get("cells") or []]
    if not cells:
        raise ValueError("the sweep has no cells: give 'envs' and 'policies', or 'cells'")
    keys = [c.key for c in cells]
    if len(set(keys)) != len(keys):
        raise ValueError("the sweep lists the same cell twice; give one of them a different 'label'")
    return cells, [int(s) for s in seeds], bool(spec.get("detection", False))


def read_results(path: str | Path) -> list[dict[str, Any]]:
    """The records of a results file; a corrupt (half-written) last line is dropped with a warning."""
    path = Path(path)
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):
                warnings.warn(f"{path}: dropped a half-written last line (an interrupted run)", stacklevel=2)
                continue
            raise ValueError(f"{path}: line {number} is not valid JSON; the results file is corrupt") from None
    return records


def _run_one(job: tuple[Cell, int, bool]) -> dict[str, Any]:
    from byz_gym.experiments.policies import make_policy
    from byz_gym.experiments.runner import run_episode

    cell, seed, detection = job
    policy = make_policy(cell.policy, **dict(cell.policy_kwargs))
    result = run_episode(cell.env, policy, seed=seed, env_kwargs=dict(cell.env_kwargs), detection=detection)
    return {"cell": cell.key, "label": cell.label, "policy_kwargs": dict(cell.policy_kwargs), **result.to_dict()}


def run_sweep(
    cells: Sequence[Cell],
    seeds: Sequence[int],
    out: str | Path,
    *,
    workers: int = 1,
    detection: bool = False,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Run every (cell, seed) not yet in ``out`` and return all records of the sweep's cells.

    ``workers > 1`` runs cells in that many processes (each single-threaded in torch), which gives
    the same numbers as ``workers=1``: every run depends on its seed alone.
    """
    out = Path(out)
    existing = read_results(out)
    # Rewrite once without any half-written line, then append one line per finished run.
    atomic_write_bytes(out, "".join(json.dumps(r) + "\n" for r in existing).encode())
    done = {(r["cell"], r["seed"]) for r in existing}
    jobs = [(cell, int(seed), detection) for cell in cells for seed in seeds if (cell.key, int(seed)) not in done]
    workers = max(1, min(int(workers), len(jobs) or 1))

    bar = None
    if progress and jobs:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs), desc="sweep", unit="run")
    with open(out, "a") as handle:

        def record(result: dict[str, Any]) -> None:
            handle.write(json.dumps(result) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
            existing.append(result)
            if bar is not None:
                bar.update()

        if workers == 1:
            for job in jobs:
                record(_run_one(job))
        else:
            with multiprocessing.get_context("fork" if os.name == "posix" else "spawn").Pool(workers) as pool:
                for result in pool.imap_unordered(_run_one, jobs):
                    record(result)
    if bar is not None:
        bar.close()
    keys = {c.key for c in cells}
    return [r for r in existing if r["cell"] in keys]


def _mean_std(values: Iterable[float | None]) -> str:
    xs = np.array([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if xs.size == 0:
        return "–"
    if xs.size == 1:
        return f"{xs[0]:.3f}"
    return f"{xs.mean():.3f} ± {xs.std(ddof=1):.3f}"


def summarize(records: Sequence[Mapping[str, Any]], metric: str = "final_test_accuracy") -> str:
    """Markdown table: one row per policy label, one column per env, ``mean ± std`` over seeds."""
    envs = list(dict.fromkeys(r["env"] for r in records))
    labels = list(dict.fromkeys(r["label"] for r in records))
    lines = ["| policy | " + " | ".join(e.removeprefix("ByzGym/") for e in envs) + " |"]
    lines.append("|---" * (len(envs) + 1) + "|")
    for label in labels:
        cells = []
        for env in envs:
            values = [r.get(metric) for r in records if r["label"] == label and r["env"] == env]
            cells.append(_mean_std(values) if values else "")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _detection_table(records: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for label in dict.fromkeys(r["label"] for r in records):
        for env in dict.fromkeys(r["env"] for r in records):
            runs = [r for r in records if r["label"] == label and r["env"] == env and r.get("detection")]
            for method in ("gaa+", "geomed+"):
                scores = [r["detection"][method] for r in runs if method in r["detection"]]
                if scores:
                    ks = list(scores[0])
                    values = " | ".join(_mean_std(s.get(k) for s in scores) for k in ks)
                    rows.append((f"| {label} | {env.removeprefix('ByzGym/')} | {method} | {values} |", ks))
    if not rows:
        return ""
    ks = rows[0][1]
    head = "| policy | env | detector | " + " | ".join(f"precision K={k}" for k in ks) + " |"
    return "\n".join([head, "|---" * (3 + len(ks)) + "|", *(row for row, _ in rows)])


def report(records: Sequence[Mapping[str, Any]]) -> str:
    """Markdown: final test accuracy and credit on Byzantine workers (``mean ± std`` over seeds), and
    detection precision when the sweep recorded it."""
    parts = ["Final test accuracy", summarize(records), "", "Credit on Byzantine workers (mean over rounds)"]
    parts.append(summarize(records, "byzantine_credit_mass"))
    detection = _detection_table(records)
    if detection:
        parts += ["", "Detection precision over the second half of the rounds", detection]
    return "\n".join(parts)
