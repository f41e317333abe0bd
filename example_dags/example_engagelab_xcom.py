"""A quick look: one journey's statistics for the last week, straight into XCom.

Good for exploring a few journeys; for anything larger set ``output_path`` (XCom lives in
the metadata database, and the operator refuses results above ``max_xcom_rows``).
Triggered by hand (``schedule=None``): with no data interval, the window is given
explicitly with templates relative to the run's logical date.
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import dag, task

from airflow_provider_engagelab.operators.engagelab import EngageLabJourneyStatsOperator

JOURNEY_IDS = os.environ.get("ENGAGELAB_JOURNEY_IDS", "101")


@dag(
    dag_id="example_engagelab_xcom",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["engagelab", "example"],
    doc_md=__doc__,
)
def example_engagelab_xcom():
    stats = EngageLabJourneyStatsOperator(
        task_id="last_week",
        journey_ids=JOURNEY_IDS,
        time_unit="DAY",
        start_time="{{ macros.ds_add((dag_run.logical_date or dag_run.run_after) | ds, -7) }}",
        end_time="{{ macros.ds_add((dag_run.logical_date or dag_run.run_after) | ds, -1) }}",
    )

    @task
    def show(rows: list[dict]) -> int:
        """Print the rows, one line each."""
        for row in rows:
            print(row)
        return len(rows)

    show(stats.output)


example_engagelab_xcom()
