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
        ("ByzGym/Digits-v0", "oracle"),
    ]
    assert (out / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temporary files


def test_module_and_console_script_entry_points():
    for command in ([sys.executable, "-m", "byz_gym", "list"], [shutil.which("byz-gym") or "byz-gym", "list"]):
        out = subprocess.run(command, capture_output=True, text=True, check=True)
        assert "ByzGym/Digits-v0" in out.stdout
