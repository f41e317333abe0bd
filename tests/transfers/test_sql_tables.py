"""The SQL transfer's tables and its refusals: created columns, existing tables, bad input.

Every refusal happens before any API request (the sandbox counts none) and names the
parameter; an existing table that does not match is left exactly as it was.
"""

from __future__ import annotations

import json
import re
import sqlite3

import pytest

from airflow_provider_engagelab import get_provider_info
from airflow_provider_engagelab.core.sql_table import parse_table_name, replace_ranges
from airflow_provider_engagelab.exceptions import EngageLabSchemaChangeError, EngageLabValidationError
from airflow_provider_engagelab.testing.sandbox import Fault
from airflow_provider_engagelab.transfers.engagelab_to_sql import EngageLabStatsToSqlOperator
from tests.transfers.sql_helpers import J, expected, run_task

PG_TYPES = {
    "journey_id": "bigint", "time_unit": "character varying(32)", "time": "character varying(32)",
    "component_id": "bigint", "component_name": "text", "channel": "text", "entry_count": "bigint",
    "revenue_count": "bigint", "revenue_amount": "double precision",
    "bucket_start": "timestamp without time zone",
}
SQLITE_TYPES = {
    "journey_id": "BIGINT", "time_unit": "VARCHAR(32)", "time": "VARCHAR(32)", "component_id": "BIGINT",
    "component_name": "TEXT", "channel": "TEXT", "entry_count": "BIGINT", "revenue_count": "BIGINT",
    "revenue_amount": "FLOAT", "bucket_start": "DATETIME",
}


def test_created_columns_are_typed_and_keyed(db):
    run_task(db, "message", "DAY", [1], "2026-05-01", "2026-05-01")
    types = db.column_types()
    want = PG_TYPES if db.backend == "postgres" else SQLITE_TYPES
    assert {k: types[k][0] for k in want} == want
    assert len(types) == 17  # journey_id, time_unit, 14 message fields, bucket_start
    assert not any(nullable for _, nullable in types.values())
    assert db.primary_key() == {"journey_id", "time_unit", "time", "component_id"}
    db.table += "_j"
    run_task(db, "journey", "DAY", [1], "2026-05-01", "2026-05-01")
    assert db.primary_key() == {"journey_id", "time_unit", "time"}


@pytest.mark.parametrize("name", ["Stats_Table", "user", "order"])
def test_names_that_need_quotes_are_quoted_by_the_dialect(sb, db, name):
    """Capitals (case-sensitive once quoted) and reserved words: created, found again, loaded."""
    db.table = name
    try:
        for _ in range(2):
            run_task(db, "journey", "DAY", [1, 2], "2026-05-01", "2026-05-02")
        want = expected(sb, "journey", "DAY", ([1, 2], "2026-05-01", "2026-05-02"))
        assert db.rows("journey", f'"{name}"') == want
    finally:
        db.execute(f'DROP TABLE IF EXISTS "{name}"')


def test_a_schema_qualified_table(sb, db):
    schema = "engagelab_stats" if db.backend == "postgres" else "main"
    if db.backend == "postgres":
        db.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    db.table = f"{schema}.{db.table}"
    summary = run_task(db, "webhook", "DAY", [1], "2026-05-01", "2026-05-02")
    assert summary["table"] == db.table and summary["schema"] == schema
    assert db.rows("webhook") == expected(sb, "webhook", "DAY", ([1], "2026-05-01", "2026-05-02"))


def test_the_summary_is_small_and_complete(sb, db):
    sb.configure(missing_journeys=[2])
    summary = run_task(db, "journey", "DAY", [1, 2], "2026-05-01", "2026-05-02", on_journey_error="warn")
    assert summary == {
        "table": db.table, "schema": "public" if db.backend == "postgres" else "main",
        "stats_type": "journey", "time_unit": "DAY", "window": {"start": "2026-05-01", "end": "2026-05-02"},
        "rows_deleted": 0, "rows_inserted": 2, "created": True,
        "method": "copy" if db.backend == "postgres" else "executemany", "calls": 1, "requests": 1,
        "journey_errors": [{"journey_id": 2, "error_code": 50202,
                            "meaning": "journey does not exist or belongs to another project"}],
        "schema_changes": [],
    }
    json.dumps(summary)


def test_a_field_the_contract_does_not_name_is_reported_and_left_out(sb, db):
    sb.inject(Fault("bad_field", field="loyalty_points", value=3))
    summary = run_task(db, "journey", "DAY", [1], "2026-05-01", "2026-05-02")
    assert summary["schema_changes"] == [{"field": "loyalty_points", "journey_id": 1, "time": "2026-05-01"}]
    assert db.rows("journey") == expected(sb, "journey", "DAY", ([1], "2026-05-01", "2026-05-02"))


