"""Helpers shared by the sensor/trigger tests (importable by reference:
``tests.sensors.sensor_helpers:only_journey_7_complete``)."""

from __future__ import annotations

import base64
import json

import pytest

from airflow_provider_engagelab.testing.sandbox import Sandbox
from tests.conftest_airflow import without_mask_echo

SECRET = "sensor-Secret-5e1f-do-not-log"
KEY = "sensor-key"
TOKEN = base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()


def leaked(text: str) -> list[str]:
    """Lines of ``text`` that show the API secret or the Basic token.

    ``dag.test()``'s DEBUG echo of the masker registration is left out (see
    :func:`tests.conftest_airflow.without_mask_echo`): Airflow's harness, not a leak of the provider.
    """
    return [line for line in without_mask_echo(text).splitlines() if SECRET in line or TOKEN in line]


def set_connection(monkeypatch: pytest.MonkeyPatch, sb: Sandbox, **extra: object) -> None:
    """Point ``engagelab_default`` at ``sb`` with the given tuning extras."""
    conn = sb.airflow_connection(**{"max_retries": 2, "max_retry_wait": 0.2, **extra})
    monkeypatch.setenv("AIRFLOW_CONN_ENGAGELAB_DEFAULT", json.dumps(conn))


def only_journey_7_complete(rows, errors):
    """A custom readiness check defined at module level (importable by reference)."""
    return any(r["journey_id"] == 7 and r["time"].endswith(" 23") for r in rows)


def always_fails(rows, errors):
    """A custom check with a bug."""
    raise ZeroDivisionError("division by zero in my check")
