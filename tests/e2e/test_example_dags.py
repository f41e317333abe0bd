"""The example DAGs, run for real: DagBag import and dag.test() against the sandbox."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from airflow_provider_engagelab.testing.sandbox import Sandbox
from tests.conftest_airflow import without_mask_echo

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "example_dags"
CUTOFF = "2026-06-03T00:00:00+00:00"

pytestmark = pytest.mark.e2e


@pytest.fixture
def sandbox():
    with Sandbox(available_through=CUTOFF) as sb:
        yield sb


def _env(sb: Sandbox, out: Path, **more: str) -> dict[str, str]:
    env = {
        "AIRFLOW_CONN_ENGAGELAB_DEFAULT": json.dumps(sb.airflow_connection()),
        "ENGAGELAB_OUTPUT_PATH": out.as_uri(),
    }
    env.update(more)
    return env


def _read_rows(out: Path) -> dict[str, list[dict]]:
    """All rows of every output file, per stats type (keys: the first path part)."""
    rows: dict[str, list[dict]] = {}
    for path in sorted(out.rglob("*")):
        if not path.is_file():
            continue
        assert not path.name.startswith((".", "_engagelab.lock.")), f"a temporary file was left: {path}"
        if path.name == "_engagelab_manifest.json":
            continue
        stats_type = path.relative_to(out).parts[0]
        with path.open() as handle:
            if path.suffix == ".csv":
                loaded = list(csv.DictReader(handle))
            else:
                loaded = [json.loads(line) for line in handle if line.strip()]
        rows.setdefault(stats_type, []).extend(loaded)
    return rows


def _key(row: dict) -> str:
    return json.dumps(row, sort_keys=True)


def _assert_exactly_once(got: list[dict], expected: list[dict]) -> None:
    got_count = Counter(_key(r) for r in got)
    assert max(got_count.values(), default=1) == 1, "a row was written twice"
    assert got_count == Counter(_key(r) for r in expected)


def test_example_dags_import_cleanly(airflow_runner):
    code = """
import json, sys, warnings
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    try:  # Airflow 3.1+
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.0
        from airflow.models.dagbag import DagBag
    bag = DagBag(dag_folder=sys.argv[1])
ours = [f"{w.filename}:{w.lineno}: {w.message}" for w in caught
        if "airflow_provider_engagelab" in w.filename or "example_dags" in w.filename]
print(json.dumps({"errors": {k: str(v) for k, v in bag.import_errors.items()},
                  "dags": sorted(bag.dag_ids), "warnings": ours}))