def test_on_schema_change_fail_changes_nothing_and_keep_is_refused(sb, db):
    run_task(db, "journey", "DAY", [1], "2026-05-01", "2026-05-02")
    before = db.rows("journey")
    db.execute(f"UPDATE {db.table} SET entry_count = -1")
    sb.inject(Fault("bad_field", field="loyalty_points", value=3))
    with pytest.raises(EngageLabSchemaChangeError, match="loyalty_points"):
        run_task(db, "journey", "DAY", [1], "2026-05-01", "2026-05-02", on_schema_change="fail")
    assert db.rows("journey") == [{**r, "entry_count": -1} for r in before]
    with pytest.raises(EngageLabValidationError, match=r"Invalid on_schema_change='keep': a SQL table has "
                       r"no column for fields the contract does not name"):
        run_task(db, "journey", "DAY", [1], "2026-05-01", "2026-05-02", on_schema_change="keep")


# ---------------------------------------------------------------------------- existing tables


def _create(db, columns: str) -> None:
    db.execute(f"CREATE TABLE {db.table} ({columns})")


JOURNEY_COLUMNS = ("journey_id BIGINT NOT NULL, time_unit VARCHAR(32) NOT NULL, time VARCHAR(32) NOT NULL, "
                   "entry_count BIGINT NOT NULL, conversion_count BIGINT NOT NULL, "
                   "completion_count BIGINT NOT NULL, early_exit_count BIGINT NOT NULL, "
                   "in_progress_count BIGINT NOT NULL, bucket_start TIMESTAMP NOT NULL")


def test_a_compatible_table_made_by_hand_is_used(sb, db):
    """Extra columns that may be left empty, NUMERIC counts: fine; its rows are loaded."""
    _create(db, JOURNEY_COLUMNS.replace("entry_count BIGINT", "entry_count NUMERIC(20)")
            + ", loaded_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP, note TEXT, "
            "PRIMARY KEY (journey_id, time_unit, time)")
    summary = run_task(db, "journey", "DAY", [1, 2], "2026-05-01", "2026-05-01")
    assert summary["created"] is False and summary["rows_inserted"] == 2
    assert len(db.execute(f"SELECT loaded_at FROM {db.table} WHERE loaded_at IS NOT NULL")) == 2


MISMATCHES = {
    "missing column": (JOURNEY_COLUMNS.replace(", in_progress_count BIGINT NOT NULL", "")
                       + ", PRIMARY KEY (journey_id, time_unit, time)",
                       r"missing column\(s\) in_progress_count \(BIGINT\)"),
    "wrong type": (JOURNEY_COLUMNS.replace("entry_count BIGINT", "entry_count TEXT")
                   + ", PRIMARY KEY (journey_id, time_unit, time)",
                   r"column entry_count is text, expected BIGINT"),
    "wrong key": (JOURNEY_COLUMNS + ", PRIMARY KEY (journey_id, time)",
                  r"primary key is \(journey_id, time\), expected \(journey_id, time_unit, time\)"),
    "no key": (JOURNEY_COLUMNS, r"primary key is \(none\)"),
    "a required column it does not write": (JOURNEY_COLUMNS + ", tenant TEXT NOT NULL, "
                                            "PRIMARY KEY (journey_id, time_unit, time)",
                                            r"NOT NULL without a default: tenant"),
}


@pytest.mark.parametrize("kind", list(MISMATCHES))
def test_an_existing_table_that_does_not_match_is_refused_and_left_alone(sb, db, kind):
    columns, message = MISMATCHES[kind]
    _create(db, columns)
    before = db.column_types()
    pattern = re.compile(rf"Invalid table='{db.table}': the existing table does not match the journey "
                         rf"statistics this task writes: .*{message}.*left as it is", re.IGNORECASE)
    with pytest.raises(EngageLabValidationError, match=pattern):
        run_task(db, "journey", "DAY", [1], "2026-05-01", "2026-05-01")
    assert db.column_types() == before
    assert sb.counters()["requests"] == 0


def test_a_missing_table_without_create_table_is_refused(sb, db):
    with pytest.raises(EngageLabValidationError, match=rf"Invalid table='{db.table}': there is no such table "
                       r"and create_table=False"):
        run_task(db, "journey", "DAY", [1], "2026-05-01", "2026-05-01", create_table=False)
    assert sb.counters()["requests"] == 0


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("table, rule", [
    ("", "is not a plain identifier"),
    ("1stats", "is not a plain identifier"),
    ("a.b.c", "at most one dot"),
    ("stats; DROP TABLE x", "is not a plain identifier"),
    ('st"ats', "is not a plain identifier"),
    ("public.", "is not a plain identifier"),
    ("my-stats", "is not a plain identifier"),
    ("x" * 64, "1 to 63 characters"),
    (42, "must be a string"),
])
def test_bad_table_names_fail_when_the_dag_is_parsed(table, rule):
    with pytest.raises(EngageLabValidationError, match=rf"Invalid table=.*{rule}"):
        EngageLabStatsToSqlOperator(task_id="t", stats_type="journey", sql_conn_id="x", table=table,
                                    journey_ids=[1])


