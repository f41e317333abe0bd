"""When the API adds a field: ``on_schema_change`` warn, fail and keep, per format, end to end.

Every answer's detail rows get a field (as a new API version would), rewritten between the
sandbox and the hook's parser; real operator tasks write a root that DuckDB and pyarrow read."""

from __future__ import annotations

import json
import logging

import pytest

from airflow_provider_engagelab.exceptions import EngageLabSchemaChangeError, EngageLabValidationError
from airflow_provider_engagelab.operators.engagelab import EngageLabStatsOperator
from airflow_provider_engagelab.testing.output import data_files, duplicate_keys, read_rows
from airflow_provider_engagelab.testing.sandbox import Sandbox


@pytest.fixture(scope="module")
def sb():
    with Sandbox(available_through="2026-07-01") as sandbox:
        yield sandbox


@pytest.fixture(autouse=True)
def _conn(sb, monkeypatch):
    from airflow_provider_engagelab.core import parsing

    monkeypatch.setattr(parsing, "_known_extras", {})
    monkeypatch.setenv("AIRFLOW_CONN_ENGAGELAB_DEFAULT", json.dumps(sb.airflow_connection()))


def add_field(monkeypatch, name="ctr", value=0.25):
    """Every detail row of every answer gets ``name`` (a body rewrite between API and hook)."""
    from airflow_provider_engagelab.core import parsing

    real = parsing.parse_response

    def parse(call, status, body, **kw):
        if 200 <= status < 300:
            body = body.replace(b'"time":', f'"{name}":{json.dumps(value)},"time":'.encode())
        return real(call, status, body, **kw)

    for module in ("airflow_provider_engagelab.hooks._base",):
        monkeypatch.setattr(f"{module}.parse_response", parse)

    # the sync hook reads its answers from the body file (core.answer.read_answer)
    from airflow_provider_engagelab.hooks import engagelab as sync_hook

    real_read = sync_hook.read_answer

    def read(call, status, body, **kw):
        if 200 <= status < 300:
            body = bytes(body).replace(b'"time":', f'"{name}":{json.dumps(value)},"time":'.encode())
        return real_read(call, status, body, **kw)

    monkeypatch.setattr(sync_hook, "read_answer", read)


def run(tmp_path, fmt, policy, ids=(1, 2), stats_type="message", **kw):
    op = EngageLabStatsOperator(
        task_id="t", stats_type=stats_type, journey_ids=list(ids), start_time="2026-05-01",
        end_time="2026-05-02", output_path=str(tmp_path / "out"), output_format=fmt,
        on_schema_change=policy, **kw,
    )
    logger = logging.getLogger("engagelab-test.schema")  # a stdlib logger: caplog sees it
    object.__setattr__(op, "_cached_logger", logger)
    object.__setattr__(op, "_log", logger)
    return op.execute({})


@pytest.fixture(params=["jsonl", "csv", "parquet"])
def fmt(request):
    if request.param == "parquet":
        pytest.importorskip("pyarrow")
    return request.param


