"""Daily EngageLab statistics: wait for yesterday's data, then land all three stats types.

Schedule: ``CronDataIntervalTimetable("@daily")``. Each run covers the data interval
``[D 00:00, D+1 00:00)`` in the DAG's time zone, so the operators' default window is the
calendar day D, and a backfill with ``airflow backfill create`` maps one run to one day.
(An interval that does not start at midnight, e.g. ``"0 1 * * *"``, would touch two
calendar dates, and the window would cover both. With Airflow 3's default
``schedule="@daily"`` — a ``CronTriggerTimetable`` whose data interval is empty — the
operators fall back to "the day before the logical date", the same day for scheduled runs;
the data-interval timetable makes that explicit for backfills.) The run is created right
after midnight; the sensor then waits (in the triggerer, without holding a worker slot,
when ``deferrable=True``) until the API reports the day's last hour for every journey.

Settings, read from the environment when the DAG file is parsed (cheap, no database):

- ``ENGAGELAB_JOURNEY_IDS``: comma-separated journey IDs (default ``101,102,103``)
- ``ENGAGELAB_OUTPUT_PATH``: where files go, any ObjectStoragePath URL (default
  ``file:///tmp/engagelab``), with ``ENGAGELAB_OUTPUT_CONN_ID`` for object stores
- ``ENGAGELAB_DEFERRABLE``: ``true`` to run the sensor in the triggerer (default ``false``)
- ``ENGAGELAB_TIMEZONE``: the DAG's time zone (default ``UTC``)
- ``ENGAGELAB_POKE_INTERVAL``: seconds between the sensor's looks (default 300)
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import dag, task
from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_provider_engagelab.operators.engagelab import (
    EngageLabJourneyStatsOperator,
    EngageLabMessageStatsOperator,
    EngageLabWebhookStatsOperator,
)
from airflow_provider_engagelab.sensors.engagelab import EngageLabStatsAvailableSensor

JOURNEY_IDS = os.environ.get("ENGAGELAB_JOURNEY_IDS", "101,102,103")
OUTPUT_PATH = os.environ.get("ENGAGELAB_OUTPUT_PATH", "file:///tmp/engagelab")
OUTPUT_CONN_ID = os.environ.get("ENGAGELAB_OUTPUT_CONN_ID") or None
DEFERRABLE = os.environ.get("ENGAGELAB_DEFERRABLE", "false").lower() in ("1", "true", "yes")
TIMEZONE = os.environ.get("ENGAGELAB_TIMEZONE", "UTC")


@dag(
    dag_id="example_engagelab_daily",
    schedule=CronDataIntervalTimetable("@daily", timezone=TIMEZONE),
    start_date=pendulum.datetime(2026, 1, 1, tz=TIMEZONE),
    catchup=False,
    max_active_runs=4,
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=5)},
    tags=["engagelab", "example"],
    doc_md=__doc__,
)
def example_engagelab_daily():
    wait = EngageLabStatsAvailableSensor(
        task_id="wait_for_yesterday",
        journey_ids=JOURNEY_IDS,
        deferrable=DEFERRABLE,
        poke_interval=int(os.environ.get("ENGAGELAB_POKE_INTERVAL", "300")),
        timeout=6 * 3600,
        mode="reschedule",
    )
    common = dict(
        journey_ids=JOURNEY_IDS,
        time_unit="DAY",
        lookback_days=2,  # statistics can settle late: rewrite the two days before as well
        output_path=OUTPUT_PATH,
        output_conn_id=OUTPUT_CONN_ID,
        on_journey_error="warn",
    )
    journey = EngageLabJourneyStatsOperator(task_id="journey_stats", **common)
    message = EngageLabMessageStatsOperator(task_id="message_stats", **common)
    webhook = EngageLabWebhookStatsOperator(task_id="webhook_stats", **common)

    @task
    def report(journey_summary: dict, message_summary: dict, webhook_summary: dict) -> dict:
        """Log what landed: one line per stats type."""
        totals = {}
        for name, summary in (("journey", journey_summary), ("message", message_summary),
                              ("webhook", webhook_summary)):
            totals[name] = summary["total_rows"]
            print(f"{name}: {summary['total_rows']} rows in {len(summary['files'])} files, "
                  f"{len(summary['journey_errors'])} journey errors")
        return totals

    wait >> [journey, message, webhook]
    report(journey.output, message.output, webhook.output)


example_engagelab_daily()
