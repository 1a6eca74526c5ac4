"""Smoke tests of ``examples/train_ppo.py`` and ``examples/compare_policies.py`` with tiny settings:
8 workers, 12-round episodes, 64 PPO steps, one seed."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import re
import shutil
from pathlib import Path

import pytest
import torch

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TINY_ENV = json.dumps({"n_workers": 8, "horizon": 12, "eval_every": 5})
TINY_PPO = json.dumps({"n_steps": 32, "batch_size": 32, "n_epochs": 1})
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_main(name: str, argv: list[str]) -> str:
    """``main(argv)`` of an example; returns what it printed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert load(name).main(argv) == 0
    return out.getvalue()


def table_value(text: str, label: str) -> float:
    """The number in the ``| label | x |`` row of the first markdown table of ``text``."""
    match = re.search(rf"^\| {re.escape(label)} \| (\d+\.\d+) \|$", text, flags=re.MULTILINE)
    assert match, f"no row {label!r} in:\n{text}"
    return float(match.group(1))


@pytest.fixture(scope="module", autouse=True)
def restore_torch_threads():
    threads = torch.get_num_threads()  # the examples' main() sets one thread
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def ppo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    run_dir = tmp_path_factory.mktemp("examples") / "ppo"
    argv = ["--timesteps", "64", "--n-envs", "1", "--hyperparams", TINY_PPO, "--env-kwargs", TINY_ENV]
    printed = run_main("train_ppo", [*argv, "--eval-seeds", "0", "--out", str(run_dir)])
    return run_dir, printed


@pytest.fixture(scope="module")
def compared(ppo_run: tuple[Path, str]) -> tuple[Path, str]:
    out = ppo_run[0].parent / "compare"
    printed = run_main(
        "compare_policies", ["--seeds", "0", "--env-kwargs", TINY_ENV, "--ppo", str(ppo_run[0]), "--out", str(out)]
    )
    return out, printed


def test_train_ppo_saves_a_model_and_scores_it_against_uniform(ppo_run: tuple[Path, str]) -> None:
    run_dir, printed = ppo_run
    assert (run_dir / "model.zip").is_file()
    config = json.loads((run_dir / "config.json").read_text())
    assert (config["algo"], config["total_timesteps"], config["env_kwargs"]["horizon"]) == ("ppo", 64, 12)
    assert str(run_dir) in printed
    for label in ("ppo", "uniform"):
        for seed in ("0", "mean"):
            match = re.search(rf"^{label}\s+{seed}\s+(\d\.\d{{3}})\s+(\d\.\d{{3}})$", printed, flags=re.MULTILINE)
            assert match, f"no {label} {seed} line in:\n{printed}"
            accuracy, credit = map(float, match.groups())
            assert 0.0 <= accuracy <= 1.0 and 0.0 <= credit <= 1.0
    # uniform credit gives the 6 Byzantine workers of 8 (β = 0.7) exactly their share
    assert re.search(r"^uniform\s+mean\s+\d\.\d{3}\s+0\.750$", printed, flags=re.MULTILINE)


def test_compare_policies_writes_results_plot_and_table(compared: tuple[Path, str]) -> None:
    out, printed = compared
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["label"] for r in records] == ["ppo", "gaa", "krum (f=2)", "mean"]  # n = 8: Krum accepts f <= 2
    assert {r["seed"] for r in records} == {0} and all(r["rounds"] == 12 for r in records)
    assert (out / "accuracy.png").read_bytes()[:8] == PNG_MAGIC
    accuracy, credit = printed.split("Credit on Byzantine workers")
    for label in ("ppo", "gaa", "krum (f=2)", "mean"):
        assert 0.0 <= table_value(accuracy, label) <= 1.0
        assert 0.0 <= table_value(credit, label) <= 1.0
    assert table_value(credit, "mean") == 0.75
    assert table_value(credit, "krum (f=2)") in (0.0, 1.0)  # Krum picks one worker


def test_compare_policies_without_ppo_skips_it(compared: tuple[Path, str]) -> None:
    out, _ = compared  # the other cells are already in results.jsonl: the sweep resumes, nothing reruns
    printed = run_main("compare_policies", ["--seeds", "0", "--env-kwargs", TINY_ENV, "--out", str(out)])
    assert "skipping PPO" in printed
    assert "| ppo |" not in printed and 0.0 <= table_value(printed, "gaa") <= 1.0


def test_compare_policies_trains_ppo_when_asked(compared: tuple[Path, str], tmp_path: Path) -> None:
    shutil.copy(compared[0] / "results.jsonl", tmp_path / "results.jsonl")  # only the new PPO cell runs
    argv = ["--seeds", "0", "--env-kwargs", TINY_ENV, "--out", str(tmp_path)]
    hyperparams = json.dumps({**json.loads(TINY_PPO), "n_envs": 1})
    printed = run_main("compare_policies", [*argv, "--train-timesteps", "32", "--hyperparams", hyperparams])
    config = json.loads((tmp_path / "ppo" / "config.json").read_text())
    assert (config["total_timesteps"], config["n_envs"]) == (32, 1)
    assert 0.0 <= table_value(printed, "ppo") <= 1.0
    assert (tmp_path / "accuracy.png").read_bytes()[:8] == PNG_MAGIC


def test_no_folder_beside_the_examples_shadows_a_package_when_they_run_as_scripts() -> None:
    """``python examples/x.py`` puts examples/ first on sys.path, where a folder named like one of
    our packages (e.g. examples/agents) became a namespace package that hid the real one from
    ``importlib.resources`` under an editable install."""
    packages = {"agents", "baselines", "byz_gym", "benchmarks", "tests"}
    assert not packages & {path.name for path in EXAMPLES.iterdir() if path.is_dir()}
