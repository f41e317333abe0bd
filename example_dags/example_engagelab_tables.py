"""Daily EngageLab statistics into warehouse tables, one transaction per task.

Each run covers the data interval ``[D 00:00, D+1 00:00)`` (``CronDataIntervalTimetable``), so
the transfers' default window is the day D, plus the two days before (``lookback_days=2``, for
statistics that settle late). Each ``EngageLabStatsToSqlOperator`` task replaces, in one
transaction, exactly the rows of its journeys over those days in its table: a rerun, a retry
or an overlapping backfill leaves every row once. Message statistics are mapped over journey
batches: the mapped tasks load the same table at the same time without touching each other's
rows. The tables are created on the first run (typed columns, a primary key).

The SQL Connection can be any common.sql database (PostgreSQL loads with ``COPY``), e.g.::

    airflow connections add engagelab_warehouse --conn-type postgres --conn-host db.internal \\
        --conn-port 5432 --conn-schema analytics --conn-login loader --conn-password ...

Settings, read from the environment when the DAG file is parsed (cheap, no database):

- ``ENGAGELAB_JOURNEY_IDS``: comma-separated journey IDs (default ``101,102,103``)
- ``ENGAGELAB_SQL_CONN_ID``: the SQL Connection (default ``engagelab_warehouse``)
- ``ENGAGELAB_BATCH_SIZE``: journeys per mapped message task (default 500)
- ``ENGAGELAB_TIMEZONE``: the DAG's time zone (default ``UTC``)

The schema of the tables is a DAG param (``schema``, default ``public``), rendered into the
templated ``table`` of each task.
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import dag, task
from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_provider_engagelab.transfers.engagelab_to_sql import EngageLabStatsToSqlOperator

JOURNEY_IDS = [int(x) for x in os.environ.get("ENGAGELAB_JOURNEY_IDS", "101,102,103").split(",") if x.strip()]
SQL_CONN_ID = os.environ.get("ENGAGELAB_SQL_CONN_ID", "engagelab_warehouse")
BATCH_SIZE = int(os.environ.get("ENGAGELAB_BATCH_SIZE", "500"))
BATCHES = [JOURNEY_IDS[i : i + BATCH_SIZE] for i in range(0, len(JOURNEY_IDS), BATCH_SIZE)]
TIMEZONE = os.environ.get("ENGAGELAB_TIMEZONE", "UTC")


@dag(
    dag_id="example_engagelab_tables",
    schedule=CronDataIntervalTimetable("@daily", timezone=TIMEZONE),
    start_date=pendulum.datetime(2026, 1, 1, tz=TIMEZONE),
    catchup=False,
    max_active_runs=4,
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=5)},
    params={"schema": "public"},
    tags=["engagelab", "example", "sql"],
    doc_md=__doc__,
)
def example_engagelab_tables():
    common = dict(
        sql_conn_id=SQL_CONN_ID,
        time_unit="DAY",
        lookback_days=2,
        on_journey_error="warn",  # a journey that fails keeps the rows it had
    )
    journey = EngageLabStatsToSqlOperator(
        task_id="journey_to_sql",
        stats_type="journey",
        table="{{ params.schema }}.engagelab_journey_stats",
        journey_ids=JOURNEY_IDS,
        **common,
    )
    message = EngageLabStatsToSqlOperator.partial(
        task_id="message_to_sql",
        stats_type="message",
        table="{{ params.schema }}.engagelab_message_stats",
        **common,
    ).expand(journey_ids=BATCHES)
    webhook = EngageLabStatsToSqlOperator(
        task_id="webhook_to_sql",
        stats_type="webhook",
        table="{{ params.schema }}.engagelab_webhook_stats",
        journey_ids=JOURNEY_IDS,
        **common,
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


example_engagelab_tables()
