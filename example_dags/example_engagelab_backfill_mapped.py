"""Backfill many journeys over a long range, fanned out with dynamic task mapping.

Each run covers one calendar month (``@monthly`` data interval) and maps one task per batch
of journeys, so ``airflow backfill create --dag-id example_engagelab_backfill_mapped
--from-date 2025-01-01 --to-date 2025-12-31`` spreads the work over every Celery or
Kubernetes worker. Every mapped task writes its own files (the file name is derived from its
journey batch), so batches never collide, and a rerun or an overlapping backfill rewrites
the same files instead of adding rows.

The API rate limit belongs to the credential, not to a worker: all mapped tasks of all runs
share one Airflow pool (``ENGAGELAB_POOL``, e.g. ``airflow pools set engagelab_api 4
"EngageLab API"``) whose size caps the tasks calling the API at once; together with the
Connection's ``max_concurrent_requests`` (per task) this bounds the requests in flight to
pool size x max_concurrent_requests, and ``requests_per_second`` (per task) x pool size
bounds the rate.

Settings (environment, read at parse time): ``ENGAGELAB_JOURNEY_IDS`` (comma-separated, or
a range ``1-2500``), ``ENGAGELAB_BATCH_SIZE`` (journeys per mapped task, default 500),
``ENGAGELAB_OUTPUT_PATH``, ``ENGAGELAB_OUTPUT_CONN_ID``, ``ENGAGELAB_POOL`` (default
``default_pool``), ``ENGAGELAB_TIME_UNIT`` (default ``DAY``), ``ENGAGELAB_RETRY_DELAY`` (seconds
before Airflow retries a failed task, default 120), ``ENGAGELAB_COMMIT_LEASE_SECONDS`` (the
operators' ``commit_lease_seconds``, default 60: how long a task that died inside a partition
commit, e.g. on a lost worker, delays the next commit of that partition; 5 at least).
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import dag, task
from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_provider_engagelab.operators.engagelab import EngageLabStatsOperator


def _journey_ids(spec: str) -> list[int]:
    """``1-2500`` or ``1,2,3`` -> a list of IDs (the operator validates them)."""
    if "-" in spec and "," not in spec:
        first, last = (int(x) for x in spec.split("-", 1))
        return list(range(first, last + 1))
    return [int(x) for x in spec.split(",") if x.strip()]


JOURNEY_IDS = _journey_ids(os.environ.get("ENGAGELAB_JOURNEY_IDS", "1-1200"))
BATCH_SIZE = int(os.environ.get("ENGAGELAB_BATCH_SIZE", "500"))
BATCHES = [JOURNEY_IDS[i : i + BATCH_SIZE] for i in range(0, len(JOURNEY_IDS), BATCH_SIZE)]
OUTPUT_PATH = os.environ.get("ENGAGELAB_OUTPUT_PATH", "file:///tmp/engagelab")
OUTPUT_CONN_ID = os.environ.get("ENGAGELAB_OUTPUT_CONN_ID") or None
POOL = os.environ.get("ENGAGELAB_POOL", "default_pool")
TIME_UNIT = os.environ.get("ENGAGELAB_TIME_UNIT", "DAY")
RETRY_DELAY = float(os.environ.get("ENGAGELAB_RETRY_DELAY", "120"))
COMMIT_LEASE_SECONDS = float(os.environ.get("ENGAGELAB_COMMIT_LEASE_SECONDS", "60"))


@dag(
    dag_id="example_engagelab_backfill_mapped",
    schedule=CronDataIntervalTimetable("@monthly", timezone="UTC"),
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=2,
    default_args={"retries": 3, "retry_delay": pendulum.duration(seconds=RETRY_DELAY)},
    tags=["engagelab", "example", "backfill"],
    doc_md=__doc__,
)
def example_engagelab_backfill_mapped():
    summaries = {}
    for stats_type in ("journey", "message", "webhook"):
        summaries[stats_type] = EngageLabStatsOperator.partial(
            task_id=f"{stats_type}_stats",
            stats_type=stats_type,
            time_unit=TIME_UNIT,
            output_path=OUTPUT_PATH,
            output_conn_id=OUTPUT_CONN_ID,
            on_journey_error="warn",
            commit_lease_seconds=COMMIT_LEASE_SECONDS,
            pool=POOL,
        ).expand(journey_ids=BATCHES)

    @task
    def totals(journey: list[dict], message: list[dict], webhook: list[dict]) -> dict:
        """Rows landed per stats type, over all batches."""
        result = {
            "journey": sum(s["total_rows"] for s in journey),
            "message": sum(s["total_rows"] for s in message),
            "webhook": sum(s["total_rows"] for s in webhook),
        }
        print(result)
        return result

    totals(summaries["journey"].output, summaries["message"].output, summaries["webhook"].output)


example_engagelab_backfill_mapped()