def test_warn_writes_the_known_columns_logs_once_and_reports(sb, tmp_path, monkeypatch, fmt, caplog):
    add_field(monkeypatch)
    caplog.set_level(logging.INFO)
    summary = run(tmp_path, fmt, "warn")
    assert [c["field"] for c in summary["schema_changes"]] == ["ctr"]
    assert summary["schema_changes"][0]["journey_id"] == 1
    rows = read_rows(tmp_path / "out", "message", "DAY")
    assert rows and all("ctr" not in r for r in rows)
    want = sb.expected_rows("message", [1, 2], "DAY", "2026-05-01", "2026-05-02")
    assert len(rows) == len(want) and duplicate_keys(rows, "message") == []
    said = [r for r in caplog.records if "'ctr'" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.WARNING  # once per task


def test_fail_refuses_before_anything_is_written(sb, tmp_path, monkeypatch, fmt):
    add_field(monkeypatch)
    with pytest.raises(EngageLabSchemaChangeError, match="ctr .*on_schema_change='fail'") as err:
        run(tmp_path, fmt, "fail")
    assert err.value.fields == ["ctr"]
    assert not (tmp_path / "out").exists()


def test_keep_adds_the_field_after_the_columns(sb, tmp_path, monkeypatch, fmt):
    add_field(monkeypatch)
    summary = run(tmp_path, fmt, "keep")
    assert [c["field"] for c in summary["schema_changes"]] == ["ctr"]
    rows = read_rows(tmp_path / "out", "message", "DAY")
    assert rows and all(r["ctr"] in (0.25, "0.25") for r in rows)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        schema = pq.read_schema(data_files(tmp_path / "out", "message", "DAY")[0])
        assert schema.names[-1] == "ctr" and str(schema.field("ctr").type) == "double"
    if fmt == "csv":
        header = data_files(tmp_path / "out", "message", "DAY")[0].read_text().splitlines()[0]
        assert header.endswith(",revenue_amount,ctr")


def test_a_root_whose_files_differ_in_schema_reads_by_name(sb, tmp_path, monkeypatch):
    """Old files without the field beside new ones with it: DuckDB and pyarrow union by name."""
    pa = pytest.importorskip("pyarrow")
    duckdb = pytest.importorskip("duckdb")
    run(tmp_path, "parquet", "keep", ids=(1,))  # before the API added the field
    add_field(monkeypatch, value=3)
    run(tmp_path, "parquet", "keep", ids=(2,))
    root = tmp_path / "out" / "message"
    files = data_files(tmp_path / "out", "message", "DAY")
    import pyarrow.dataset as ds

    schema = pa.unify_schemas([ds.dataset(f).schema for f in files])
    table = ds.dataset(files, schema=schema).to_table()
    by_journey = {}
    for row in table.to_pylist():
        by_journey.setdefault(row["journey_id"], set()).add(row["ctr"])
    assert by_journey[1] == {None} and by_journey[2] == {3}
    got = duckdb.sql(
        f"select journey_id, count(*), count(ctr) from read_parquet('{root}/**/*.parquet', "
        "union_by_name=true, hive_partitioning=true) group by journey_id order by journey_id"
    ).fetchall()
    n = len(sb.expected_rows("message", [1], "DAY", "2026-05-01", "2026-05-02"))
    assert got[0] == (1, n, 0) and got[1][0] == 2 and got[1][2] == got[1][1]


def test_a_field_that_changes_type_is_a_clear_error_per_format(sb, tmp_path, monkeypatch, fmt):
    from airflow_provider_engagelab.core import parsing

    real = parsing.parse_response

    def parse(call, status, body, **kw):  # a count arriving as a string
        return real(call, status, body.replace(b'"send_count":', b'"send_count":"1","x_":', 1), **kw)

    monkeypatch.setattr("airflow_provider_engagelab.hooks._base.parse_response", parse)
    from airflow_provider_engagelab.hooks import engagelab as sync_hook

    real_read = sync_hook.read_answer

    def read(call, status, body, **kw):  # the sync hook reads its answers from the body file
        body = bytes(body).replace(b'"send_count":', b'"send_count":"1","x_":', 1)
        return real_read(call, status, body, **kw)

    monkeypatch.setattr(sync_hook, "read_answer", read)
    with pytest.raises(Exception, match=r"journey 1: detail field 'send_count' must be int, got '1' \(str\)"):
        run(tmp_path, fmt, "keep")
    assert not (tmp_path / "out").exists()


def test_the_policy_is_checked_when_the_dag_is_parsed():
    with pytest.raises(EngageLabValidationError, match=r"on_schema_change='drop': must be one of 'warn'"):
        EngageLabStatsOperator(task_id="t", stats_type="journey", journey_ids=[1], on_schema_change="drop")
