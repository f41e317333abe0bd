"""Fixtures for the operator tests: the sandbox API, its Connection, and real Airflow runs."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from airflow_provider_engagelab.testing.sandbox import Sandbox


@pytest.fixture(scope="module")
def module_sandbox() -> Iterator[Sandbox]:
    """One sandbox per test module (fast); tests that change its settings restore them."""
    with Sandbox() as sb:
        yield sb


@pytest.fixture
def sandbox(module_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    """The module's sandbox, reset, with ``AIRFLOW_CONN_ENGAGELAB_DEFAULT`` pointing at it."""
    module_sandbox.clear_faults()
    module_sandbox.configure(missing_journeys=set(), failure_rate=0.0, rate_limit=None)
    module_sandbox.reset_counters()
    monkeypatch.setenv("AIRFLOW_CONN_ENGAGELAB_DEFAULT", json.dumps(module_sandbox.airflow_connection()))
    yield module_sandbox
    module_sandbox.clear_faults()


@pytest.fixture
def sandbox_env(sandbox: Sandbox) -> dict[str, str]:
    """Environment for an Airflow subprocess: the EngageLab connection pointing at the sandbox."""
    return {"AIRFLOW_CONN_ENGAGELAB_DEFAULT": json.dumps(sandbox.airflow_connection())}
