from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from byz_gym.cli import main

SMALL_ENV = '{"n_workers": 8, "horizon": 6, "eval_every": 3}'


def test_list_prints_every_registry(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for expected in (
        "ByzGym/Digits-v0",
        "ByzGym/Digits-Majority-v0",
        "digits",
        "static",
        "random_fault",
        "oracle (privileged)",
        "uniform",
    ):
        assert expected in out


def test_run_json_last_line_is_the_summary(capsys):
    assert (
        main(
            [
                "run",
                "--env",
                "ByzGym/Digits-v0",
                "--env-kwargs",
                SMALL_ENV,
                "--policy",
                "oracle",
                "--seed",
                "3",
                "--rounds",
                "5",
                "--json",
            ]
        )
        == 0
    )
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    required = {
        "env",
        "policy",
        "seed",
        "rounds",
        "final_test_accuracy",
        "byzantine_credit_mass",
        "final_qv_loss",
        "wall_seconds",
    }
    assert required <= set(record)
    assert (record["env"], record["policy"], record["seed"], record["rounds"]) == ("ByzGym/Digits-v0", "oracle", 3, 5)
    assert record["byzantine_credit_mass"] == 0.0 and record["privileged"] is True
    assert 0.0 <= record["final_test_accuracy"] <= 1.0


def test_run_is_reproducible(capsys):
    args = ["run", "--env-kwargs", SMALL_ENV, "--policy", "random", "--rounds", "4", "--json"]
    main(args)
    first = json.loads(capsys.readouterr().out.splitlines()[-1])
    main(args)
    second = json.loads(capsys.readouterr().out.splitlines()[-1])
    for key in ("final_test_accuracy", "byzantine_credit_mass", "final_qv_loss", "total_reward"):
        assert first[key] == second[key]


def test_uniform_credit_mass_equals_beta(capsys):
    main(["run", "--env-kwargs", '{"n_workers": 10, "byzantine_fraction": 0.3}', "--rounds", "3", "--json"])
    record = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert record["byzantine_credit_mass"] == pytest.approx(0.3, abs=1e-6)


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "--policy", "nope", "--rounds", "1"], "unknown policy 'nope'; available:"),
        (["run", "--env-kwargs", '{"n_worker": 3}', "--rounds", "1"], r"unknown key\(s\) \['n_worker'\]"),
        (
            ["run", "--policy", "uniform", "--policy-kwargs", '{"f": 2}', "--rounds", "1"],
            r"unknown parameter\(s\) \['f'\]",
        ),
        (["run", "--rounds", "0", "--env-kwargs", SMALL_ENV], "rounds must be a positive integer"),
    ],
)
def test_errors_are_one_clear_line(capsys, args, message):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"byz-gym {args[0]}: error:")
    assert __import__("re").search(message, err)


