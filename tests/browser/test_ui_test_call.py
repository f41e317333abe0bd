"""Telling Airflow's own Test-button failure (apache/airflow#73298) apart from the hook's verdict.

Runs without a browser; the payloads are the ones Airflow 3.3.2 exchanged in the browser test.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _ui_test_call import AIRFLOW_PORT_BUG, UiTestCall

_SENT = {"conn_type": "engagelab", "connection_id": "engagelab_ui", "host": "http://127.0.0.1:8080",
         "login": "sandbox-key", "password": "***", "schema": "", "extra": "{}"}
_BUG_DETAIL = {"detail": f"{AIRFLOW_PORT_BUG}. Include the credentials to test in the request body."}


def test_the_airflow_port_bug_is_recognised() -> None:
    call = UiTestCall(400, dict(_SENT, port=0), _BUG_DETAIL, "Test Connection Failed\nBad Request")
    assert call.is_airflow_port_bug
    assert not call.hook_ran


def test_the_same_400_with_a_real_port_is_not_the_bug() -> None:
    # a differing host/port the user really typed: Airflow's check working as intended
    call = UiTestCall(400, dict(_SENT, port=8080), _BUG_DETAIL, "Bad Request")
    assert not call.is_airflow_port_bug


def test_a_hook_failure_is_not_the_airflow_bug() -> None:
    verdict = {"status": False, "message": "Authentication failed: check the API Key and API Secret "
               "([HTTP 401, code 40050] authorization invalid)"}
    call = UiTestCall(200, dict(_SENT, port=0), verdict, "Test Connection Failed")
    assert not call.is_airflow_port_bug
    assert call.hook_ran


def test_other_airflow_errors_are_neither() -> None:
    call = UiTestCall(403, dict(_SENT, port=0), {"detail": "Testing connections is disabled"}, "Forbidden")
    assert not call.is_airflow_port_bug
    assert not call.hook_ran
