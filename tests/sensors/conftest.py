"""Fixtures of the sensor/trigger tests: a sandbox connection.

Real Airflow runs (``airflow_home``, ``airflow_runner``) come from the shared
:mod:`conftest_airflow` (see ``tests/conftest.py``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sensor_helpers import KEY, SECRET, set_connection

from airflow_provider_engagelab.testing.sandbox import Sandbox


@pytest.fixture
def sandbox_conn(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    """A sandbox with a recognisable secret; ``AIRFLOW_CONN_ENGAGELAB_DEFAULT`` points at it.

    Retries stay small (2 retries, waits capped at 0.2 s) so transient faults are cheap.
    """
    with Sandbox(api_key=KEY, api_secret=SECRET) as sb:
        set_connection(monkeypatch, sb)
        yield sb
