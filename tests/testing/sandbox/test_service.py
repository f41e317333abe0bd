"""sandbox/service.py: the Sandbox's controls and its oracle."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from airflow_provider_engagelab.testing.sandbox import Sandbox

from .helpers import CUTOFF


def test_expected_rows_has_no_api_limits_and_accepts_many_input_forms():
    s = Sandbox(available_through=CUTOFF)
    rows = s.expected_rows("journey", range(1, 151), "day", date(2026, 1, 1), "2026-02-09")
    assert len(rows) == 150 * 40
    assert s.expected_rows("journey", "5,6", "DAY", "2026-01-01", "2026-01-01") == (
        s.expected_rows("journey", [5, "6"], "DAY", datetime(2026, 1, 1, 12), "2026-01-01")
    )
    with pytest.raises(ValueError):
        s.expected_rows("journeys", [1], "DAY", "2026-01-01", "2026-01-01")
    with pytest.raises(ValueError):
        s.expected_rows("journey", [1], "WEEK", "2026-01-01", "2026-01-01")
    with pytest.raises(ValueError):
        s.expected_rows("journey", [1], "DAY", "2026-01-02", "2026-01-01")


def test_airflow_connection_takes_extras():
    with Sandbox(api_key="k", api_secret="s") as s:
        plain = {"conn_type": "engagelab", "host": s.url, "login": "k", "password": "s"}
        assert s.airflow_connection() == plain
        conn = s.airflow_connection(max_retries=2, verify="/ca.pem")
        assert conn["extra"] == {"max_retries": 2, "verify": "/ca.pem"} and conn["host"] == s.url
        assert s.airflow_connection("http")["conn_type"] == "http"
