"""pytest plugin: a started EngageLab sandbox per test.

Enable it in a ``conftest.py`` (or a test module) with::

    pytest_plugins = ["airflow_provider_engagelab.testing.pytest_plugin"]

then use the ``engagelab_sandbox`` fixture::

    def test_my_dag(engagelab_sandbox):
        engagelab_sandbox.url          # "http://127.0.0.1:<port>"
        engagelab_sandbox.auth         # ("sandbox-key", "sandbox-secret")

Settings for one test go in the ``engagelab_sandbox`` marker, whose keyword arguments are
passed to :class:`~airflow_provider_engagelab.testing.sandbox.Sandbox`::

    @pytest.mark.engagelab_sandbox(rate_limit=5, missing_journeys={42})
    def test_rate_limited(engagelab_sandbox): ...

The ``engagelab_connection`` fixture additionally points ``AIRFLOW_CONN_ENGAGELAB_DEFAULT``
(JSON form) at the sandbox for the duration of the test.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from airflow_provider_engagelab.testing.sandbox import Sandbox

_MARKER = "engagelab_sandbox"


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``engagelab_sandbox`` marker (works with ``--strict-markers``)."""
    config.addinivalue_line(
        "markers",
        f"{_MARKER}(**settings): keyword arguments for the engagelab_sandbox fixture's Sandbox",
    )


@pytest.fixture
def engagelab_sandbox(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    """A started :class:`Sandbox` on 127.0.0.1 (free port), stopped after the test."""
    settings: dict = {}
    for marker in reversed(list(request.node.iter_markers(_MARKER))):
        settings.update(marker.kwargs)  # the closest marker wins
    with Sandbox(**settings) as sandbox:
        yield sandbox


@pytest.fixture
def engagelab_connection(
    engagelab_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Sandbox]:
    """The sandbox, with ``AIRFLOW_CONN_ENGAGELAB_DEFAULT`` pointing at it for this test."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_ENGAGELAB_DEFAULT", json.dumps(engagelab_sandbox.airflow_connection())
    )
    yield engagelab_sandbox
