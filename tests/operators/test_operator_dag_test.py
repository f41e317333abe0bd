"""The operators inside real Airflow: ``dag.test()`` in a temporary AIRFLOW_HOME (SQLite).

One subprocess runs a file of DAGs covering the window rules (daily and weekly data
intervals, the empty ``@daily`` interval, a manual run without a logical date, a DAG in
Asia/Singapore), Jinja templating, an XComArg for ``journey_ids``, mapped tasks writing side
by side, and the Asset events; a second subprocess reruns and compares the bytes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from airflow_provider_engagelab.core.layout import journey_set_hash

pytestmark = pytest.mark.e2e

DAGS = """
from datetime import datetime

import pendulum
from airflow.sdk import DAG, task
from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_provider_engagelab.operators.engagelab import (
    EngageLabJourneyStatsOperator,
    EngageLabMessageStatsOperator,
    EngageLabStatsOperator,
)

ROOT = {root!r}
UTC_START = pendulum.datetime(2026, 1, 1, tz="UTC")


def dag(dag_id, schedule, start=UTC_START, **kw):
    return DAG(dag_id, schedule=schedule, start_date=start, catchup=False, **kw)


with dag("el_daily", CronDataIntervalTimetable("0 0 * * *", timezone="UTC")):
    EngageLabJourneyStatsOperator(task_id="fetch", journey_ids=[1, 2], output_path=ROOT + "/daily")

with dag("el_weekly", CronDataIntervalTimetable("0 0 * * 1", timezone="UTC")):
    EngageLabJourneyStatsOperator(task_id="fetch", journey_ids=[1], output_path=ROOT + "/weekly")

with dag("el_empty", "@daily"):
    EngageLabJourneyStatsOperator(task_id="fetch", journey_ids=[1], output_path=ROOT + "/empty")

with dag("el_manual", None):
    EngageLabJourneyStatsOperator(task_id="fetch", journey_ids=[1], output_path=ROOT + "/manual")

with dag("el_singapore", "@daily", start=pendulum.datetime(2026, 1, 1, tz="Asia/Singapore")):
    EngageLabJourneyStatsOperator(task_id="fetch", journey_ids=[1], output_path=ROOT + "/singapore")

with dag("el_mapped", None):
    EngageLabMessageStatsOperator.partial(
        task_id="fetch", start_time="2026-05-30", end_time="2026-06-01", output_path=ROOT + "/mapped",
    ).expand(journey_ids=[[1, 2, 3], [4, 5]])

with dag("el_expanded_path", None):  # output_path from expand(): the alias resolves per map index
    EngageLabJourneyStatsOperator.partial(
        task_id="fetch", journey_ids=[1], start_time="2026-06-01", end_time="2026-06-01",
    ).expand(output_path=[ROOT + "/expanded/a", ROOT + "/expanded/b"])

with dag("el_templated", "@daily", params={{"ids": [3, 1], "unit": "HOUR"}}):
    EngageLabStatsOperator(
        task_id="fetch",
        stats_type="webhook",
        journey_ids="{{{{ params.ids }}}}",
        time_unit="{{{{ params.unit }}}}",
        start_time="{{{{ macros.ds_add(ds, -2) }}}}",
        end_time="{{{{ macros.ds_add(ds, -1) }}}}",
        output_path=ROOT + "/templated/{{{{ ds_nodash }}}}",
        output_format="csv",
    )

with dag("el_xcom", None):
    @task
    def pick_ids():
        return [2, 1]

    EngageLabJourneyStatsOperator(
        task_id="fetch", journey_ids=pick_ids(), start_time="2026-06-01", end_time="2026-06-02",
    )
