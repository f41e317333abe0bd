"""Fixtures of the reliability suite: one sandbox per module, its Connection, real Airflow runs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from reliability_helpers import CUTOFF, KEY, SECRET, reset_sandbox, set_conn

from airflow_provider_engagelab.testing.sandbox import Sandbox


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
