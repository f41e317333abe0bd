"""EngageLabHook against the sandbox over real HTTP on 127.0.0.1 (concurrency, oracle rows)."""

from __future__ import annotations

import json

import pytest

from airflow_provider_engagelab.hooks.engagelab import EngageLabHook
from airflow_provider_engagelab.testing.sandbox import Sandbox


@pytest.fixture
def sandbox(engagelab_sandbox: Sandbox) -> Sandbox:
    """The shipped plugin's sandbox."""
    return engagelab_sandbox


def _point(monkeypatch, sb, **extra):
    monkeypatch.setenv("AIRFLOW_CONN_ENGAGELAB_DEFAULT", json.dumps(sb.airflow_connection(**extra)))


def test_calls_run_concurrently_up_to_the_limit_in_plan_order(monkeypatch, sandbox):
    _point(monkeypatch, sandbox, max_concurrent_requests=3)
    sandbox.configure(latency=0.05)
    ids = list(range(1, 1001))
    result = EngageLabHook().get_journey_stats(ids, "DAY", "2026-06-01", "2026-06-01")
    counters = sandbox.counters()
    assert result.calls == 10 == counters["requests"]
    assert counters["max_in_flight"] == 3
    assert result.rows == sandbox.expected_rows("journey", ids, "DAY", "2026-06-01", "2026-06-01")


@pytest.mark.parametrize("stats_type", ["journey", "message", "webhook"])
@pytest.mark.parametrize("time_unit", ["DAY", "HOUR"])
def test_rows_equal_the_oracle_across_chunk_borders(monkeypatch, sandbox, stats_type, time_unit):
    _point(monkeypatch, sandbox)
    ids = list(range(1, 131))  # 2 batches
    start, end = "2026-01-20", "2026-02-25"  # 37 days -> 2 windows
    result = EngageLabHook().get_stats(stats_type, ids, time_unit, start, end)
    expected = sandbox.expected_rows(stats_type, ids, time_unit, start, end)
    key = ("journey_id", "time", "component_id")
    assert sorted(result.rows, key=lambda r: tuple(r.get(k, 0) for k in key)) == sorted(
        expected, key=lambda r: tuple(r.get(k, 0) for k in key))
    assert result.calls == 4 == sandbox.counters()["requests"]
