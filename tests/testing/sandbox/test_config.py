"""sandbox/config.py: settings and the rule of each."""

from __future__ import annotations

import re

import pytest

from airflow_provider_engagelab.testing.sandbox import Sandbox
from airflow_provider_engagelab.testing.sandbox.config import (
    CONFIG_FIELDS,
    RULES,
    SandboxConfig,
    coerce_config,
)


def test_configure_rejects_bad_values():
    s = Sandbox()
    for bad in (
        {"failure_rate": -0.1},
        {"rate_limit": 0},
        {"rate_burst": 0.5},
        {"missing_journey_mode": "sometimes"},
        {"latency": "slow"},
        {"available_through": "yesterday"},
        {"retry_after_override": -1},
        {"unknown": 1},
    ):
        with pytest.raises((TypeError, ValueError)):
            s.configure(**bad)
    with pytest.raises(TypeError):
        Sandbox(unknown_setting=1)
    assert s.configure(missing_journeys="1, 2").missing_journeys == frozenset({1, 2})


def test_every_setting_has_one_rule_and_values_are_normalised():
    assert set(RULES) == CONFIG_FIELDS
    cfg = coerce_config(SandboxConfig(), {
        "rate_limit": 2, "rate_burst": None, "latency": 1, "missing_journeys": 7,
        "available_through": "2026-01-02T03:00:00Z", "retry_after_override": None, "seed": 3})
    assert (cfg.rate_limit, cfg.latency, cfg.missing_journeys) == (2.0, 1.0, frozenset({7}))
    assert cfg.available_through.isoformat() == "2026-01-02T03:00:00+00:00"
    assert isinstance(cfg.rate_limit, float) and cfg.seed == 3


@pytest.mark.parametrize(
    ("name", "value", "error", "words"),
    [
        ("api_key", 1, TypeError, "api_key must be a string"),
        ("send_retry_after", "yes", TypeError, "send_retry_after must be a bool"),
        ("missing_journey_mode", "sometimes", ValueError, "'per_journey', 'whole_call'"),
        ("rate_limit", 0, ValueError, "rate_limit must be > 0.0"),
        ("rate_limit", True, TypeError, "rate_limit must be a number"),
        ("drop_rate", 1.5, ValueError, "drop_rate must be [0.0, 1.0]"),
        ("hang_seconds", float("nan"), ValueError, "hang_seconds must be >= 0.0"),
        ("log_size", -1, ValueError, "log_size must be >= 0"),
        ("seed", 1.0, TypeError, "seed must be an int"),
        ("available_through", 5, TypeError, "available_through must be a datetime"),
    ],
)
def test_each_rule_refuses_with_the_setting_named(name, value, error, words):
    with pytest.raises(error, match=re.escape(words)):
        coerce_config(SandboxConfig(), {name: value})
