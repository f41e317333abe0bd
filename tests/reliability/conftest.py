"""Fixtures of the reliability suite: one sandbox per module, its Connection, real Airflow runs."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from reliability_helpers import CUTOFF, KEY, SECRET, reset_sandbox, set_conn

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
    """One sandbox per test module, with the suite's recognisable credentials."""
    with Sandbox(api_key=KEY, api_secret=SECRET, available_through=CUTOFF) as sb:
        yield sb


@pytest.fixture
def sb(module_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    """The module's sandbox, well-behaved and with zeroed counters; ``engagelab_default`` -> it."""
    reset_sandbox(module_sandbox)
    set_conn(monkeypatch, module_sandbox)
    yield module_sandbox
    reset_sandbox(module_sandbox)