def test_a_templated_table_is_checked_before_any_request(sb, db):
    op = EngageLabStatsToSqlOperator(task_id="t", stats_type="journey", sql_conn_id=db.conn_id,
                                     table="{{ params.table }}", journey_ids=[1], start_time="2026-05-01",
                                     end_time="2026-05-01")
    op.table = "stats; --"  # what the template rendered to
    with pytest.raises(EngageLabValidationError, match=r"Invalid table='stats; --'"):
        op.execute({})
    assert sb.counters()["requests"] == 0


@pytest.mark.parametrize("kwargs, message", [
    ({"sql_conn_id": ""}, r"Invalid sql_conn_id='': must be the id of an Airflow Connection"),
    ({"sql_conn_id": None}, r"Invalid sql_conn_id=None"),
    ({"create_table": "yes"}, r"Invalid create_table='yes': must be True or False"),
    ({"stats_type": "sms"}, r"Invalid stats_type='sms'"),
    ({"time_unit": "WEEK"}, r"Invalid time_unit='WEEK'"),
    ({"journey_ids": "1,x"}, r"Invalid journey_ids"),
    ({"on_journey_error": "ignore"}, r"Invalid on_journey_error='ignore'"),
    ({"lookback_days": -1}, r"Invalid lookback_days=-1"),
    ({"start_time": "2026-13-01", "end_time": "2026-05-01"}, r"Invalid start_time='2026-13-01'"),
])
def test_bad_parameters_fail_when_the_dag_is_parsed(kwargs, message):
    params = {"task_id": "t", "stats_type": "journey", "sql_conn_id": "x", "table": "stats",
              "journey_ids": [1], **kwargs}
    with pytest.raises(EngageLabValidationError, match=message):
        EngageLabStatsToSqlOperator(**params)
    partial = {k: v for k, v in params.items() if k != "journey_ids"}
    if "journey_ids" in kwargs:
        partial["journey_ids"] = kwargs["journey_ids"]  # given to partial() instead of expand()
    with pytest.raises(EngageLabValidationError, match=message):
        EngageLabStatsToSqlOperator.partial(**partial)


def test_a_connection_whose_hook_is_not_a_dbapi_hook_is_refused(sb, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_NOT_SQL", json.dumps({"conn_type": "http", "host": "http://127.0.0.1:9"}))
    for conn_id, message in (
        ("not_sql", r"Invalid sql_conn_id='not_sql': its hook HttpHook \(Connection type 'http'\) is not a "
                    r"common.sql DbApiHook"),
        ("engagelab_default", r"Invalid sql_conn_id='engagelab_default': its hook EngageLabHook"),
        ("no_such_connection", r"Invalid sql_conn_id='no_such_connection': no such Airflow Connection"),
    ):
        with pytest.raises(EngageLabValidationError, match=message):
            EngageLabStatsToSqlOperator(
                task_id="t", stats_type="journey", sql_conn_id=conn_id, table="t", journey_ids=[1],
                start_time="2026-05-01", end_time="2026-05-01",
            ).execute({})
    assert sb.counters()["requests"] == 0


# ---------------------------------------------------------------------------- paths and drivers


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_the_generic_dbapi_path_with_a_sqlalchemy_inspector(sb, db, monkeypatch):
    """A database the sink has no catalog queries for: checked through the hook's SQLAlchemy
    inspector, loaded with plain DB-API transactions (SQLite standing in for it)."""
    from airflow.providers.sqlite.hooks.sqlite import SqliteHook

    monkeypatch.setattr(SqliteHook, "dialect_name", property(lambda self: "some_other_sql"))
    first = run_task(db, "message", "HOUR", [1, 2], "2026-05-01", "2026-05-01")
    again = run_task(db, "message", "HOUR", [1, 2], "2026-05-01", "2026-05-01")
    assert first["method"] == again["method"] == "executemany"
    assert first["created"] and again["rows_deleted"] == first["rows_inserted"] > 0
    assert db.rows("message") == expected(sb, "message", "HOUR", ([1, 2], "2026-05-01", "2026-05-01"))
    with sqlite3.connect(str(db.path)) as conn:  # created by the ANSI dialect's DDL
        sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (db.table,)).fetchone()[0]
    assert "PRIMARY KEY (journey_id, time_unit, time, component_id)" in sql
    db.execute(f"ALTER TABLE {db.table} ADD COLUMN tenant TEXT NOT NULL DEFAULT 'x'")
    db.execute(f"ALTER TABLE {db.table} ADD COLUMN shard INTEGER NOT NULL DEFAULT 0")
    run_task(db, "message", "HOUR", [1], "2026-05-01", "2026-05-01")  # extra columns with defaults: fine


