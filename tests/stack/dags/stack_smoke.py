"""Stand-in DAGs for the distributed stack test, used until the example DAGs exist.

``stack_smoke_mapped``: a PythonOperator, then one mapped task per journey batch that fetches
the batch's journey statistics from the EngageLab connection with :class:`EngageLabHook`
(running in a Celery worker, in the pool that caps concurrent API calls) and writes them to one
JSON-lines file per batch (written under a temporary name, then renamed). Each task returns the
host name it ran on.

``stack_smoke_deferrable``: a deferrable ``TimeDeltaSensor`` (the wait runs in the triggerer),
then a PythonOperator.

Parameters come from the environment of the stack's processes (``scripts/stack.sh`` passes
every ``ENGAGELAB_*`` variable on): ``ENGAGELAB_JOURNEY_IDS`` (comma-separated),
``ENGAGELAB_BATCH_SIZE``, ``ENGAGELAB_START_DATE``/``ENGAGELAB_END_DATE`` (``yyyy-MM-dd``),
``ENGAGELAB_OUTPUT_PATH`` (a local folder), ``ENGAGELAB_POOL``, ``STACK_SENSOR_SECONDS``.
"""

from __future__ import annotations

import json
import os
import socket
from datetime import datetime, timedelta, timezone
from pathlib import Path

from airflow.providers.standard.operators.python import PythonOperator
from airflow.providers.standard.sensors.time_delta import TimeDeltaSensor
from airflow.sdk import DAG, task

JOURNEY_IDS = [int(x) for x in os.environ.get("ENGAGELAB_JOURNEY_IDS", "1,2,3,4").split(",") if x]
BATCH_SIZE = int(os.environ.get("ENGAGELAB_BATCH_SIZE", "100"))
START_DATE = os.environ.get("ENGAGELAB_START_DATE", "2026-01-01")
END_DATE = os.environ.get("ENGAGELAB_END_DATE", "2026-01-31")
OUTPUT_PATH = os.environ.get("ENGAGELAB_OUTPUT_PATH", "/tmp/engagelab-stack-output")
POOL = os.environ.get("ENGAGELAB_POOL", "default_pool")
SENSOR_SECONDS = int(os.environ.get("STACK_SENSOR_SECONDS", "20"))

BATCHES = [JOURNEY_IDS[i : i + BATCH_SIZE] for i in range(0, len(JOURNEY_IDS), BATCH_SIZE)]


def _where() -> str:
    from airflow.sdk.api.client import get_hostname

    name = get_hostname()
    print(f"running on {name} (machine {socket.getfqdn()}, pid {os.getpid()})")
    return name


with DAG(
    dag_id="stack_smoke_mapped",
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    schedule=None,
    catchup=False,
    tags=["stack-test"],
):
    hello = PythonOperator(task_id="hello", python_callable=_where)

    @task(pool=POOL, retries=0)
    def fetch(batch: list[int]) -> dict:
        """Fetch one batch of journeys and write its rows to ``journey-<first id>.jsonl``."""
        from airflow_provider_engagelab.hooks.engagelab import EngageLabHook

        host = _where()
        result = EngageLabHook().get_stats("journey", batch, "DAY", START_DATE, END_DATE)
        out = Path(OUTPUT_PATH)
        out.mkdir(parents=True, exist_ok=True)
        final = out / f"journey-{batch[0]}.jsonl"
        tmp = out / f".{final.name}.{os.getpid()}.tmp"
        with tmp.open("w") as f:
            for row in result.rows:
                f.write(json.dumps(row) + "\n")
        tmp.replace(final)
        return {"hostname": host, "rows": len(result.rows), "path": str(final)}

    hello >> fetch.expand(batch=BATCHES)


with DAG(
    dag_id="stack_smoke_deferrable",
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    schedule=None,
    catchup=False,
    tags=["stack-test"],
):
    wait = TimeDeltaSensor(
        task_id="wait", delta=timedelta(seconds=SENSOR_SECONDS), deferrable=True, timeout=600
    )
    done = PythonOperator(task_id="done", python_callable=_where)
    wait >> done
