"""pytest plugin: a started EngageLab sandbox per test.

Enable it in a ``conftest.py`` (or a test module) with::

    pytest_plugins = ["airflow_provider_engagelab.testing.pytest_plugin"]

then use the ``engagelab_sandbox`` fixture::

    def test_my_dag(engagelab_sandbox):
        engagelab_sandbox.url          # "http://127.0.0.1:<port>"
        engagelab_sandbox.auth         # ("sandbox-key", "sandbox-secret")

Settings (keyword arguments of :class:`~airflow_provider_engagelab.testing.sandbox.Sandbox`)
come from the ``engagelab_sandbox_settings`` fixture (override it, or parametrize it, for a
module, class or test) and from the ``engagelab_sandbox`` marker, which wins::

    @pytest.mark.engagelab_sandbox(rate_limit=5, missing_journeys={42})
    def test_rate_limited(engagelab_sandbox): ...

    @pytest.mark.parametrize("engagelab_sandbox_settings", [{"failure_rate": 0.3, "seed": 1}])
    def test_flaky_upstream(engagelab_sandbox): ...

With ``--strict-markers``, enable the plugin in a ``conftest.py`` (as above) rather than in
the test module that uses the marker: pytest checks marker names when the module is imported.

Every :class:`~airflow_provider_engagelab.testing.sandbox.Sandbox` keyword works as a setting,
``ssl_context`` included (a sandbox over HTTPS, e.g. to test the ``verify`` connection extra
against a private CA).

The ``engagelab_connection`` fixture additionally points ``AIRFLOW_CONN_ENGAGELAB_DEFAULT``
(JSON form) at the sandbox for the duration of the test.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

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
def engagelab_sandbox_settings() -> dict[str, Any]:
    """Keyword arguments for the ``engagelab_sandbox`` fixture's Sandbox (default: none)."""
    return {}


@pytest.fixture
def engagelab_sandbox(
    request: pytest.FixtureRequest, engagelab_sandbox_settings: dict[str, Any]
) -> Iterator[Sandbox]:
    """A started :class:`Sandbox` on 127.0.0.1 (free port), stopped after the test."""
    settings: dict[str, Any] = dict(engagelab_sandbox_settings)
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
