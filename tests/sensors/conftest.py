"""Fixtures of the sensor/trigger tests: a sandbox connection.

The sandbox is the shipped plugin's ``engagelab_sandbox``; real Airflow runs
(``airflow_home``, ``airflow_runner``) come from :mod:`tests.conftest_airflow` (see
``tests/conftest.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_engagelab.testing.sandbox import Sandbox
from tests.sensors.sensor_helpers import KEY, SECRET, set_connection


@pytest.fixture
def engagelab_sandbox_settings() -> dict[str, Any]:
    """The plugin's sandbox with a recognisable secret."""
    return {"api_key": KEY, "api_secret": SECRET}


@pytest.fixture
def sandbox_conn(engagelab_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    """The sandbox, with ``AIRFLOW_CONN_ENGAGELAB_DEFAULT`` pointing at it.

    Retries stay small (2 retries, waits capped at 0.2 s) so transient faults are cheap.
    """
    set_connection(monkeypatch, engagelab_sandbox)
    yield engagelab_sandbox
