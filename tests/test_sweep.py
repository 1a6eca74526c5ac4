from __future__ import annotations

import json

import pytest

from byz_gym.experiments import make_policy, run_episode
from byz_gym.experiments.sweep import Cell, load_sweep, read_results, run_sweep, summarize
from tests.utils import SMALL

SPEC = {
    "seeds": [0, 1],
    "envs": ["ByzGym/Digits-v0"],
    "policies": ["mean", {"policy": "krum", "label": "krum-f2", "policy_kwargs": {"f": 2}}],
    "cells": [{"env": "ByzGym/Digits-Clean-v0", "policy": "uniform", "label": "clean"}],
    "env_kwargs": SMALL,
}


def test_load_sweep_expands_the_grid_and_applies_shared_env_kwargs(tmp_path):
    path = tmp_path / "sweep.yml"
    path.write_text(json.dumps(SPEC))  # JSON is YAML
    cells, seeds, detection = load_sweep(path)
    assert seeds == [0, 1] and detection is False
    assert [(c.label, c.env) for c in cells] == [
        ("mean", "ByzGym/Digits-v0"),
        ("krum-f2", "ByzGym/Digits-v0"),
        ("clean", "ByzGym/Digits-Clean-v0"),
    ]
    assert all(dict(c.env_kwargs) == SMALL for c in cells)
    assert dict(cells[1].policy_kwargs) == {"f": 2}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"seeds": [0], "cells": [{"env": "E", "policy": "mean", "colour": 1}]}, "unknown keys"),
        ({"seeds": [0], "cells": [{"env": "E"}]}, "needs a 'policy'"),
        ({"seeds": [0], "cells": [{"policy": "mean"}]}, "needs an 'env'"),
        ({"seeds": [-1], "cells": [{"env": "E", "policy": "mean"}]}, "non-negative integers"),
        ({"seeds": [0]}, "no cells"),
        ({"seeds": [0], "cells": [{"env": "E", "policy": "mean"}] * 2}, "same cell twice"),
        ({"seeds": [0], "policy": "mean"}, "unknown sweep keys"),
    ],
)
def test_load_sweep_rejects_bad_specs_with_a_clear_message(spec, message):
    with pytest.raises(ValueError, match=message):
        load_sweep(spec)


def test_missing_or_corrupt_sweep_file_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_sweep(tmp_path / "nope.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("seeds: [0\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_sweep(bad)


def test_run_sweep_matches_single_runs_and_resumes(tmp_path):
    cells, seeds, _ = load_sweep(SPEC)
    out = tmp_path / "results.jsonl"
    records = run_sweep(cells[:2], seeds, out, progress=False)
    assert len(records) == 4 and len(read_results(out)) == 4
    single = run_episode("ByzGym/Digits-v0", make_policy("krum", f=2), seed=1, env_kwargs=SMALL)
    (krum1,) = [r for r in records if r["label"] == "krum-f2" and r["seed"] == 1]
    assert krum1["final_test_accuracy"] == single.final_test_accuracy
    assert krum1["byzantine_credit_mass"] == single.byzantine_credit_mass

    # an interrupted sweep: a half-written line at the end, one cell not run yet
    with open(out, "a") as handle:
        handle.write('{"cell": "trunc')
    with pytest.warns(UserWarning, match="half-written"):
        records = run_sweep(cells, seeds, out, workers=2, progress=False)
    assert len(records) == 6 and len(read_results(out)) == 6  # only the two new runs were added
    table = summarize(records)
    assert table.splitlines()[0] == "| policy | Digits-v0 | Digits-Clean-v0 |"
    assert "| clean |  | " in table and " ± " in table


def test_read_results_refuses_corruption_before_the_last_line(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"a": 1}\nnot json\n{"b": 2}\n')
    with pytest.raises(ValueError, match="line 2 is not valid JSON"):
        read_results(path)


def test_cell_label_defaults_to_the_policy_name():
    assert Cell("ByzGym/Digits-v0", "median").label == "median"


def test_run_episode_scores_detection_on_the_second_half():
    result = run_episode("ByzGym/Digits-v0", make_policy("oracle"), seed=0, env_kwargs=SMALL, detection=True)
    # the oracle gives Byzantine workers zero credit, so GAA+ at K = 1 always flags a Byzantine worker;
    # K = 10 and 35 exceed n = 8 and flag everyone
    n_byzantine = round(0.3 * SMALL["n_workers"])
    assert set(result.detection) == {"gaa+", "geomed+"}
    assert result.detection["gaa+"][1] == 1.0
    assert result.detection["gaa+"][10] == result.detection["gaa+"][35] == n_byzantine / SMALL["n_workers"]
    assert result.to_dict()["detection"]["geomed+"].keys() == {1, 10, 35}
    nonlinear = run_episode("ByzGym/Digits-v0", make_policy("median"), seed=0, env_kwargs=SMALL, detection=True)
    assert set(nonlinear.detection) == {"geomed+"}  # no credit: GAA+ does not apply


def test_sweep_command_prints_the_report_and_a_bad_file_exits_2(tmp_path, capsys):
    from byz_gym.cli import main

    spec = tmp_path / "sweep.yml"
    spec.write_text(
        f"seeds: [0]\ndetection: true\nenvs: [ByzGym/Digits-v0]\npolicies: [oracle]\nenv_kwargs: {json.dumps(SMALL)}\n"
    )
    out = tmp_path / "runs" / "results.jsonl"
    assert main(["sweep", str(spec), "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "| oracle | " in printed and "Detection precision" in printed and "1 runs in" in printed
    assert len(read_results(out)) == 1
    spec.write_text("seeds: [0]\n")
    assert main(["sweep", str(spec), "--out", str(out)]) == 2
    assert "no cells" in capsys.readouterr().err


def test_the_shipped_sweep_files_load():
    from pathlib import Path

    import byz_gym

    files = sorted((Path(__file__).resolve().parents[1] / "examples" / "sweeps").glob("*.yml"))
    assert files
    for path in files:
        cells, seeds, _ = load_sweep(path)
        assert seeds and cells
        assert {c.env for c in cells} <= set(byz_gym.registered_env_ids())


def test_the_shipped_results_cover_their_sweep_files():
    """docs/results/NAME.jsonl holds a run for every (cell, seed) of examples/sweeps/NAME.yml, so
    re-running a documented sweep only prints its tables (and an edited sweep file is noticed)."""
    from pathlib import Path

    import byz_gym  # noqa: F401  (registers the env ids the sweep files name)

    root = Path(__file__).resolve().parents[1]
    pairs = [
        (p, root / "docs" / "results" / f"{p.stem}.jsonl") for p in sorted((root / "examples" / "sweeps").glob("*.yml"))
    ]
    pairs = [(sweep, results) for sweep, results in pairs if results.exists()]
    assert len(pairs) >= 3
    for sweep, results in pairs:
        cells, seeds, _ = load_sweep(sweep)
        done = {(record["cell"], record["seed"]) for record in read_results(results)}
        missing = [(c.label, c.env, s) for c in cells for s in seeds if (c.key, s) not in done]
        assert not missing, f"{results.name} lacks runs of {sweep.name}: {missing[:5]}"
