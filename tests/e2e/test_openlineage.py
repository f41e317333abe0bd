"""OpenLineage, for real: the openlineage provider's ``file`` transport under ``dag.test()``.

The tasks run against the sandbox; the provider's listener calls each task's
``get_openlineage_facets_on_complete`` and appends the events to a JSON lines file, which the
test reads back. A second run has the provider made unimportable (a ``sitecustomize`` that
refuses ``openlineage`` and ``airflow.providers.openlineage``): the same DAG succeeds, emits
nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_provider_engagelab.testing.sandbox import Sandbox

pytestmark = pytest.mark.e2e

CUTOFF = "2026-06-03T00:00:00+00:00"
START, END = "2026-05-30", "2026-06-01"
IDS = [101, 102, 103]
TABLE = "engagelab_ol_journey"

DAG = '''
import os
from airflow.sdk import DAG
from airflow_provider_engagelab.operators.engagelab import (
    EngageLabJourneyStatsOperator, EngageLabMessageStatsOperator, EngageLabWebhookStatsOperator)
from airflow_provider_engagelab.sensors.engagelab import EngageLabStatsAvailableSensor
from airflow_provider_engagelab.transfers.engagelab_to_sql import EngageLabStatsToSqlOperator

window = dict(journey_ids=[101, 102, 103], start_time="2026-05-30", end_time="2026-06-01")
root = os.environ["OL_TEST_ROOT"]
with DAG("engagelab_lineage", schedule=None):
    wait = EngageLabStatsAvailableSensor(task_id="wait", journey_ids=[101, 102, 103],
                                         target_date="2026-06-01", poke_interval=1, timeout=60)
    journey = EngageLabJourneyStatsOperator(task_id="journey_files", output_path=root, **window)
    message = EngageLabMessageStatsOperator(task_id="message_parquet", output_path=root + "/pq",
                                            output_format="parquet", **window)
    webhook = EngageLabWebhookStatsOperator(task_id="webhook_delta", output_path=root + "/lake",
                                            output_format="delta", **window)
    to_xcom = EngageLabJourneyStatsOperator(task_id="journey_xcom", **window)
    to_sql = EngageLabStatsToSqlOperator(task_id="journey_sql", stats_type="journey",
                                         sql_conn_id="warehouse", table="public.''' + TABLE + '''", **window)
    wait >> [journey, message, webhook, to_xcom, to_sql]
'''

#: As if the OpenLineage provider and client were not installed: their distributions are hidden
#: (Airflow finds providers and plugins through the installed distributions' entry points) and
#: importing them fails.
NO_OPENLINEAGE = '''
import sys
import importlib.metadata as _std

def _hidden(dist):
    name = (dist.metadata["Name"] or "").lower().replace("_", "-")
    return name.startswith(("apache-airflow-providers-openlineage", "openlineage-"))

def _wrap(module):
    original = module.distributions
    module.distributions = lambda **kw: (d for d in original(**kw) if not _hidden(d))

_wrap(_std)
try:
    import importlib_metadata as _backport
    _wrap(_backport)
except ImportError:
    pass

class _Refuse:
    def find_spec(self, name, path=None, target=None):
        if name == "openlineage" or name.startswith(("openlineage.", "airflow.providers.openlineage")):
            raise ModuleNotFoundError(f"No module named {name!r} (refused by the test)")
        return None

sys.meta_path.insert(0, _Refuse())
'''


def _events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _complete(events: list[dict]) -> dict[str, dict]:
    """The COMPLETE event of each task, by task id."""
    out = {}
    for e in events:
        if e.get("eventType") == "COMPLETE" and e["job"]["name"].startswith("engagelab_lineage."):
            out[e["job"]["name"].split(".", 1)[1]] = e
    return out


def _env(sb: Sandbox, pg, root: Path, ol_file: Path) -> dict[str, str]:
    return {
        "AIRFLOW_CONN_ENGAGELAB_DEFAULT": json.dumps(sb.airflow_connection()),
        "AIRFLOW_CONN_WAREHOUSE": json.dumps(pg.connection()),
        "OL_TEST_ROOT": str(root),
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(ol_file), "append": True}),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "engagelab-test",
    }


def test_complete_events_carry_the_datasets_and_facets(airflow_runner, postgres_server, tmp_path):
    postgres_server.query(f"DROP TABLE IF EXISTS public.{TABLE}")
    airflow_runner.add_dag_source("lineage_dag.py", DAG)
    root, ol_file = tmp_path / "out", tmp_path / "ol.jsonl"
    with Sandbox(available_through=CUTOFF) as sb:
        result = airflow_runner.run("engagelab_lineage", logical_date="2026-06-02T00:00:00+00:00",
                                    env=_env(sb, postgres_server, root, ol_file))
        secret = sb.airflow_connection()["password"]
        expected = {t: len(sb.expected_rows(t, IDS, "DAY", START, END))
                    for t in ("journey", "message", "webhook")}
        api = sb.url.rstrip("/")
    text = ol_file.read_text()
    assert secret not in text and postgres_server.password not in text
    events = _complete(_events(ol_file))
    assert set(events) >= {"wait", "journey_files", "message_parquet", "webhook_delta", "journey_xcom",
                           "journey_sql"}

    def one(task: str, side: str) -> dict:
        datasets = events[task][side]
        assert len(datasets) == 1, (task, side, datasets)
        return datasets[0]

    # input: the endpoint, with the journey count and the window, not the journeys
    for task, endpoint in [("journey_files", "/v1/stats/journey"),
                           ("message_parquet", "/v1/stats/journey/message"),
                           ("webhook_delta", "/v1/stats/journey/webhook"),
                           ("journey_sql", "/v1/stats/journey"), ("journey_xcom", "/v1/stats/journey")]:
        read = one(task, "inputs")
        assert (read["namespace"], read["name"]) == (api, endpoint)
        query = read["facets"]["engagelab_query"]
        assert {k: query[k] for k in ("journey_count", "start", "end", "time_unit")} == {
            "journey_count": 3, "start": START, "end": END, "time_unit": "DAY"}
        assert "101" not in json.dumps(query)
        assert {"time", "entry_count"} <= {f["name"] for f in read["facets"]["schema"]["fields"]}
    wait = one("wait", "inputs")
    assert (wait["name"], wait["facets"]["engagelab_query"]["time_unit"]) == ("/v1/stats/journey", "HOUR")
    assert events["wait"]["outputs"] == [] and events["journey_xcom"]["outputs"] == []

    # outputs: one dataset per target, schema and outputStatistics
    files = one("journey_files", "outputs")
    assert (files["namespace"], files["name"]) == ("file", f"{root}/journey")
    stats = files["outputFacets"]["outputStatistics"]
    written = list((root / "journey").rglob("*.jsonl"))
    assert stats["rowCount"] == expected["journey"] == result.xcom("journey_files")["total_rows"]
    assert stats["fileCount"] == len(written) == 3  # one per date
    assert stats["size"] == sum(p.stat().st_size for p in written)
    fields = {f["name"]: f["type"] for f in files["facets"]["schema"]["fields"]}
    assert fields == {"journey_id": "integer", "time_unit": "string", "time": "string",
                      "entry_count": "integer", "conversion_count": "integer", "completion_count": "integer",
                      "early_exit_count": "integer", "in_progress_count": "integer"}

    parquet = one("message_parquet", "outputs")
    assert (parquet["namespace"], parquet["name"]) == ("file", f"{root}/pq/message")
    assert parquet["outputFacets"]["outputStatistics"]["rowCount"] == expected["message"]
    types = {f["name"]: f["type"] for f in parquet["facets"]["schema"]["fields"]}
    assert (types["revenue_amount"], types["component_id"], types["channel"]) == ("double", "int64", "string")

    delta = one("webhook_delta", "outputs")
    assert (delta["namespace"], delta["name"]) == ("file", f"{root}/lake/webhook/day")
    delta_stats = delta["outputFacets"]["outputStatistics"]
    assert delta_stats["rowCount"] == expected["webhook"] and delta_stats["fileCount"] >= 1
    table_dir = root / "lake/webhook/day"
    assert delta_stats["size"] == sum(p.stat().st_size for p in table_dir.rglob("*.parquet"))
    assert {f["name"]: f["type"] for f in delta["facets"]["schema"]["fields"]}["date"] == "date"

    table = one("journey_sql", "outputs")
    assert table["namespace"] == f"postgres://127.0.0.1:{postgres_server.port}"
    assert table["name"] == f"postgres.public.{TABLE}"
    assert table["outputFacets"]["outputStatistics"]["rowCount"] == expected["journey"]
    sql_types = {f["name"]: f["type"] for f in table["facets"]["schema"]["fields"]}
    assert sql_types["entry_count"] == "BIGINT" and "bucket_start" in sql_types


def test_without_the_provider_the_dag_runs_and_nothing_is_emitted(airflow_runner, postgres_server, tmp_path):
    postgres_server.query(f"DROP TABLE IF EXISTS public.{TABLE}")
    airflow_runner.add_dag_source("lineage_dag.py", DAG)
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(NO_OPENLINEAGE)
    root, ol_file = tmp_path / "out", tmp_path / "ol.jsonl"
    with Sandbox(available_through=CUTOFF) as sb:
        env = {**_env(sb, postgres_server, root, ol_file), "PYTHONPATH": str(site)}
        result = airflow_runner.run("engagelab_lineage", logical_date="2026-06-02T00:00:00+00:00", env=env)
    assert result.state == "success" and set(result.task_states.values()) == {"success"}
    assert not ol_file.exists()  # nothing emitted
    assert "airflow_provider_engagelab._openlineage" not in result.log  # our lineage code never ran