"""
    proc = subprocess.run([sys.executable, "-c", code, str(EXAMPLES)], env=airflow_runner.env(),
                          capture_output=True, text=True, timeout=300, check=True)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["errors"] == {}
    assert report["warnings"] == []
    assert report["dags"] == [
        "example_engagelab_backfill_mapped", "example_engagelab_daily", "example_engagelab_tables",
        "example_engagelab_xcom"]


def test_daily_dag_end_to_end(airflow_runner, sandbox, tmp_path):
    out = tmp_path / "lake"
    airflow_runner.add_dag_file(EXAMPLES / "example_engagelab_daily.py")
    ids = [101, 102, 103, 104]
    env = _env(sandbox, out, ENGAGELAB_JOURNEY_IDS=",".join(map(str, ids)))
    # The run for 2026-06-02T00:00 covers 2026-06-01; lookback_days=2 adds 05-30 and 05-31.
    result = airflow_runner.run("example_engagelab_daily", logical_date="2026-06-02T00:00:00+00:00",
                                env=env)
    rows = _read_rows(out)
    for stats_type in ("journey", "message", "webhook"):
        expected = sandbox.expected_rows(stats_type, ids, "DAY", "2026-05-30", "2026-06-01")
        assert expected, stats_type
        _assert_exactly_once(rows[stats_type], expected)
    totals = result.xcom("report")
    assert totals == {t: len(rows[t]) for t in ("journey", "message", "webhook")}
    # a second run of the same day rewrites the same files: still exactly once
    before = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    airflow_runner.run("example_engagelab_daily", logical_date="2026-06-02T00:00:00+00:00", env=env)
    assert sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file()) == before
    for stats_type, got in _read_rows(out).items():
        _assert_exactly_once(got, sandbox.expected_rows(stats_type, ids, "DAY", "2026-05-30", "2026-06-01"))


def test_backfill_dag_maps_batches_without_collisions(airflow_runner, sandbox, tmp_path):
    out = tmp_path / "lake"
    airflow_runner.add_dag_file(EXAMPLES / "example_engagelab_backfill_mapped.py")
    env = _env(sandbox, out, ENGAGELAB_JOURNEY_IDS="1-250", ENGAGELAB_BATCH_SIZE="100")
    # The monthly run for 2026-06-01 covers May 2026.
    result = airflow_runner.run("example_engagelab_backfill_mapped",
                                logical_date="2026-06-01T00:00:00+00:00", env=env)
    mapped = [k for k in result.task_states if k[0] == "message_stats"]
    assert sorted(m for _, m in mapped) == [0, 1, 2]
    rows = _read_rows(out)
    ids = list(range(1, 251))
    for stats_type in ("journey", "message", "webhook"):
        _assert_exactly_once(rows[stats_type],
                             sandbox.expected_rows(stats_type, ids, "DAY", "2026-05-01", "2026-05-31"))
    assert result.xcom("totals") == {t: len(rows[t]) for t in ("journey", "message", "webhook")}
    # 3 batches x 1 window per type: the fewest calls
    assert sandbox.counters()["requests"] == 9


def test_tables_dag_loads_the_window_into_a_delta_table_exactly_once(airflow_runner, sandbox, tmp_path):
    deltalake = pytest.importorskip("deltalake")
    lake = tmp_path / "lake"
    airflow_runner.add_dag_file(EXAMPLES / "example_engagelab_tables.py")
    ids = [101, 102, 103, 104]
    warehouse = {"conn_type": "sqlite", "host": str(tmp_path / "warehouse.db")}  # the SQL tasks' target
    env = _env(sandbox, tmp_path, ENGAGELAB_JOURNEY_IDS=",".join(map(str, ids)),
               ENGAGELAB_LAKE_PATH=lake.as_uri(), AIRFLOW_CONN_ENGAGELAB_WAREHOUSE=json.dumps(warehouse))
    expected = sandbox.expected_rows("message", ids, "DAY", "2026-05-30", "2026-06-01")
    assert expected
    expected = [{**r, "revenue_amount": float(r["revenue_amount"])} for r in expected]
    versions = []
    for _ in range(2):  # the run for 2026-06-02 covers 06-01 and, looking back, 05-30 and 05-31
        result = airflow_runner.run("example_engagelab_tables", logical_date="2026-06-02T00:00:00+00:00",
                                    conf={"schema": "main"}, env=env)
        table = deltalake.DeltaTable(str(lake / "message" / "day"))
        rows = table.to_pyarrow_table().drop_columns(["date"]).to_pylist()
        _assert_exactly_once(rows, expected)
        summary = result.xcom("message_stats_delta")
        assert summary["format"] == "delta" and summary["total_rows"] == len(expected)
        versions.append((summary["version"], result.xcom("compact")["version"]))
    assert versions[1][0] > versions[0][1]  # the rerun committed after the first run's compaction


def test_xcom_dag_returns_last_week(airflow_runner, sandbox, tmp_path):
    airflow_runner.add_dag_file(EXAMPLES / "example_engagelab_xcom.py")
    env = _env(sandbox, tmp_path, ENGAGELAB_JOURNEY_IDS="101")
    result = airflow_runner.run("example_engagelab_xcom", logical_date="2026-06-02T00:00:00+00:00",
                                env=env)
    expected = sandbox.expected_rows("journey", [101], "DAY", "2026-05-26", "2026-06-01")
    assert result.xcom("last_week") == expected
    assert result.xcom("show") == 7


def test_demo_command_writes_and_reports(tmp_path):
    env = {k: v for k, v in __import__("os").environ.items()
           if not k.startswith(("AIRFLOW", "ENGAGELAB_API"))}
    env["ENGAGELAB_DEMO_DIR"] = str(tmp_path)
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "demo.py")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    rows = _read_rows(tmp_path / "demo-output")
    assert set(rows) == {"journey", "message", "webhook"}
    assert f"Rows per stats type: journey={len(rows['journey'])}" in proc.stdout
    assert f"Demo finished: {sum(len(v) for v in rows.values())} rows written." in proc.stdout
    # Airflow 3.0's `dags test` echoes, at DEBUG, the message registering a secret with the
    # masker: that is Airflow's harness, not a leak; every other line must be clean.
    assert "sandbox-secret" not in without_mask_echo(proc.stdout + proc.stderr)
