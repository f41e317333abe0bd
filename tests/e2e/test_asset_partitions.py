"""Asset partitions per day (Airflow 3.2+): a downstream DAG scheduled on one day's partition.

The producer writes three days with ``asset_partitions=True``: its Asset gets one event per
date, keyed by the date, each with today's extra. A downstream DAG scheduled with
``PartitionedAssetTimetable`` on that Asset is then queued once per day; one scheduler pass
(the scheduler's own method, no scheduler loop) makes one DAG run per date, and the task of one
of those runs, run with ``airflow tasks test`` on that run, reads only its day.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from airflow_provider_engagelab.operators.engagelab import supports_asset_partitions
from airflow_provider_engagelab.testing.sandbox import Sandbox

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not supports_asset_partitions(), reason="this Airflow has no asset partitions"),
]

CUTOFF = "2026-06-03T00:00:00+00:00"
DATES = ["2026-05-30", "2026-05-31", "2026-06-01"]

DAGS = '''
import json, os
from pathlib import Path
from airflow.sdk import DAG, Asset, PartitionedAssetTimetable, task
from airflow_provider_engagelab.operators.engagelab import EngageLabJourneyStatsOperator

root = os.environ["PART_TEST_ROOT"]
with DAG("producer", schedule=None):
    EngageLabJourneyStatsOperator(task_id="journey", journey_ids=[101, 102], start_time="2026-05-30",
                                  end_time="2026-06-01", output_path=root, asset_partitions=True)

with DAG("per_day", schedule=PartitionedAssetTimetable(assets=Asset(f"file://{root}/journey"))):
    @task
    def read_day(dag_run=None):
        day = dag_run.partition_key  # "yyyy-MM-dd": the date the producer wrote
        part = Path(root) / "journey" / "time_unit=DAY" / f"date={day}"
        rows = [json.loads(line) for f in sorted(part.glob("*.jsonl")) for line in f.read_text().splitlines()]
        Path(os.environ["PART_TEST_SEEN"]).write_text(json.dumps({"day": day, "rows": rows}))

    read_day()
'''


def test_a_downstream_dag_runs_per_day_and_sees_only_its_day(airflow_runner, tmp_path):
    airflow_runner.add_dag_source("partition_dags.py", DAGS)
    root, seen = tmp_path / "out", tmp_path / "seen.json"
    with Sandbox(available_through=CUTOFF) as sb:
        env = {"AIRFLOW_CONN_ENGAGELAB_DEFAULT": json.dumps(sb.airflow_connection()),
               "PART_TEST_ROOT": str(root), "PART_TEST_SEEN": str(seen),
               # Airflow queues runs of unpaused DAGs only
               "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False"}
        produced, scheduled = airflow_runner.run(
            runs=[{"dag_id": "producer", "logical_date": "2026-06-02T00:00:00+00:00"}],
            partition_runs=True, env=env)
        expected = sb.expected_rows("journey", [101, 102], "DAY", DATES[0], DATES[-1])
    events = [e for e in produced.asset_events if e["task_id"] == "journey"]
    assert sorted(e["partition_key"] for e in events) == DATES
    assert {e["uri"] for e in events} == {f"file://{root}/journey"}
    for e in events:  # today's extra on every event
        assert e["extra"]["window_start"] == DATES[0] and e["extra"]["window_end"] == DATES[-1]
        assert e["extra"]["total_rows"] == len(expected) and e["extra"]["files"] == 3
    runs = [r for r in scheduled["runs"] if r[0] == "per_day"]
    assert [r[1] for r in runs] == DATES  # one run of the downstream DAG per day written

    # one of those runs, run on its own: its task reads its day and nothing else
    run_id = next(r[2] for r in runs if r[1] == "2026-05-31")
    proc = subprocess.run([sys.executable, "-m", "airflow", "tasks", "test", "per_day", "read_day", run_id],
                          env=airflow_runner.env(env), capture_output=True, text=True, timeout=600,
                          cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    got = json.loads(seen.read_text())
    assert got["day"] == "2026-05-31"
    assert got["rows"] and {r["time"] for r in got["rows"]} == {"2026-05-31"}
    assert sorted(got["rows"], key=lambda r: r["journey_id"]) == sorted(
        (r for r in expected if r["time"] == "2026-05-31"), key=lambda r: r["journey_id"])


def test_by_default_a_run_without_partitions_emits_one_plain_event(airflow_runner, tmp_path):
    source = DAGS.replace("asset_partitions=True", "asset_partitions=None")
    airflow_runner.add_dag_source("partition_dags.py", source)
    root = tmp_path / "out"
    with Sandbox(available_through=CUTOFF) as sb:
        env = {"AIRFLOW_CONN_ENGAGELAB_DEFAULT": json.dumps(sb.airflow_connection()),
               "PART_TEST_ROOT": str(root), "PART_TEST_SEEN": str(tmp_path / "seen.json")}
        produced = airflow_runner.run("producer", logical_date="2026-06-02T00:00:00+00:00", env=env)
    events = [e for e in produced.asset_events if e["task_id"] == "journey"]
    assert [e["partition_key"] for e in events] == [None]  # DAGs scheduled on the Asset keep running