"""

RUNS = [
    # a manual run of a data-interval timetable covers the last complete interval before it
    {"dag_id": "el_daily", "logical_date": "2026-06-02T00:00:00+00:00"},
    {"dag_id": "el_weekly", "logical_date": "2026-06-08T00:00:00+00:00"},
    {"dag_id": "el_empty", "logical_date": "2026-06-02T00:00:00+00:00"},
    {"dag_id": "el_manual", "logical_date": None, "run_after": "2026-06-02T10:00:00+00:00"},
    # 16:00 UTC is midnight in Singapore: the run of 2026-06-02 there, so the day before is 06-01
    # (UTC dates would give 2026-05-31)
    {"dag_id": "el_singapore", "logical_date": "2026-06-01T16:00:00+00:00"},
    {"dag_id": "el_mapped", "logical_date": "2026-06-03T00:00:00+00:00"},
    {"dag_id": "el_templated", "logical_date": "2026-06-05T00:00:00+00:00"},
    {"dag_id": "el_expanded_path", "logical_date": "2026-06-03T00:00:00+00:00"},
    {"dag_id": "el_xcom", "logical_date": "2026-06-03T00:00:00+00:00"},
]


def tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def dag_results(airflow_runner, sandbox, sandbox_env, tmp_path):
    root = tmp_path / "out"
    airflow_runner.add_dag_source("engagelab_operator_dags.py", DAGS.format(root=str(root)))
    results = airflow_runner.run(runs=RUNS, env=sandbox_env)
    return root, {r.dag_id: r for r in results}


def test_dag_test_end_to_end(dag_results, airflow_runner, sandbox, sandbox_env):
    root, results = dag_results
    assert all(r.state == "success" for r in results.values())

    def window(dag_id: str) -> tuple[str, str]:
        summary = results[dag_id].xcom("fetch")
        return summary["window"]["start"], summary["window"]["end"]

    # ---- window rules
    assert {d: window(d) for d in ("el_daily", "el_weekly", "el_empty", "el_manual", "el_singapore")} == {
        "el_daily": ("2026-06-01", "2026-06-01"),  # interval [06-01, 06-02)
        "el_weekly": ("2026-06-01", "2026-06-07"),  # interval [06-01, 06-08)
        "el_empty": ("2026-06-01", "2026-06-01"),  # @daily: empty interval, the day before
        "el_manual": ("2026-06-01", "2026-06-01"),  # no logical date: the day before run_after
        "el_singapore": ("2026-06-01", "2026-06-01"),  # Singapore dates, not UTC (05-31)
    }

    # ---- file:// output written by a real task, with its Asset event
    daily = results["el_daily"].xcom("fetch")
    name = f"part-{journey_set_hash([1, 2])}.jsonl"
    path = root / "daily/journey/time_unit=DAY/date=2026-06-01" / name
    assert daily["files"] == [{"uri": f"file://{path}", "rows": 2}]
    assert jsonl(path) == sandbox.expected_rows("journey", [1, 2], "DAY", "2026-06-01", "2026-06-01")
    assert daily["calls"] == 1 and daily["journey_errors"] == [] and daily["format"] == "jsonl"
    (event,) = results["el_daily"].asset_events
    assert event["uri"] == f"file://{root}/daily/journey" and event["extra"]["total_rows"] == 2

    # ---- mapped tasks: one file per journey set and date, side by side, union = expected
    mapped = results["el_mapped"]
    assert {k for k in mapped.task_states} == {("fetch", 0), ("fetch", 1)}
    for day in ("2026-05-30", "2026-05-31", "2026-06-01"):
        part = root / "mapped/message/time_unit=DAY" / f"date={day}"
        names = sorted(p.name for p in part.iterdir() if p.name.startswith("part-"))
        assert names == sorted(f"part-{journey_set_hash(ids)}.jsonl" for ids in ([1, 2, 3], [4, 5]))
        got = [row for n in names for row in jsonl(part / n)]
        expected = sandbox.expected_rows("message", [1, 2, 3, 4, 5], "DAY", day, day)
        assert sorted(got, key=json.dumps) == sorted(expected, key=json.dumps)
    assert {e["map_index"] for e in mapped.asset_events} == {0, 1}

    # ---- Jinja: rendered list, time unit, dates and path; the AssetAlias resolves to the path
    templated = results["el_templated"].xcom("fetch")
    assert (templated["time_unit"], templated["format"]) == ("HOUR", "csv")
    assert (templated["window"]["start"], templated["window"]["end"]) == ("2026-06-03", "2026-06-04")
    base = root / "templated/20260605/webhook/time_unit=HOUR"
    assert sorted(p.name for p in base.iterdir()) == ["date=2026-06-03", "date=2026-06-04"]
    expected = sandbox.expected_rows("webhook", [1, 3], "HOUR", "2026-06-03", "2026-06-04")
    assert templated["total_rows"] == len(expected) > 0
    (event,) = results["el_templated"].asset_events
    assert event["uri"] == f"file://{root}/templated/20260605/webhook"

    # ---- output_path given to expand(): each map index's event names its own location
    expanded = results["el_expanded_path"]
    assert sorted((e["map_index"], e["uri"]) for e in expanded.asset_events) == [
        (0, f"file://{root}/expanded/a/journey"), (1, f"file://{root}/expanded/b/journey")]

    # ---- journey_ids from an upstream task (XComArg), rows returned through XCom
    rows = results["el_xcom"].xcom("fetch")
    assert rows == sandbox.expected_rows("journey", [1, 2], "DAY", "2026-06-01", "2026-06-02")

    # ---- rerun the file-writing DAGs: same files, same bytes
    before = tree(root)
    reruns = [r for r in RUNS if r["dag_id"] in ("el_daily", "el_mapped", "el_templated")]
    airflow_runner.run(runs=reruns, env=sandbox_env)
    assert tree(root) == before
