"""Real Airflow runs (``dag.test()`` in a subprocess, SQLite: the shared ``airflow_runner``) of the
sensor against the sandbox.

The sandbox starts with 2026-03-10 available through 20:00 UTC only; the sensor (target day
2026-03-10, the day before the run's logical date) must wait, and succeeds once the test
moves the cutoff past the day's last hour. Then the downstream task must run with the
sensor's XCom. Every line Airflow printed and every log file is searched for the secret and
the Basic token.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from airflow import __version__ as AIRFLOW_VERSION
from packaging.version import Version

from airflow_provider_engagelab.testing.sandbox import Sandbox
from tests.sensors.sensor_helpers import KEY, SECRET, leaked

pytestmark = pytest.mark.e2e

UTC = timezone.utc
LOGICAL_DATE = "2026-03-11T06:00:00+00:00"  # manual run: the sensor's default day is 2026-03-10
PART_DAY = datetime(2026, 3, 10, 21, tzinfo=UTC)
FULL_DAY = datetime(2026, 3, 11, tzinfo=UTC)

DAG_SOURCE = '''
import json
import os

import pendulum
from airflow.sdk import dag, task

from airflow_provider_engagelab.sensors.engagelab import EngageLabStatsAvailableSensor


@dag(dag_id="{dag_id}", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"))
def sensor_e2e():
    wait = EngageLabStatsAvailableSensor(
        task_id="wait_for_stats", journey_ids="101,102", poke_interval=1, timeout=300, {mode}
    )

    @task
    def downstream(summary):
        with open(os.environ["E2E_OUT"], "w") as handle:
            json.dump(summary, handle)

    downstream(wait.output)


dag = sensor_e2e()
'''


@pytest.fixture
def sandbox():
    with Sandbox(api_key=KEY, api_secret=SECRET, available_through=PART_DAY) as sb:
        yield sb


def _start(airflow_runner, sandbox, tmp_path, dag_id: str, mode: str):
    airflow_runner.add_dag_source(f"{dag_id}.py", DAG_SOURCE.format(dag_id=dag_id, mode=mode))
    conn = sandbox.airflow_connection(max_retries=1, max_retry_wait=0.5)
    out = tmp_path / "downstream.json"
    run = airflow_runner.start(
        dag_id, logical_date=LOGICAL_DATE,
        env={"AIRFLOW_CONN_ENGAGELAB_DEFAULT": json.dumps(conn), "E2E_OUT": str(out)},
    )
    return run, out


def _assert_no_leak(run, airflow_runner):
    for text in (run.output, airflow_runner.logs_text()):
        assert leaked(text) == []


def test_deferrable_sensor_waits_in_the_trigger_then_downstream_runs(airflow_runner, sandbox, tmp_path):
    run, out = _start(airflow_runner, sandbox, tmp_path, "sensor_deferrable", "deferrable=True")
    try:
        assert run.wait_for_text("running trigger in line"), run.output[-5000:]
        # one look on the worker, then at least two in the triggerer while the day is incomplete
        assert run.wait_until(lambda: sandbox.counters()["requests"] >= 3), run.output[-5000:]
        sandbox.configure(available_through=FULL_DAY)
    finally:
        run.finish()
    assert run.result(check=False).state == "success", run.output[-8000:]
    assert "Deferring: the triggerer looks for '2026-03-10 23' every 1s" in run.output
    assert "not yet (0/2 journeys have '2026-03-10 23'" in run.output
    summary = json.loads(out.read_text())
    assert summary["ready"] is True and summary["ready_journeys"] == [101, 102]
    assert summary["last_bucket"] == {"101": "2026-03-10 23", "102": "2026-03-10 23"}
    assert sandbox.counters()["requests"] >= 4
    _assert_no_leak(run, airflow_runner)


@pytest.mark.skipif(
    Version(AIRFLOW_VERSION) < Version("3.1"),
    reason="Airflow 3.0's in-process dag.test() hands the first reschedule date to the sensor as a "
    "string (TypeError in BaseSensorOperator.execute); reschedule mode is covered in-process there",
)
def test_reschedule_sensor_then_downstream_runs(airflow_runner, sandbox, tmp_path):
    run, out = _start(airflow_runner, sandbox, tmp_path, "sensor_reschedule",
                      "mode='reschedule', deferrable=False")
    try:
        assert run.wait_until(lambda: sandbox.counters()["requests"] >= 2), run.output[-5000:]
        sandbox.configure(available_through=FULL_DAY)
    finally:
        run.finish()
    assert run.result(check=False).state == "success", run.output[-8000:]
    assert "up_for_reschedule" in run.output.lower()
    assert json.loads(out.read_text())["ready_journeys"] == [101, 102]
    _assert_no_leak(run, airflow_runner)


def test_unknown_journey_fails_the_run_at_once(airflow_runner, sandbox, tmp_path):
    sandbox.configure(missing_journeys={102})
    run, out = _start(airflow_runner, sandbox, tmp_path, "sensor_missing", "deferrable=True")
    assert run.result(check=False).state == "failed", run.output[-8000:]
    assert "102: code 50202" in run.output and "waiting cannot fix" in run.output
    assert sandbox.counters()["requests"] == 1  # no second look
    assert not out.exists()  # downstream did not run
    _assert_no_leak(run, airflow_runner)
