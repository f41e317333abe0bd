"""Warehouse and lake tables: the same window of message statistics into a Delta table (and,
beside it, into a SQL table), then the Delta table's replaced dates compacted.

Schedule: ``CronDataIntervalTimetable("@daily")``; each run fetches day D and, with
``lookback_days=2``, rewrites D-2 and D-1, whose statistics may have settled since. The Delta
task commits one transaction that replaces exactly its journeys x dates; a rerun or a retry
leaves each row once. The ``compact`` task then rewrites the small files of the dates the
load replaced into larger ones (``optimize.compact``): it runs after the load, never beside
another writer of the same dates, so it meets no conflict.

Settings, read from the environment when the DAG file is parsed (cheap, no database):

- ``ENGAGELAB_JOURNEY_IDS``: comma-separated journey IDs (default ``101,102,103``)
- ``ENGAGELAB_LAKE_PATH``: the root of the Delta tables, a local path, ``file://`` or
  ``s3://`` URL (default ``file:///tmp/engagelab-lake``), with ``ENGAGELAB_LAKE_CONN_ID``
  (an ``aws`` Connection) for S3
- ``ENGAGELAB_TIMEZONE``: the DAG's time zone (default ``UTC``)

The operators are imported at parse time; deltalake only when a task runs (install the
``[delta]`` extra on the workers).
"""

from __future__ import annotations

import os
from datetime import date, timedelta

import pendulum
from airflow.sdk import dag, task
from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_provider_engagelab.operators.engagelab import EngageLabMessageStatsOperator

JOURNEY_IDS = os.environ.get("ENGAGELAB_JOURNEY_IDS", "101,102,103")
LAKE_PATH = os.environ.get("ENGAGELAB_LAKE_PATH", "file:///tmp/engagelab-lake")
LAKE_CONN_ID = os.environ.get("ENGAGELAB_LAKE_CONN_ID") or None
TIMEZONE = os.environ.get("ENGAGELAB_TIMEZONE", "UTC")

#: The window both targets load: the run's day and the two days before it.
WINDOW = dict(journey_ids=JOURNEY_IDS, time_unit="DAY", lookback_days=2, on_journey_error="warn")


@dag(
    dag_id="example_engagelab_tables",
    schedule=CronDataIntervalTimetable("@daily", timezone=TIMEZONE),
    start_date=pendulum.datetime(2026, 1, 1, tz=TIMEZONE),
    catchup=False,
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=5)},
    tags=["engagelab", "example"],
    doc_md=__doc__,
)
def example_engagelab_tables():
    # The lake: <LAKE_PATH>/message/day, a Delta table partitioned by date.
    lake = EngageLabMessageStatsOperator(
        task_id="message_stats_delta",
        output_path=LAKE_PATH,
        output_conn_id=LAKE_CONN_ID,
        output_format="delta",
        **WINDOW,
    )

    # The warehouse: the same WINDOW into a SQL table goes here, as a second task beside
    # `lake` (EngageLabStatsToSqlOperator from airflow_provider_engagelab.transfers, issue 14
    # part 1), e.g. task_id="message_stats_sql", stats_type="message", sql_conn_id=..., table=....

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
