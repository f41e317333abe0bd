"""The warehouse example DAG, run for real: dag.test() loading a real PostgreSQL server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_provider_engagelab.core.contract import COLUMNS, PRIMARY_KEYS
from airflow_provider_engagelab.core.query import StatsType
from airflow_provider_engagelab.testing.sandbox import Sandbox

EXAMPLES = Path(__file__).resolve().parents[2] / "example_dags"
CUTOFF = "2026-06-03T00:00:00+00:00"

pytestmark = pytest.mark.e2e

TABLES = {"journey": "engagelab_journey_stats", "message": "engagelab_message_stats",
          "webhook": "engagelab_webhook_stats"}


def _rows(server, stats_type: str) -> list[dict]:
    cols = COLUMNS[StatsType(stats_type)]
    key = PRIMARY_KEYS[StatsType(stats_type)]
    got = server.query(f"SELECT {', '.join(cols)} FROM public.{TABLES[stats_type]}")
    return sorted((dict(zip(cols, r, strict=True)) for r in got), key=lambda r: tuple(r[k] for k in key))


def _expected(sb: Sandbox, stats_type: str, ids: list[int]) -> list[dict]:
    key = PRIMARY_KEYS[StatsType(stats_type)]
    rows = [{**r, "revenue_amount": float(r["revenue_amount"])} if "revenue_amount" in r else r
            for r in sb.expected_rows(stats_type, ids, "DAY", "2026-05-30", "2026-06-01")]
    return sorted(rows, key=lambda r: tuple(r[k] for k in key))


def test_tables_dag_loads_postgres_exactly_once(airflow_runner, postgres_server, tmp_path):
    for table in TABLES.values():
        postgres_server.query(f"DROP TABLE IF EXISTS public.{table}")
    airflow_runner.add_dag_file(EXAMPLES / "example_engagelab_tables.py")
    ids = [101, 102, 103, 104, 105]
    with Sandbox(available_through=CUTOFF) as sb:
        env = {
            "AIRFLOW_CONN_ENGAGELAB_DEFAULT": json.dumps(sb.airflow_connection()),
            "AIRFLOW_CONN_ENGAGELAB_WAREHOUSE": json.dumps(postgres_server.connection()),
            "ENGAGELAB_JOURNEY_IDS": ",".join(map(str, ids)),
            "ENGAGELAB_BATCH_SIZE": "2",
            "ENGAGELAB_LAKE_PATH": (tmp_path / "lake").as_uri(),  # the DAG's Delta task
        }
        # The run for 2026-06-02T00:00 covers 2026-06-01; lookback_days=2 adds 05-30 and 05-31.
        first, second = airflow_runner.run(runs=[
            {"dag_id": "example_engagelab_tables", "logical_date": "2026-06-02T00:00:00+00:00"},
            {"dag_id": "example_engagelab_tables", "logical_date": "2026-06-02T00:00:00+00:00"},
        ], env=env)
        for stats_type in TABLES:
            assert _rows(postgres_server, stats_type) == _expected(sb, stats_type, ids), stats_type
    assert sorted(m for t, m in first.task_states if t == "message_to_sql") == [0, 1, 2]  # batches of 2
    totals = first.xcom("report")
    assert totals == {t: len(_expected(sb, t, ids)) for t in TABLES}
    assert second.xcom("report") == totals  # the rerun replaced the same rows
    summary = second.xcom("journey_to_sql")
    assert summary["rows_deleted"] == summary["rows_inserted"] == totals["journey"]
    assert summary["table"] == "public.engagelab_journey_stats" and summary["method"] == "copy"
    # lineage: the alias of each task resolved to the table's Asset, with what the run did
    uris = {e["uri"] for e in first.asset_events if e["task_id"] != "message_stats_delta"}
    port = postgres_server.port
    assert uris == {f"postgres://127.0.0.1:{port}/postgres/public/{t}" for t in TABLES.values()}
    journey_event = next(e for e in first.asset_events if e["task_id"] == "journey_to_sql")
    assert journey_event["extra"]["rows_inserted"] == totals["journey"]
    assert postgres_server.password not in json.dumps(first.asset_events + [summary])
