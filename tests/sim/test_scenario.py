from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from byz_gym.scenarios import SCENARIOS
from byz_gym.sim import AttackSpec, Component, Scenario


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_presets_round_trip_through_json(name):
    scenario = SCENARIOS[name]
    assert Scenario.from_json(scenario.to_json()) == scenario
    assert Scenario.from_dict(json.loads(json.dumps(scenario.to_dict()))) == scenario


@given(
    n=st.integers(1, 200),
    beta=st.floats(0, 1),
    lr=st.floats(1e-6, 10),
    batch=st.integers(1, 512),
    scale=st.floats(-5, 5, allow_nan=False),
)
def test_any_valid_scenario_round_trips(n, beta, lr, batch, scale):
    scenario = Scenario(
        n_workers=n,
        byzantine_fraction=beta,
        learning_rate=lr,
        worker_batch_size=batch,
        attack={"schedule": "static", "tampering": {"name": "sign_flip", "params": {"scale": scale}}},
    )
    assert Scenario.from_json(scenario.to_json()) == scenario
    assert 0 <= scenario.n_byzantine <= n


def test_shorthand_components_equal_full_form():
    short = Scenario(task="digits", attack={"schedule": "static", "tampering": "sign_flip"})
    full = Scenario(
        task={"name": "digits", "params": {}},
        attack=AttackSpec(schedule=Component("static"), tampering=Component("sign_flip", {})),
    )
    assert short == full


def test_byzantine_count_rounds_beta_n():
    assert Scenario(n_workers=50, byzantine_fraction=0.3).n_byzantine == 15
    assert Scenario(n_workers=50, byzantine_fraction=0.7).n_byzantine == 35
    assert Scenario(n_workers=10, byzantine_fraction=0.0).n_byzantine == 0


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"n_workers": 0}, "n_workers must be a positive integer"),
        ({"n_workers": 2.5}, "n_workers must be a positive integer"),
        ({"byzantine_fraction": 1.5}, r"byzantine_fraction must be a number in \[0, 1\]"),
        ({"learning_rate": float("nan")}, "learning_rate must be a finite positive"),
        ({"learning_rate": -1.0}, "learning_rate must be a finite positive"),
        ({"horizon": 0}, "horizon must be a positive integer"),
        ({"task": {"name": "digits", "params": {"x": object()}}}, "JSON-serialisable"),
        ({"attack": {"schedule": "static", "tamper": "x"}}, r"unknown key\(s\) \['tamper'\]"),
    ],
)
def test_invalid_fields_raise_clear_errors(changes, message):
    with pytest.raises(ValueError, match=message):
        Scenario(**changes)


def test_unknown_keys_are_listed_with_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['n_worker'\]; valid keys: \['task', 'n_workers'"):
        Scenario.from_dict({"n_worker": 10})
    with pytest.raises(ValueError, match="unknown key"):
        Scenario().replace(lr=0.1)
