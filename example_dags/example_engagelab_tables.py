"""Daily EngageLab statistics into warehouse and lake tables, one transaction per task.

Each run covers the data interval ``[D 00:00, D+1 00:00)`` (``CronDataIntervalTimetable``), so
the tasks' default window is the day D, plus the two days before (``lookback_days=2``, for
statistics that settle late). Every task replaces, in one transaction, exactly the rows of its
journeys over those days in its table: a rerun, a retry or an overlapping backfill leaves every
row once.

- **Warehouse**: three ``EngageLabStatsToSqlOperator`` tasks, one table per stats type. Message
  statistics are mapped over journey batches: the mapped tasks load the same table at the same
  time without touching each other's rows. The tables are created on the first run (typed
  columns, a primary key). The SQL Connection can be any common.sql database (PostgreSQL loads
  with ``COPY``), e.g.::

      airflow connections add engagelab_warehouse --conn-type postgres --conn-host db.internal \\
          --conn-port 5432 --conn-schema analytics --conn-login loader --conn-password ...

- **Lake**: the same window of message statistics into a Delta table
  (``<lake>/message/day``, partitioned by ``date``); the ``compact`` task then rewrites the
  small files of the dates the load replaced into larger ones (``optimize.compact``). It runs
  after the load, never beside another writer of the same dates, so it meets no conflict.

Settings, read from the environment when the DAG file is parsed (cheap, no database):

- ``ENGAGELAB_JOURNEY_IDS``: comma-separated journey IDs (default ``101,102,103``)
- ``ENGAGELAB_SQL_CONN_ID``: the SQL Connection (default ``engagelab_warehouse``)
- ``ENGAGELAB_BATCH_SIZE``: journeys per mapped message task (default 500)
- ``ENGAGELAB_LAKE_PATH``: the root of the Delta tables, a local path, ``file://`` or
  ``s3://`` URL (default ``file:///tmp/engagelab-lake``), with ``ENGAGELAB_LAKE_CONN_ID``
  (an ``aws`` Connection) for S3
- ``ENGAGELAB_TIMEZONE``: the DAG's time zone (default ``UTC``)

The schema of the SQL tables is a DAG param (``schema``, default ``public``; ``main`` on
SQLite), rendered into the templated ``table`` of each task. The operators are imported at
parse time; database drivers and deltalake only when a task runs (install the ``[sql]`` or
``[postgres]`` and ``[delta]`` extras on the workers).
"""

from __future__ import annotations

import os
from datetime import date, timedelta

import pendulum
from airflow.sdk import dag, task
from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_provider_engagelab.operators.engagelab import EngageLabMessageStatsOperator
from airflow_provider_engagelab.transfers.engagelab_to_sql import EngageLabStatsToSqlOperator

JOURNEY_IDS = [int(x) for x in os.environ.get("ENGAGELAB_JOURNEY_IDS", "101,102,103").split(",") if x.strip()]
SQL_CONN_ID = os.environ.get("ENGAGELAB_SQL_CONN_ID", "engagelab_warehouse")
BATCH_SIZE = int(os.environ.get("ENGAGELAB_BATCH_SIZE", "500"))
BATCHES = [JOURNEY_IDS[i : i + BATCH_SIZE] for i in range(0, len(JOURNEY_IDS), BATCH_SIZE)]
LAKE_PATH = os.environ.get("ENGAGELAB_LAKE_PATH", "file:///tmp/engagelab-lake")
LAKE_CONN_ID = os.environ.get("ENGAGELAB_LAKE_CONN_ID") or None
TIMEZONE = os.environ.get("ENGAGELAB_TIMEZONE", "UTC")

#: The window every task loads: the run's day and the two days before it.
WINDOW = dict(time_unit="DAY", lookback_days=2, on_journey_error="warn")  # a failed journey keeps its rows


@dag(
    dag_id="example_engagelab_tables",
    schedule=CronDataIntervalTimetable("@daily", timezone=TIMEZONE),
    start_date=pendulum.datetime(2026, 1, 1, tz=TIMEZONE),
    catchup=False,
    max_active_runs=4,
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=5)},
    params={"schema": "public"},
    tags=["engagelab", "example", "sql", "delta"],
    doc_md=__doc__,
)
def example_engagelab_tables():
    # The warehouse: one table per stats type.
    journey = EngageLabStatsToSqlOperator(
        task_id="journey_to_sql",
        stats_type="journey",
        sql_conn_id=SQL_CONN_ID,
        table="{{ params.schema }}.engagelab_journey_stats",
        journey_ids=JOURNEY_IDS,
        **WINDOW,
    )
    message = EngageLabStatsToSqlOperator.partial(
        task_id="message_to_sql",
        stats_type="message",
        sql_conn_id=SQL_CONN_ID,
        table="{{ params.schema }}.engagelab_message_stats",
        **WINDOW,
    ).expand(journey_ids=BATCHES)
    webhook = EngageLabStatsToSqlOperator(
        task_id="webhook_to_sql",
        stats_type="webhook",
        sql_conn_id=SQL_CONN_ID,
        table="{{ params.schema }}.engagelab_webhook_stats",
        journey_ids=JOURNEY_IDS,
        **WINDOW,
    )

    @task
    def report(journey_summary: dict, message_summaries: list[dict], webhook_summary: dict) -> dict:
        """Log what each table got: rows replaced and inserted."""
        totals = {}
        for name, summaries in (("journey", [journey_summary]), ("message", message_summaries),
                                ("webhook", [webhook_summary])):
            inserted = sum(s["rows_inserted"] for s in summaries)
            deleted = sum(s["rows_deleted"] for s in summaries)
            totals[name] = inserted
            print(f"{summaries[0]['table']}: {inserted} rows inserted, {deleted} replaced")
        return totals

    report(journey.output, message.output, webhook.output)

    # The lake: <LAKE_PATH>/message/day, a Delta table partitioned by date.
    lake = EngageLabMessageStatsOperator(
        task_id="message_stats_delta",
        journey_ids=JOURNEY_IDS,
        output_path=LAKE_PATH,
        output_conn_id=LAKE_CONN_ID,
        output_format="delta",
        **WINDOW,
    )

    @task
    def compact(summary: dict) -> dict:
        """Rewrite the small files of the dates the load replaced (one more commit)."""
        from deltalake import DeltaTable

        from airflow_provider_engagelab.operators.delta_tables import (
            delta_storage_options,
            delta_table_uri,
        )

        if summary["version"] is None:  # every journey failed: nothing was written
            return {"compacted": 0}
        table = DeltaTable(delta_table_uri(LAKE_PATH, "message", "DAY"),
                           storage_options=delta_storage_options(LAKE_PATH, LAKE_CONN_ID))
        start = date.fromisoformat(summary["window"]["start"])
        days = (date.fromisoformat(summary["window"]["end"]) - start).days + 1
        dates = [(start + timedelta(days=n)).isoformat() for n in range(days)]
        metrics = table.optimize.compact(partition_filters=[("date", "in", dates)])
        print(f"compacted {metrics['numFilesRemoved']} file(s) into {metrics['numFilesAdded']} "
              f"for {len(dates)} date(s); table version {table.version()}")
        return {"compacted": metrics["numFilesRemoved"], "version": table.version()}

    compact(lake.output)


example_engagelab_tables()
