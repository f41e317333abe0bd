"""EngageLab stats operators, executed in-process against the sandbox API (real HTTP, real files).

The run window, XCom output, file output (every format read back), idempotent reruns, atomic
commit, error policies and parse-time validation. Real Airflow runs (``dag.test()``) are in
``test_operator_dag_test.py``.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pendulum
import pytest
import requests_mock as requests_mock_lib
from airflow.sdk import DAG, Asset, AssetAlias

from airflow_provider_engagelab.core.layout import journey_set_hash
from airflow_provider_engagelab.core.parsing import COLUMNS, DETAIL_FIELDS
from airflow_provider_engagelab.core.query import StatsType
from airflow_provider_engagelab.exceptions import (
    EngageLabError,
    EngageLabJourneyErrors,
    EngageLabValidationError,
)
from airflow_provider_engagelab.operators import engagelab as op_module
from airflow_provider_engagelab.operators.engagelab import (
    EngageLabJourneyStatsOperator,
    EngageLabMessageStatsOperator,
    EngageLabStatsOperator,
    EngageLabWebhookStatsOperator,
)
from airflow_provider_engagelab.testing.sandbox import Fault

UTC = timezone.utc


def ctx(**values: Any) -> dict[str, Any]:
    """A minimal task context (what the operator reads from it)."""
    return values


def run(op: EngageLabStatsOperator, context: dict[str, Any] | None = None) -> Any:
    return op.execute(context or {})


def files_under(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def key(row: dict) -> tuple:
    return (row["journey_id"], row["time"], row.get("component_id", 0))


def read_jsonl(root: Path) -> list[dict]:
    rows = []
    for path in sorted(root.rglob("*.jsonl")):
        rows += [json.loads(line) for line in path.read_text().splitlines()]
    return rows


def typed_csv_rows(path: Path, stats_type: str) -> list[dict]:
    kinds = dict(DETAIL_FIELDS[StatsType(stats_type)])
    kinds["journey_id"] = "int"
    conv = {"int": int, "number": float, "str": str}
    with path.open(newline="") as f:
        return [{k: conv[kinds.get(k, "str")](v) for k, v in row.items()} for row in csv.DictReader(f)]


@pytest.fixture
def capture_log():
    """Attach a stdlib logger to an operator, so caplog sees its messages."""

    def attach(op: EngageLabStatsOperator) -> None:
        logger = logging.getLogger(f"engagelab-test.{op.task_id}")
        object.__setattr__(op, "_cached_logger", logger)
        object.__setattr__(op, "_log", logger)

    return attach


# ============================================================================ parse time


def test_template_fields():
    assert EngageLabStatsOperator.template_fields == (
        "journey_ids",
        "time_unit",
        "start_time",
        "end_time",
        "output_path",
    )


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"stats_type": "clicks"}, ["stats_type", "'clicks'", "journey"]),
        ({"output_format": "xml"}, ["output_format", "'xml'"]),
        ({"on_journey_error": "ignore"}, ["on_journey_error", "'ignore'"]),
        ({"lookback_days": -1}, ["lookback_days", "-1", "from 0 to"]),
        ({"lookback_days": "2"}, ["lookback_days"]),
        ({"max_xcom_rows": 0}, ["max_xcom_rows", ">= 1"]),
        ({"time_unit": "WEEK"}, ["time_unit", "'WEEK'"]),
        ({"journey_ids": []}, ["journey_ids"]),
        ({"journey_ids": "1,x"}, ["journey_ids", "'x'"]),
        ({"start_time": "2026-02-30", "end_time": "2026-03-01"}, ["start_time", "2026-02-30"]),
        ({"output_path": "relative/dir"}, ["output_path", "absolute"]),
    ],
)
def test_parse_time_errors_name_the_parameter(kwargs, words):
    params = {"stats_type": "journey", "journey_ids": [1], **kwargs}
    with pytest.raises(EngageLabValidationError) as err:
        EngageLabStatsOperator(task_id="t", **params)
    for word in words:
        assert word in str(err.value)


def test_templated_values_are_checked_at_run_time_not_at_parse_time():
    op = EngageLabStatsOperator(
        task_id="t",
        stats_type="journey",
        journey_ids="{{ params.ids }}",
        time_unit="{{ params.unit }}",
        start_time="{{ ds }}",
        end_time="{{ ds }}",
        output_path="s3://bucket/{{ ds }}",
    )
    assert op.journey_ids == "{{ params.ids }}"


def test_subclasses_fix_the_stats_type():
    for cls, stype in [
        (EngageLabJourneyStatsOperator, "journey"),
        (EngageLabMessageStatsOperator, "message"),
        (EngageLabWebhookStatsOperator, "webhook"),
    ]:
        assert cls(task_id="t", journey_ids=[1]).stats_type == stype
    with pytest.raises(TypeError, match="EngageLabStatsOperator"):
        EngageLabJourneyStatsOperator(task_id="t", journey_ids=[1], stats_type="message")


def test_outlets_literal_path_is_an_asset(tmp_path):
    op = EngageLabMessageStatsOperator(task_id="t", journey_ids=[1], output_path=str(tmp_path))
    assert op.outlets == [Asset(f"file://{tmp_path}/message")]
    s3 = EngageLabJourneyStatsOperator(task_id="t", journey_ids=[1], output_path="s3://b/p/")
    assert s3.outlets == [Asset("s3://b/p/journey")]
    assert EngageLabJourneyStatsOperator(task_id="x", journey_ids=[1]).outlets == []


def test_outlets_templated_path_is_an_alias_and_user_outlets_are_kept():
    mine = Asset("s3://other/thing")
    with DAG("d", schedule=None):
        op = EngageLabJourneyStatsOperator(
            task_id="t", journey_ids=[1], output_path="s3://b/{{ ds }}", outlets=[mine]
        )
    assert op.outlets == [mine, AssetAlias(name="engagelab:d.t")]
    assert op.asset_alias_name == "engagelab:d.t"


def test_partial_validates_and_declares_the_outlet(tmp_path):
    with DAG("dm", schedule=None):
        with pytest.raises(EngageLabValidationError, match="output_format"):
            EngageLabJourneyStatsOperator.partial(task_id="bad", output_format="xml")
        literal = EngageLabJourneyStatsOperator.partial(task_id="a", output_path=str(tmp_path)).expand(
            journey_ids=[[1], [2]]
        )
        templated = EngageLabStatsOperator.partial(
            task_id="b", stats_type="webhook", output_path=str(tmp_path) + "/{{ ds }}"
        ).expand(journey_ids=[[1], [2]])
        xcom_only = EngageLabJourneyStatsOperator.partial(task_id="c").expand(journey_ids=[[1]])
        by_type = EngageLabStatsOperator.partial(
            task_id="d", journey_ids=[1], output_path=str(tmp_path)
        ).expand(stats_type=["journey", "message"])
        with pytest.raises(EngageLabValidationError, match="stats_type"):
            EngageLabStatsOperator.partial(task_id="e", stats_type="clicks")
    assert literal.outlets == [Asset(f"file://{tmp_path}/journey")]
    assert templated.outlets == [AssetAlias(name="engagelab:dm.b")]
    assert xcom_only.outlets == [AssetAlias(name="engagelab:dm.c")]  # expand() may give output_path
    assert by_type.outlets == [AssetAlias(name="engagelab:dm.d")]


# ============================================================================ validation before HTTP


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"start_time": "2026-06-01"}, ["end_time=None", "together"]),
        ({"end_time": "2026-06-01"}, ["start_time=None"]),
        ({"start_time": "2026-06-05", "end_time": "2026-06-01"}, ["end_time", "on or after"]),
        ({"journey_ids": "[1, 'x']"}, ["journey_ids", "'x'"]),
        ({"journey_ids": "[1, 2"}, ["journey_ids", "list literal"]),
        ({"journey_ids": "[0]"}, ["journey_ids", "positive"]),
    ],
)
def test_run_time_errors_come_before_any_http_call(kwargs, words, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_ENGAGELAB_DEFAULT",
        json.dumps({"conn_type": "engagelab", "host": "http://127.0.0.1:9", "login": "k", "password": "s"}),
    )
    with requests_mock_lib.Mocker() as m:  # any request would fail with NoMockAddress
        with DAG("v", schedule=None):
            # templated on purpose: validated at run time (rendered by Airflow before execute)
            op = EngageLabJourneyStatsOperator(task_id="t", journey_ids="{{ x }}")
        for name, value in {"journey_ids": [1], **kwargs}.items():
            setattr(op, name, value)
        with pytest.raises(EngageLabValidationError) as err:
            run(op, ctx(logical_date=datetime(2026, 6, 2, tzinfo=UTC)))
        assert m.call_count == 0
    for word in words:
        assert word in str(err.value)


# ============================================================================ XCom output


@pytest.mark.parametrize("stats_type", ["journey", "message", "webhook"])
@pytest.mark.parametrize("time_unit", ["DAY", "HOUR"])
def test_each_stats_type_and_time_unit_to_xcom(sandbox, stats_type, time_unit):
    op = EngageLabStatsOperator(
        task_id="t",
        stats_type=stats_type,
        journey_ids=[7, 3],
        time_unit=time_unit,
        start_time="2026-05-30",
        end_time="2026-06-01",
    )
    rows = run(op)
    expected = sandbox.expected_rows(stats_type, [3, 7], time_unit, "2026-05-30", "2026-06-01")
    assert rows == expected and rows
    assert sandbox.counters()["requests"] == 1


@pytest.mark.parametrize("given", ["[7, 3, 5]", "(7, 3, 5)", "7,3,5", ["7", 3, "5"]])
def test_journey_ids_forms_are_accepted_and_sent_sorted(sandbox, given):
    op = EngageLabJourneyStatsOperator(
        task_id="t", journey_ids="{{ x }}", start_time="2026-06-01", end_time="2026-06-01"
    )
    op.journey_ids = given  # what rendering produced
    assert len(run(op)) == 3
    ((path, query),) = sandbox.counters()["log"]
    assert "journey_id=3%2C5%2C7" in query or "journey_id=3,5,7" in query


def test_xcom_guard_fails_before_pushing_and_points_to_output_path(sandbox):
    op = EngageLabJourneyStatsOperator(
        task_id="t", journey_ids=[1, 2, 3], start_time="2026-06-01", end_time="2026-06-04", max_xcom_rows=11
    )
    with pytest.raises(EngageLabValidationError) as err:
        run(op)
    assert "output_path" in str(err.value) and "max_xcom_rows=11" in str(err.value)
    op.max_xcom_rows = 12  # exactly the row count: allowed
    assert len(run(op)) == 12


# ============================================================================ window rules


def window_of(summary: dict) -> tuple[str, str]:
    return summary["window"]["start"], summary["window"]["end"]


def dag_in(tz: str) -> DAG:
    return DAG(f"tz_{tz.replace('/', '_')}", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz=tz))


@pytest.mark.parametrize(
    ("name", "context", "window"),
    [
        (
            "daily interval",
            ctx(
                data_interval_start=datetime(2026, 6, 1, tzinfo=UTC),
                data_interval_end=datetime(2026, 6, 2, tzinfo=UTC),
                logical_date=datetime(2026, 6, 1, tzinfo=UTC),
            ),
            ("2026-06-01", "2026-06-01"),
        ),
        (
            "weekly interval",
            ctx(
                data_interval_start=datetime(2026, 6, 1, tzinfo=UTC),
                data_interval_end=datetime(2026, 6, 8, tzinfo=UTC),
            ),
            ("2026-06-01", "2026-06-07"),
        ),
        (
            "empty interval (@daily)",
            ctx(
                data_interval_start=datetime(2026, 6, 2, tzinfo=UTC),
                data_interval_end=datetime(2026, 6, 2, tzinfo=UTC),
                logical_date=datetime(2026, 6, 2, tzinfo=UTC),
            ),
            ("2026-06-01", "2026-06-01"),
        ),
        (
            "manual run without logical date",
            ctx(dag_run=SimpleNamespace(run_after=datetime(2026, 6, 2, 9, tzinfo=UTC))),
            ("2026-06-01", "2026-06-01"),
        ),
    ],
)
def test_default_window(sandbox, tmp_path, name, context, window):
    op = EngageLabJourneyStatsOperator(task_id="t", journey_ids=[1], output_path=str(tmp_path))
    assert window_of(run(op, context)) == window, name


def test_window_in_dag_time_zone_singapore(sandbox, tmp_path):
    # 2026-06-01T16:30Z is 2026-06-02 00:30 in Singapore: the day before is 2026-06-01 there,
    # but would be 2026-05-31 in UTC.
    when = datetime(2026, 6, 1, 16, 30, tzinfo=UTC)
    context = ctx(
        dag=dag_in("Asia/Singapore"), logical_date=when, data_interval_start=when, data_interval_end=when
    )
    op = EngageLabJourneyStatsOperator(task_id="t", journey_ids=[1], output_path=str(tmp_path))
    assert window_of(run(op, context)) == ("2026-06-01", "2026-06-01")
    context["dag"] = dag_in("UTC")
    assert window_of(run(op, context)) == ("2026-05-31", "2026-05-31")
    # a daily interval of a Singapore DAG: [06-02 00:00+08, 06-03 00:00+08)
    sg = ZoneInfo("Asia/Singapore")
    context = ctx(
        dag=dag_in("Asia/Singapore"),
        data_interval_start=datetime(2026, 6, 2, tzinfo=sg),
        data_interval_end=datetime(2026, 6, 3, tzinfo=sg),
    )
    assert window_of(run(op, context)) == ("2026-06-02", "2026-06-02")


def test_lookback_extends_the_default_and_the_explicit_window(sandbox, tmp_path):
    context = ctx(logical_date=datetime(2026, 6, 10, tzinfo=UTC))
    op = EngageLabJourneyStatsOperator(
        task_id="t", journey_ids=[1], output_path=str(tmp_path), lookback_days=3
    )
    summary = run(op, context)
    assert window_of(summary) == ("2026-06-06", "2026-06-09")
    assert len(summary["files"]) == 4
    op = EngageLabJourneyStatsOperator(
        task_id="t", journey_ids=[1], start_time="2026-06-05", end_time="2026-06-06", lookback_days=2
    )
    assert sorted({r["time"] for r in run(op)}) == ["2026-06-03", "2026-06-04", "2026-06-05", "2026-06-06"]


# ============================================================================ file output


def test_many_ids_and_days_rows_equal_the_union_without_doubles(sandbox, tmp_path):
    ids = list(range(1, 151))  # 2 batches
    op = EngageLabJourneyStatsOperator(
        task_id="t",
        journey_ids=ids,
        start_time="2026-03-01",
        end_time="2026-04-09",
        output_path=str(tmp_path),
    )  # 40 days: 2 windows
    summary = run(op)
    expected = sandbox.expected_rows("journey", ids, "DAY", "2026-03-01", "2026-04-09")
    got = read_jsonl(tmp_path)
    assert len(got) == len(expected) == 150 * 40
    assert sorted(got, key=key) == sorted(expected, key=key)
    assert summary["calls"] == 4 and sandbox.counters()["requests"] == 4
    assert summary["total_rows"] == 6000 and len(summary["files"]) == 40
    assert all(f["rows"] == 150 for f in summary["files"])


def test_hour_rows_across_chunk_borders(sandbox, tmp_path):
    ids = list(range(1, 103))
    op = EngageLabMessageStatsOperator(
        task_id="t",
        journey_ids=ids,
        time_unit="HOUR",
        start_time="2026-01-30",
        end_time="2026-03-02",
        output_path=str(tmp_path),
    )  # 32 days
    summary = run(op)
    expected = sandbox.expected_rows("message", ids, "HOUR", "2026-01-30", "2026-03-02")
    got = read_jsonl(tmp_path)
    assert len(got) == len(expected)
    assert sorted(got, key=key) == sorted(expected, key=key)
    assert summary["calls"] == 4
    march = tmp_path / "message/time_unit=HOUR/date=2026-03-02"
    assert {r["time"][:10] for r in read_jsonl(march)} == {"2026-03-02"}


@pytest.mark.parametrize("stats_type", ["journey", "message", "webhook"])
@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_each_format_reads_back_equal(sandbox, tmp_path, stats_type, fmt):
    if fmt == "parquet":
        pq = pytest.importorskip("pyarrow.parquet")
    ids = [4, 2]
    op = EngageLabStatsOperator(
        task_id="t",
        stats_type=stats_type,
        journey_ids=ids,
        start_time="2026-06-01",
        end_time="2026-06-02",
        output_path=f"file://{tmp_path}/out",
        output_format=fmt,
    )
    summary = run(op)
    assert summary["format"] == fmt
    name = f"part-{journey_set_hash(ids)}.{fmt}"
    for f in summary["files"]:
        day = f["uri"].split("date=")[1][:10]
        assert f["uri"] == f"file://{tmp_path}/out/{stats_type}/time_unit=DAY/date={day}/{name}"
        path = Path(f["uri"][len("file://") :])
        if fmt == "jsonl":
            got = [json.loads(x) for x in path.read_text().splitlines()]
        elif fmt == "csv":
            assert path.read_text().splitlines()[0] == ",".join(COLUMNS[StatsType(stats_type)])
            got = typed_csv_rows(path, stats_type)
        else:
            # the file alone: pyarrow 23/24 also read the time_unit=/date= of its path as columns
            table = pq.read_table(path, partitioning=None)
            assert table.column_names == list(COLUMNS[StatsType(stats_type)])
            got = table.to_pylist()
        expected = sandbox.expected_rows(stats_type, sorted(ids), "DAY", day, day)
        if fmt != "jsonl" and stats_type == "message":
            expected = [{**r, "revenue_amount": float(r["revenue_amount"])} for r in expected]
        assert got == expected and f["rows"] == len(expected) > 0


def test_dates_without_rows_get_no_file_and_lose_the_rows_written_before(sandbox, tmp_path):
    def fetch(through: datetime) -> dict:
        sandbox.configure(available_through=through)
        try:
            return run(EngageLabJourneyStatsOperator(
                task_id="t", journey_ids=[1], start_time="2026-06-01", end_time="2026-06-03",
                output_path=str(tmp_path), output_format="csv",
            ))
        finally:
            sandbox.configure(available_through=None)

    before = fetch(datetime(2026, 6, 4, tzinfo=UTC))
    assert [f["rows"] for f in before["files"]] == [1, 1, 1] and before["removed"] == []
    summary = fetch(datetime(2026, 6, 2, tzinfo=UTC))  # the API now has no rows from 06-02 on
    assert [f["rows"] for f in summary["files"]] == [1] and summary["partitions"] == 3
    assert summary["removed"] == [f["uri"] for f in before["files"][1:]]  # what it says is gone, is
    data = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.csv"))
    assert data == [before["files"][0]["uri"][len(f"file://{tmp_path}/"):]]
    header = ",".join(COLUMNS[StatsType.JOURNEY]) + "\n"
    assert Path(summary["files"][0]["uri"][7:]).read_text().startswith(header)


def test_rerun_and_overlapping_lookback_rewrite_the_same_bytes(sandbox, tmp_path):
    kwargs = {"task_id": "t", "journey_ids": [9, 8, 7], "output_path": str(tmp_path)}
    first = run(EngageLabMessageStatsOperator(start_time="2026-06-01", end_time="2026-06-05", **kwargs))
    before = files_under(tmp_path)
    second = run(EngageLabMessageStatsOperator(start_time="2026-06-01", end_time="2026-06-05", **kwargs))
    assert files_under(tmp_path) == before and first == second
    # same journeys in another order, wider window with lookback: same names, same bytes
    kwargs["journey_ids"] = [7, 9, 8]
    run(
        EngageLabMessageStatsOperator(
            start_time="2026-06-04", end_time="2026-06-07", lookback_days=5, **kwargs
        )
    )
    after = files_under(tmp_path)
    assert len([k for k in after if k.endswith(".jsonl")]) == 9  # 05-30 .. 06-07, one file each
    assert {k: after[k] for k in before} == before
    rows = read_jsonl(tmp_path)
    assert len(rows) == len({key(r) for r in rows})  # no row twice


def test_failure_before_commit_writes_nothing(sandbox, tmp_path):
    out = tmp_path / "out"
    op = EngageLabJourneyStatsOperator(
        task_id="t", journey_ids=[1, 2], start_time="2026-03-01", end_time="2026-04-09", output_path=str(out)
    )  # 2 calls
    sandbox.inject(Fault("code_in_200", code=40050))  # one call fails, not retried
    with pytest.raises(Exception, match="40050"):
        run(op)
    assert not out.exists()
    run(op)  # a good run, then a failing one: the good files stay as they were
    before = files_under(out)
    sandbox.inject(Fault("code_in_200", code=40050))
    with pytest.raises(Exception, match="40050"):
        run(op)
    assert files_under(out) == before


def test_failure_mid_commit_keeps_earlier_files_whole_and_no_partial_file(sandbox, tmp_path, monkeypatch):
    op = EngageLabJourneyStatsOperator(
        task_id="t",
        journey_ids=[1, 2],
        start_time="2026-06-01",
        end_time="2026-06-04",
        output_path=str(tmp_path),
    )
    run(op)
    good = {k: v for k, v in files_under(tmp_path).items() if k.endswith(".jsonl")}
    # an older run's rows: the same journeys, other counts (and another size than the manifest says)
    stale = {k: v.replace(b'"entry_count":', b'"entry_count":1') for k, v in good.items()}
    for name, data in stale.items():
        (tmp_path / name).write_bytes(data)
    real_replace = os.replace
    calls = []

    def replace_failing_third_data_file(src, dst):
        if dst.endswith(".jsonl"):
            calls.append(dst)
            if len(calls) == 3:
                raise OSError("simulated crash while moving into place")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_failing_third_data_file)
    with pytest.raises(EngageLabError, match="simulated crash"):
        run(op)
    monkeypatch.setattr(os, "replace", real_replace)
    now = files_under(tmp_path)
    assert [n for n in now if not n.endswith((".jsonl", "_engagelab_manifest.json"))] == []  # no temp file
    names = sorted(good)
    assert [now[n] for n in names] == [good[names[0]], good[names[1]], stale[names[2]], stale[names[3]]]
    run(op)  # the retry
    assert {k: v for k, v in files_under(tmp_path).items() if k.endswith(".jsonl")} == good


# ============================================================================ error policies


@pytest.fixture
def missing_2(sandbox):
    sandbox.configure(missing_journeys={2, 5})
    yield sandbox
    sandbox.configure(missing_journeys=set())


def test_policy_fail_lists_every_journey_and_writes_nothing(missing_2, tmp_path):
    op = EngageLabJourneyStatsOperator(
        task_id="t",
        journey_ids=[1, 2, 3, 5],
        start_time="2026-03-01",
        end_time="2026-04-09",
        output_path=str(tmp_path / "out"),
    )
    with pytest.raises(EngageLabJourneyErrors) as err:
        run(op)
    text = str(err.value)
    assert "journey 2: code 50202" in text and "journey 5: code 50202" in text
    assert "does not exist" in text
    assert [e["journey_id"] for e in err.value.errors] == [2, 5]  # once each, across 2 windows
    assert not (tmp_path / "out").exists()
    op.output_path = None
    with pytest.raises(EngageLabJourneyErrors):
        run(op)


@pytest.mark.parametrize("policy", ["warn", "skip"])
def test_policy_warn_and_skip_keep_the_good_journeys(sandbox, tmp_path, policy, caplog, capture_log):
    caplog.set_level(logging.DEBUG, logger="engagelab-test")

    def operator() -> EngageLabJourneyStatsOperator:
        op = EngageLabJourneyStatsOperator(
            task_id="t", journey_ids=[1, 2, 3], start_time="2026-06-01", end_time="2026-06-02",
            output_path=str(tmp_path), on_journey_error=policy,
        )
        capture_log(op)
        return op

    run(operator())  # journey 2 answers this time
    sandbox.configure(missing_journeys={2, 5})
    try:
        summary = run(operator())
    finally:
        sandbox.configure(missing_journeys=set())
    assert summary["journey_errors"] == [
        {
            "journey_id": 2,
            "error_code": 50202,
            "meaning": "journey does not exist or belongs to another project",
        }
    ]
    # journeys 1 and 3 rewritten; journey 2 keeps the rows the first run wrote, once
    assert sorted(read_jsonl(tmp_path), key=key) == sorted(
        sandbox.expected_rows("journey", [1, 2, 3], "DAY", "2026-06-01", "2026-06-02"), key=key
    )
    assert len(summary["rewritten"]) == 2  # the first run's file of each date, now journey 2 only
    about_2 = [r for r in caplog.records if "Journey 2 failed with code 50202" in r.getMessage()]
    assert len(about_2) == 1
    assert about_2[0].levelno == (logging.WARNING if policy == "warn" else logging.DEBUG)
    # the new files are named by the journeys fetched
    assert all(journey_set_hash([1, 3]) in f["uri"] for f in summary["files"])


def test_policy_warn_to_xcom(missing_2):
    op = EngageLabJourneyStatsOperator(
        task_id="t",
        journey_ids=[1, 2],
        start_time="2026-06-01",
        end_time="2026-06-01",
        on_journey_error="warn",
    )
    assert [r["journey_id"] for r in run(op)] == [1]


# ============================================================================ asset events


class _Accessor:
    def __init__(self):
        self.extra: dict = {}
        self.added: list = []

    def add(self, asset, extra=None):
        self.added.append((asset, extra))


class _Events:
    """Stand-in for ``context["outlet_events"]`` (Assets are not hashable in Airflow 3.0)."""

    def __init__(self):
        self._by_key: dict = {}

    def __getitem__(self, k):
        return self._by_key.setdefault((type(k).__name__, getattr(k, "uri", None) or k.name), _Accessor())


def test_asset_events_literal_and_alias(sandbox, tmp_path):
    events = _Events()
    op = EngageLabJourneyStatsOperator(
        task_id="t",
        journey_ids=[1],
        start_time="2026-06-01",
        end_time="2026-06-01",
        output_path=str(tmp_path),
    )
    run(op, ctx(outlet_events=events))
    asset = Asset(f"file://{tmp_path}/journey")
    assert events[asset].extra["total_rows"] == 1
    with DAG("ad", schedule=None):
        templated = EngageLabJourneyStatsOperator(
            task_id="t",
            journey_ids=[1],
            start_time="2026-06-01",
            end_time="2026-06-01",
            output_path="{{ x }}",
        )
    templated.output_path = f"{tmp_path}/rendered"
    run(templated, ctx(outlet_events=events))
    ((added, extra),) = events[AssetAlias(name="engagelab:ad.t")].added
    assert added == Asset(f"file://{tmp_path}/rendered/journey") and extra["files"] == 1


# ============================================================================ module


def test_operator_module_exports():
    assert set(op_module.__all__) == {
        "EngageLabStatsOperator",
        "EngageLabJourneyStatsOperator",
        "EngageLabMessageStatsOperator",
        "EngageLabWebhookStatsOperator",
    }


# ============================================================================ stores without atomic put


class _FakePath:
    """What ``_publish`` uses of an ObjectStoragePath, over fsspec's in-memory file system."""

    def __init__(self, fs, protocol: str, path: str):
        self.fs, self.protocol, self.path = fs, protocol, path

    def __truediv__(self, other: str) -> _FakePath:
        return _FakePath(self.fs, self.protocol, f"{self.path}/{other}")

    @property
    def parent(self) -> _FakePath:
        return _FakePath(self.fs, self.protocol, self.path.rsplit("/", 1)[0])