@pytest.mark.parametrize("driver", ["psycopg2", "psycopg"])
def test_copy_streams_through_both_psycopg_drivers(sb, postgres_server, monkeypatch, driver):
    postgres = pytest.importorskip("airflow.providers.postgres.hooks.postgres")
    pytest.importorskip(driver)
    if not hasattr(postgres, "USE_PSYCOPG3"):
        pytest.skip("this postgres provider only speaks psycopg2")
    if driver == "psycopg" and not postgres.USE_PSYCOPG3:
        pytest.skip("the postgres provider uses psycopg 3 only with SQLAlchemy 2")
    monkeypatch.setattr(postgres, "USE_PSYCOPG3", driver == "psycopg")
    # a cursor factory returning dicts must not confuse the sink's own queries
    monkeypatch.setenv("AIRFLOW_CONN_PG_DRIVER", json.dumps(postgres_server.connection(cursor="dictcursor")))
    table = f"engagelab_{driver}"
    postgres_server.query(f"DROP TABLE IF EXISTS {table}")
    op = EngageLabStatsToSqlOperator(task_id="t", stats_type="message", sql_conn_id="pg_driver", table=table,
                                     journey_ids=J(1, 120), time_unit="HOUR", start_time="2026-05-01",
                                     end_time="2026-05-02")
    conn = op._sql_hook().get_conn()
    assert type(conn).__module__.split(".")[0] == driver
    conn.close()
    summary = op.execute({})
    want = expected(sb, "message", "HOUR", (J(1, 120), "2026-05-01", "2026-05-02"))
    assert summary["method"] == "copy" and summary["rows_inserted"] == len(want) > 10_000  # several chunks
    count, revenue = postgres_server.query(f"SELECT count(*), sum(revenue_amount) FROM {table}")[0]
    assert count == len(want) and revenue == pytest.approx(sum(r["revenue_amount"] for r in want))


# ---------------------------------------------------------------------------- declarations


def test_registered_as_a_transfer_and_declares_an_asset_alias():
    (transfer,) = get_provider_info()["transfers"]
    assert transfer == {"source-integration-name": "EngageLab", "target-integration-name": "Common SQL",
                        "python-module": "airflow_provider_engagelab.transfers.engagelab_to_sql",
                        "how-to-guide": "/docs/sql.md"}
    from airflow.sdk import DAG, AssetAlias

    with DAG("d", schedule=None):
        op = EngageLabStatsToSqlOperator(task_id="t", stats_type="journey", sql_conn_id="x", table="stats",
                                         journey_ids=[1])
        EngageLabStatsToSqlOperator.partial(task_id="m", stats_type="journey", sql_conn_id="x",
                                            table="stats").expand(journey_ids=[[1], [2]])
    assert op.outlets == [AssetAlias(name="engagelab:d.t")]
    assert op.template_fields == ("journey_ids", "time_unit", "start_time", "end_time", "table")


def test_replace_ranges_merge_calls_and_split_long_id_lists():
    from datetime import date

    d = date.fromisoformat
    fetched = [(d("2026-05-01"), d("2026-05-31"), range(1, 101)), (d("2026-05-01"), d("2026-05-31"), [101]),
               (d("2026-06-01"), d("2026-06-10"), range(1, 102)), (d("2026-06-11"), d("2026-06-12"), [5]),
               (d("2026-06-13"), d("2026-06-13"), [])]
    ranges = replace_ranges(fetched, ids_per_range=60)
    assert [(r.lower, r.upper, len(r.journey_ids)) for r in ranges] == [
        ("2026-05-01", "2026-06-11", 60), ("2026-05-01", "2026-06-11", 41), ("2026-06-11", "2026-06-13", 1)]
    assert parse_table_name("s.t").schema == "s"


def test_a_refused_database_login_fails_without_showing_the_password(sb, postgres_server, monkeypatch):
    secret = "not-the-password-4f9c1e"
    conn = {**postgres_server.connection(), "password": secret}
    monkeypatch.setenv("AIRFLOW_CONN_PG_WRONG", json.dumps(conn))
    op = EngageLabStatsToSqlOperator(task_id="t", stats_type="journey", sql_conn_id="pg_wrong", table="t",
                                     journey_ids=[1], start_time="2026-05-01", end_time="2026-05-01")
    with pytest.raises(Exception) as caught:  # the driver's own OperationalError
        op.execute({})
    chain, exc = [], caught.value
    while exc is not None:
        chain.append(f"{type(exc).__name__}: {exc}")
        exc = exc.__cause__ or exc.__context__
    assert "password authentication failed" in chain[0]
    assert secret not in "\n".join(chain)
    assert sb.counters()["requests"] == 0
