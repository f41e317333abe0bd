"""The pure output writers: layout, names, serialisation, staging, commit and XCom guard."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sys
from datetime import date
from pathlib import Path

import pytest

from airflow_provider_engagelab.core import writers
from airflow_provider_engagelab.core.parsing import COLUMNS, JourneyError
from airflow_provider_engagelab.core.query import StatsType
from airflow_provider_engagelab.core.writers import (
    PartitionStager,
    asset_uri,
    collect_rows,
    commit,
    csv_header,
    file_name,
    journey_error_report,
    journey_errors_exception,
    journey_set_hash,
    output_root_uri,
    parse_error_policy,
    parse_max_xcom_rows,
    parse_output_format,
    publish_local,
    relative_path,
)
from airflow_provider_engagelab.exceptions import (
    EngageLabJourneyErrors,
    EngageLabResponseError,
    EngageLabValidationError,
)

D1, D2, D3 = date(2026, 6, 1), date(2026, 6, 2), date(2026, 6, 3)


def journey_row(jid: int, time: str, unit: str = "DAY", n: int = 1) -> dict:
    return {"journey_id": jid, "time_unit": unit, "time": time, "entry_count": n, "conversion_count": 0,
            "completion_count": n, "early_exit_count": 0, "in_progress_count": 2 * n}


def message_row(jid: int, time: str, amount: float | int = 488.5) -> dict:
    return {"journey_id": jid, "time_unit": "DAY", "component_id": jid * 100 + 1,
            "component_name": "EMAIL_1", "channel": "Email", "time": time, "entry_count": 320,
            "plan_count": 312, "send_count": 290, "delivery_count": 270, "impression_count": 198,
            "open_count": 155, "click_count": 24, "conversion_count": 8, "revenue_count": 7,
            "revenue_amount": amount}


def stage(rows, *, fmt="jsonl", stype="journey", unit="DAY", ids=(1, 2), first=D1, last=D3, **kw):
    stager = PartitionStager(stype, unit, list(ids), first, last, fmt, **kw)
    stager.add_all(rows)
    return stager, stager.finish()


# ---------------------------------------------------------------------- parameters


@pytest.mark.parametrize(
    ("func", "value", "words"),
    [
        (parse_output_format, "xml", ["output_format", "'xml'", "jsonl", "csv", "parquet"]),
        (parse_output_format, None, ["output_format", "None"]),
        (parse_error_policy, "ignore", ["on_journey_error", "'ignore'", "fail", "warn", "skip"]),
        (parse_max_xcom_rows, 0, ["max_xcom_rows", "0", ">= 1"]),
        (parse_max_xcom_rows, True, ["max_xcom_rows", "True"]),
        (parse_max_xcom_rows, "100", ["max_xcom_rows", "'100'"]),
    ],
)
def test_parameter_errors_name_parameter_value_and_rule(func, value, words):
    with pytest.raises(EngageLabValidationError) as err:
        func(value)
    for word in words:
        assert word in str(err.value)


def test_parameters_are_normalised():
    assert parse_output_format(" CSV ") == "csv"
    assert parse_error_policy("Warn") == "warn"
    assert parse_max_xcom_rows(5) == 5


# ---------------------------------------------------------------------- layout


def test_journey_set_hash_depends_on_the_set_only():
    base = journey_set_hash([1, 2, 3])
    assert journey_set_hash([3, 1, 2]) == base
    assert journey_set_hash("3,2,1,1") == base
    assert journey_set_hash(["1", "2", "3"]) == base
    assert journey_set_hash([1, 2]) != base
    assert journey_set_hash([1, 2, 4]) != base
    assert len(base) == 16 and int(base, 16) >= 0


def test_relative_path_layout():
    name = f"part-{journey_set_hash([5, 7])}"
    assert relative_path("journey", "DAY", D1, [7, 5], "jsonl") == (
        f"journey/time_unit=DAY/date=2026-06-01/{name}.jsonl"
    )
    assert relative_path("webhook", "hour", D2, [5, 7], "parquet") == (
        f"webhook/time_unit=HOUR/date=2026-06-02/{name}.parquet"
    )
    assert file_name([5, 7], "csv") == f"{name}.csv"


@pytest.mark.parametrize(
    ("given", "root"),
    [
        ("/data/out/", "file:///data/out"),
        ("file:///data/out", "file:///data/out"),
        ("s3://bucket/prefix/", "s3://bucket/prefix"),
        ("s3://aws_conn@bucket/prefix", "s3://bucket/prefix"),
        ("gs://b", "gs://b"),
    ],
)
def test_output_root_uri(given, root):
    assert output_root_uri(given) == root


@pytest.mark.parametrize("bad", ["relative/dir", "", "   ", None, 3])
def test_output_root_uri_rejects(bad):
    with pytest.raises(EngageLabValidationError, match="output_path"):
        output_root_uri(bad)


def test_asset_uri_is_root_plus_stats_type():
    assert asset_uri("s3://bucket/x/", "message") == "s3://bucket/x/message"


# ---------------------------------------------------------------------- staging: jsonl


def test_jsonl_partitions_by_date_and_writes_every_date(tmp_path):
    rows = [journey_row(1, "2026-06-01"), journey_row(2, "2026-06-01", n=3), journey_row(1, "2026-06-03")]
    stager, staged = stage(rows)
    with stager:
        assert [s.day for s in staged] == [D1, D2, D3]
        assert [s.rows for s in staged] == [2, 0, 1]
        assert staged[0].relative_path == relative_path("journey", "DAY", D1, [1, 2], "jsonl")
        lines = Path(staged[0].local_path).read_text().splitlines()
        assert [json.loads(line) for line in lines] == rows[:2]
        # compact separators, keys in row order
        assert lines[0] == json.dumps(rows[0], separators=(",", ":"))
        assert Path(staged[1].local_path).read_bytes() == b""  # an empty day still gets its file
        assert stager.total_rows == 3
    assert not os.path.exists(stager.directory)  # the staging directory is removed


def test_hour_rows_partition_by_their_day():
    rows = [journey_row(1, "2026-06-01 00", "HOUR"), journey_row(1, "2026-06-01 23", "HOUR"),
            journey_row(1, "2026-06-02 00", "HOUR")]
    stager, staged = stage(rows, unit="HOUR", last=D2)
    with stager:
        assert [s.rows for s in staged] == [2, 1]
        assert "time_unit=HOUR/date=2026-06-02/" in staged[1].relative_path


def test_row_outside_the_window_is_rejected():
    with PartitionStager("journey", "DAY", [1], D1, D2, "jsonl") as stager:
        with pytest.raises(EngageLabResponseError, match="outside the requested window"):
            stager.add(journey_row(1, "2026-06-03"))
        with pytest.raises(EngageLabResponseError):
            stager.add({"journey_id": 1})


def test_same_rows_give_same_bytes():
    rows = [journey_row(j, f"2026-06-0{d}", n=j * d) for d in (1, 2, 3) for j in (1, 2)]
    digests = []
    for _ in range(2):
        stager, staged = stage(rows)
        with stager:
            digests.append([hashlib.sha256(Path(s.local_path).read_bytes()).hexdigest() for s in staged])
    assert digests[0] == digests[1]


def test_few_open_files_still_keep_every_row():
    # Interleave 10 dates with at most 2 files open: files are closed and reopened in append mode.
    rows = [journey_row(j, f"2026-06-{d:02d}") for j in range(1, 6) for d in range(1, 11)]
    stager, staged = stage(rows, ids=range(1, 6), last=date(2026, 6, 10), max_open_files=2)
    with stager:
        assert [s.rows for s in staged] == [5] * 10
        for s in staged:
            got = [json.loads(x) for x in Path(s.local_path).read_text().splitlines()]
            assert got == [r for r in rows if r["time"] == s.day.isoformat()]


def test_finish_twice_or_add_after_finish_fails():
    stager, _ = stage([])
    with stager:
        with pytest.raises(RuntimeError):
            stager.finish()
        with pytest.raises(RuntimeError):
            stager.add(journey_row(1, "2026-06-01"))


# ---------------------------------------------------------------------- staging: csv, parquet


def test_csv_header_and_rows_read_back():
    rows = [message_row(1, "2026-06-01"), {**message_row(2, "2026-06-01", 0), "unknown_new_field": 1}]
    stager, staged = stage(rows, fmt="csv", stype="message", last=D2)
    with stager:
        text = Path(staged[0].local_path).read_text()
        assert text.splitlines()[0] == ",".join(COLUMNS[StatsType.MESSAGE])
        got = list(csv.DictReader(text.splitlines()))
        assert [list(r) for r in got] == [list(COLUMNS[StatsType.MESSAGE])] * 2  # extras dropped
        assert got[0]["revenue_amount"] == "488.5" and got[0]["journey_id"] == "1"
        assert got[1]["component_name"] == "EMAIL_1"
        assert Path(staged[1].local_path).read_text() == csv_header("message")  # header only


def test_parquet_typed_columns_read_back():
    pq = pytest.importorskip("pyarrow.parquet")
    rows = [message_row(1, "2026-06-01"), message_row(2, "2026-06-01", 3)]
    stager, staged = stage(rows, fmt="parquet", stype="message", last=D2)
    with stager:
        assert staged[0].local_path.endswith(".parquet")
        table = pq.read_table(staged[0].local_path)
        assert table.column_names == list(COLUMNS[StatsType.MESSAGE])
        types = {f.name: str(f.type) for f in table.schema}
        assert types["journey_id"] == "int64" and types["send_count"] == "int64"
        assert types["revenue_amount"] == "double" and types["time"] == "string"
        got = table.to_pylist()
        assert got[1]["revenue_amount"] == 3.0 and isinstance(got[1]["revenue_amount"], float)
        assert got == [{**r, "revenue_amount": float(r["revenue_amount"])} for r in rows]
        empty = pq.read_table(staged[1].local_path)
        assert empty.num_rows == 0 and empty.schema.equals(table.schema)
        first = Path(staged[0].local_path).read_bytes()
    stager2, staged2 = stage(rows, fmt="parquet", stype="message", last=D2)
    with stager2:
        assert Path(staged2[0].local_path).read_bytes() == first


def test_parquet_without_pyarrow_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(EngageLabValidationError) as err:
        PartitionStager("journey", "DAY", [1], D1, D1, "parquet")
    assert "pip install 'airflow-provider-engagelab[parquet]'" in str(err.value)


# ---------------------------------------------------------------------- commit


def test_commit_in_order_and_stops_at_first_failure():
    stager, staged = stage([journey_row(1, "2026-06-01")])
    published = []

    def publish(item):
        if item.day == D2:
            raise OSError("disk full")
        published.append(item.day)
        return item.day

    with stager:
        with pytest.raises(OSError):
            commit(staged, publish)
        assert published == [D1]  # D3 never touched
        assert commit(staged[:1], lambda item: item.rows) == [1]


def test_publish_local_replaces_whole_file(tmp_path):
    src = tmp_path / "src"
    src.write_bytes(b"new content\n")
    target = tmp_path / "out" / "a" / "part-x.jsonl"
    publish_local(str(src), str(target))
    assert target.read_bytes() == b"new content\n"
    src.write_bytes(b"newer\n")
    publish_local(str(src), str(target))
    assert target.read_bytes() == b"newer\n"
    assert os.listdir(target.parent) == ["part-x.jsonl"]  # no temporary file left


def test_publish_local_failure_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.write_bytes(b"x" * 100_000)
    target = tmp_path / "part.csv"
    target.write_bytes(b"old\n")

    def broken_replace(a, b):
        assert Path(a).name.startswith(".part.csv.")  # hidden temp name next to the target
        assert Path(a).read_bytes() == b"x" * 100_000
        raise OSError("rename failed")

    monkeypatch.setattr(writers.os, "replace", broken_replace)
    with pytest.raises(OSError, match="rename failed"):
        publish_local(str(src), str(target))
    assert target.read_bytes() == b"old\n"
    assert set(os.listdir(tmp_path)) == {"part.csv", "src"}  # the temporary file is gone


# ---------------------------------------------------------------------- XCom guard


def test_collect_rows_under_the_limit():
    rows = [{"i": i} for i in range(5)]
    assert collect_rows(iter(rows), 5) == rows


def test_collect_rows_fails_as_soon_as_over_the_limit():
    consumed = []

    def gen():
        for i in range(1000):
            consumed.append(i)
            yield {"i": i}

    with pytest.raises(EngageLabValidationError) as err:
        collect_rows(gen(), 10)
    assert "output_path" in str(err.value) and "max_xcom_rows=10" in str(err.value)
    assert len(consumed) == 11  # stopped at the first row over the limit


# ---------------------------------------------------------------------- journey errors


def test_journey_error_report_dedupes_and_sorts():
    errors = [JourneyError(9, 50202), JourneyError(3, 50202), JourneyError(9, 50202), JourneyError(-1, 50221)]
    report = journey_error_report(errors)
    assert [(e["journey_id"], e["error_code"]) for e in report] == [(-1, 50221), (3, 50202), (9, 50202)]
    assert report[1]["meaning"] == "journey does not exist or belongs to another project"


def test_journey_errors_exception_lists_every_journey():
    report = journey_error_report([JourneyError(3, 50202), JourneyError(9, 50221)])
    exc = journey_errors_exception(report, "message")
    assert isinstance(exc, EngageLabJourneyErrors)
    text = str(exc)
    assert "journey 3: code 50202 (journey does not exist" in text
    assert "journey 9: code 50221 (invalid journey_id format)" in text
    assert "nothing was written" in text and "message" in text
    assert exc.errors == report


def test_local_root():
    assert writers.local_root("file:///data/out") == "/data/out"
    assert writers.local_root("s3://bucket/x") is None
