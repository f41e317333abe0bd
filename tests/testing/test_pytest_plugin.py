"""testing/pytest_plugin.py: the engagelab_sandbox and engagelab_connection fixtures and the marker."""

from __future__ import annotations

import json
import os

import pytest
import requests

from .sandbox.helpers import CUTOFF, query

pytest_plugins = ["pytester"]  # the plugin itself is enabled in tests/conftest.py


def test_pytest_fixture(engagelab_sandbox):
    assert engagelab_sandbox.running
    assert engagelab_sandbox.auth == ("sandbox-key", "sandbox-secret")
    r = requests.get(engagelab_sandbox.url + "/_admin/health", timeout=5)
    assert r.json() == {"status": "ok"}

@pytest.mark.parametrize(
    "engagelab_sandbox_settings", [{"missing_journeys": {5}, "available_through": CUTOFF}]
)
def test_pytest_fixture_settings_and_connection(engagelab_connection):
    assert engagelab_connection.config.missing_journeys == frozenset({5})
    conn = json.loads(os.environ["AIRFLOW_CONN_ENGAGELAB_DEFAULT"])
    assert conn == {
        "conn_type": "engagelab",
        "host": engagelab_connection.url,
        "login": "sandbox-key",
        "password": "sandbox-secret",
    }
    assert query(engagelab_connection, journey_id="5").json()["data"][0]["error_code"] == 50202

def test_pytest_plugin_marker_as_a_user_enables_it(pytester):
    pytester.makeconftest(
        'pytest_plugins = ["pytester", "airflow_provider_engagelab.testing.pytest_plugin"]\n'
    )
    pytester.makepyfile(
        """
        import pytest
        import requests

        @pytest.mark.engagelab_sandbox(rate_limit=1, api_secret="other")
        def test_marker(engagelab_sandbox):
            assert engagelab_sandbox.config.rate_limit == 1.0
            assert engagelab_sandbox.auth == ("sandbox-key", "other")

        def test_default(engagelab_sandbox):
            assert engagelab_sandbox.config.rate_limit is None
            r = requests.get(engagelab_sandbox.url + "/_admin/health", timeout=5)
            assert r.status_code == 200
        """
    )
    result = pytester.runpytest("--strict-markers", "-p", "no:cacheprovider", "-p", "no:asyncio")
    result.assert_outcomes(passed=2)
