"""Fixtures for the operator tests: the sandbox API, its Connection, and real Airflow runs."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_engagelab.testing.sandbox import Sandbox

_NAME = "engagelab_conftest_airflow"
if _NAME not in sys.modules:  # tests/ is not a package: load the shared helper by path
    _spec = importlib.util.spec_from_file_location(
        _NAME, Path(__file__).resolve().parents[1] / "conftest_airflow.py"
    )
    assert _spec is not None and _spec.loader is not None
    _module = importlib.util.module_from_spec(_spec)
    sys.modules[_NAME] = _module
    _spec.loader.exec_module(_module)

from engagelab_conftest_airflow import airflow_home, airflow_runner  # noqa: E402, F401


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