def test_bad_json_is_rejected_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--env-kwargs", "{n_workers: 3}"])
    assert exit_info.value.code == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_demo_writes_results_and_plot(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--rounds", "4", "--env-kwargs", '{"n_workers": 8}', "--out", str(out), "--no-progress"]) == 0
    table = capsys.readouterr().out
    assert "| oracle (privileged) | ByzGym/Digits-v0 |" in table and "ByzGym/Digits-Clean-v0" in table
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [(r["env"], r["policy"]) for r in records] == [
        ("ByzGym/Digits-Clean-v0", "uniform"),
        ("ByzGym/Digits-v0", "uniform"),
        ("ByzGym/Digits-v0", "random"),
        ("ByzGym/Digits-v0", "loss_greedy"),
        ("ByzGym/Digits-v0", "gaa"),
        ("ByzGym/Digits-v0", "oracle"),
    ]
    assert (out / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temporary files


def test_module_and_console_script_entry_points():
    for command in ([sys.executable, "-m", "byz_gym", "list"], [shutil.which("byz-gym") or "byz-gym", "list"]):
        out = subprocess.run(command, capture_output=True, text=True, check=True)
        assert "ByzGym/Digits-v0" in out.stdout


# -- train | evaluate | plot ---------------------------------------------------------------------------------
@pytest.fixture
def one_torch_thread():
    """The tiny env runs fastest on one thread (two OpenMP threads on two busy cores: up to 30x slower)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_train_ppo_then_run_and_evaluate_the_model(tmp_path, capsys, one_torch_thread):
    out = tmp_path / "ppo"
    tiny = '{"n_steps": 32, "batch_size": 32, "n_epochs": 1}'
    args = ["train", "--algo", "ppo", "--timesteps", "64", "--n-envs", "1", "--env-kwargs", SMALL_ENV]
    assert main([*args, "--hyperparams", tiny, "--out", str(out), "--no-progress"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(out)
    for name in ("model.zip", "config.json", "vecnormalize.pkl", "monitor/0.monitor.csv"):
        assert (out / name).is_file(), name
    config = json.loads((out / "config.json").read_text())
    assert (config["algo"], config["total_timesteps"], config["hyperparams"]["n_steps"]) == ("ppo", 64, 32)

    run = ["run", "--policy", f"sb3:{out}", "--env-kwargs", SMALL_ENV, "--rounds", "3", "--json"]
    assert main(run) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (record["policy"], record["rounds"]) == ("sb3:ppo", 3)

    assert main(["evaluate", "--model", str(out), "--seeds", "0", "1"]) == 0
    report = capsys.readouterr().out
    assert "seeds [0, 1] x 1 episode(s)" in report
    assert __import__("re").search(r"episode return: \S+ ± \S+ \(n=2\)", report)
    assert "final test accuracy:" in report and "credit on Byzantine workers:" in report


def test_train_gaa_writes_the_agent_and_its_config(tmp_path, capsys, monkeypatch, one_torch_thread):
    monkeypatch.chdir(tmp_path)
    args = ["train", "--algo", "gaa", "--timesteps", "12", "--seed", "3", "--env-kwargs", SMALL_ENV]
    assert main([*args, "--hyperparams", '{"segment_length": 3, "hidden": 8}', "--no-progress"]) == 0
    run_dir = tmp_path / "runs" / "gaa" / "Digits-v0_s3"  # the default folder
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(run_dir.relative_to(tmp_path))
    assert {p.name for p in run_dir.iterdir()} == {"gaa_config.json", "gaa_weights.pt", "config.json"}
    config = json.loads((run_dir / "config.json").read_text())
    assert (config["algo"], config["episodes"], config["segments"], config["agent"]["hidden"]) == ("gaa", 2, 2, 8)
    assert config["optimizer_steps"] == 4 and config["scenario"]["n_workers"] == 8

    run = ["run", "--policy", f"gaa:{run_dir}", "--env-kwargs", SMALL_ENV, "--rounds", "2", "--json"]
    assert main(run) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["policy"] == "gaa"


def test_train_rejects_an_unknown_algorithm(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--algo", "dqn"])
    assert exit_info.value.code == 2
    assert "argument --algo: invalid choice: 'dqn'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--algo", "gaa", "--n-envs", "2"], "n_envs apply to SB3 algorithms only"),
        (["train", "--algo", "ppo", "--env", "ByzGym/Nope-v0"], "unknown env id 'ByzGym/Nope-v0'"),
        (["train", "--algo", "ppo", "--hyperparams", '{"n_step": 8}'], r"unknown hyperparameter\(s\) \['n_step'\]"),
        (
            ["train", "--algo", "ppo", "--hyperparams", "missing.yml"],
            "hyperparameter file 'missing.yml' does not exist",
        ),
        (["evaluate", "--model", "no/such/run"], "SB3 model 'no/such/run' not found"),
        (["run", "--policy", "sb3:no/such/run"], "SB3 model 'no/such/run' not found"),
        (["plot", "--results", "no/such.jsonl", "--out", "x.png"], "results file 'no/such.jsonl' does not exist"),
    ],
)
def test_train_evaluate_plot_errors_are_one_clear_line(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"byz-gym {args[0]}: error:")
    assert __import__("re").search(message, err)


def test_plot_draws_the_accuracy_curves_of_a_results_file(tmp_path, capsys):
    from byz_gym.experiments import RunResult, write_jsonl

    records = [
        RunResult("ByzGym/Digits-v0", name, 0, 4, 0.5, float("nan"), 1.0, 0.1, accuracy_curve=[(0, 0.1), (4, 0.5)])
        for name in ("uniform", "oracle")
    ]
    results = write_jsonl(tmp_path / "results.jsonl", [r.to_dict() for r in records])
    out = tmp_path / "plots" / "accuracy.png"
    assert main(["plot", "--results", str(results), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_draws_the_policy_curve(tmp_path, capsys):
    png = tmp_path / "curve.png"
    argv = [
        "run",
        "--policy",
        "oracle",
        "--env-kwargs",
        SMALL_ENV,
        "--rounds",
        "4",
        "--json",
        "--policy-curve",
        str(png),
    ]
    assert main(argv) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "credits" not in record and record["rounds"] == 4
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_episode_records_every_rounds_credit_and_the_byzantine_workers():
    from byz_gym.experiments import make_policy, run_episode

    env_kwargs = json.loads(SMALL_ENV)
    result = run_episode(
        "ByzGym/Digits-v0", make_policy("oracle"), seed=0, rounds=3, env_kwargs=env_kwargs, record_credits=True
    )
    n = env_kwargs["n_workers"]
    assert len(result.credits) == 3 and all(len(row) == n for row in result.credits)
    assert sum(result.byzantine_workers) == round(0.3 * n)  # static attack: the same workers every round
    for row in result.credits:  # the oracle: nothing on Byzantine workers, uniform on the others
        assert all(c == 0.0 for c, b in zip(row, result.byzantine_workers, strict=True) if b)
        assert sum(row) == pytest.approx(1.0)
    pretense = {**env_kwargs, "attack": {"schedule": {"name": "pretense", "params": {"honest_rounds": 2}}}}
    late = run_episode(
        "ByzGym/Digits-v0", make_policy("oracle"), seed=0, rounds=4, env_kwargs=pretense, record_credits=True
    )
    assert sum(late.byzantine_workers) == round(0.3 * n)  # honest at round 0, Byzantine from round 2
