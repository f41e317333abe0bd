"""Local staging: one file per date, rows as they come, bounded open files, Parquet conversion."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sys
from datetime import date
from pathlib import Path

import pytest

from airflow_provider_engagelab.core.contract import COLUMNS
from airflow_provider_engagelab.core.encoding import csv_header
from airflow_provider_engagelab.core.query import StatsType
from airflow_provider_engagelab.exceptions import EngageLabResponseError, EngageLabValidationError
from airflow_provider_engagelab.sinks.staging import PartitionStager

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


def stage(rows, *, fmt="jsonl", stype="journey", unit="DAY", first=D1, last=D3, **kw):
    stager = PartitionStager(stype, unit, first, last, fmt, **kw)
    stager.add_all(rows)
    return stager, stager.finish()


def test_jsonl_partitions_by_date_only_dates_with_rows(tmp_path):
    rows = [journey_row(1, "2026-06-01"), journey_row(2, "2026-06-01", n=3), journey_row(1, "2026-06-03")]
    stager, staged = stage(rows)
    with stager:
        assert sorted(staged) == [D1, D3]  # 06-02 has no rows: nothing to publish
        assert [staged[d].rows for d in (D1, D3)] == [2, 1]
        lines = Path(staged[D1].local_path).read_text().splitlines()
        assert [json.loads(line) for line in lines] == rows[:2]
        # compact separators, keys in row order
        assert lines[0] == json.dumps(rows[0], separators=(",", ":"))
        assert stager.total_rows == 3
    assert not os.path.exists(stager.directory)  # the staging directory is removed


def test_hour_rows_partition_by_their_day():
    rows = [journey_row(1, "2026-06-01 00", "HOUR"), journey_row(1, "2026-06-01 23", "HOUR"),
            journey_row(1, "2026-06-02 00", "HOUR")]
    stager, staged = stage(rows, unit="HOUR", last=D2)
    with stager:
        assert [staged[D1].rows, staged[D2].rows] == [2, 1]


def test_row_outside_the_window_is_rejected():
    with PartitionStager("journey", "DAY", D1, D2, "jsonl") as stager:
        with pytest.raises(EngageLabResponseError, match="outside the requested window"):
            stager.add_all([journey_row(1, "2026-06-03")])
        with pytest.raises(EngageLabResponseError):
            stager.add_all([{"journey_id": 1}])


def test_same_rows_give_same_bytes():
    rows = [journey_row(j, f"2026-06-0{d}", n=j * d) for d in (1, 2, 3) for j in (1, 2)]
    digests = []
    for _ in range(2):
        stager, staged = stage(rows)
        with stager:
            digests.append([hashlib.sha256(Path(s.local_path).read_bytes()).hexdigest()
                            for s in staged.values()])
    assert digests[0] == digests[1]


def test_few_open_files_still_keep_every_row():
    # Interleave 10 dates with at most 2 files open: files are closed and reopened in append mode.
    rows = [journey_row(j, f"2026-06-{d:02d}") for j in range(1, 6) for d in range(1, 11)]
    stager, staged = stage(rows, last=date(2026, 6, 10), max_open_files=2)
    with stager:
        assert [s.rows for s in staged.values()] == [5] * 10
        for s in staged.values():
            got = [json.loads(x) for x in Path(s.local_path).read_text().splitlines()]
            assert got == [r for r in rows if r["time"] == s.day.isoformat()]


def test_finish_twice_or_add_after_finish_fails():
    stager, _ = stage([])
    with stager:
        with pytest.raises(RuntimeError):
            stager.finish()
        with pytest.raises(RuntimeError):
            stager.add_all([journey_row(1, "2026-06-01")])


def test_csv_header_and_rows_read_back():
    rows = [message_row(1, "2026-06-01"), {**message_row(2, "2026-06-01", 0), "unknown_new_field": 1}]
    stager, staged = stage(rows, fmt="csv", stype="message", last=D2)
    with stager:
        text = Path(staged[D1].local_path).read_text()
        assert text.splitlines()[0] == ",".join(COLUMNS[StatsType.MESSAGE])
        assert text.encode().startswith(csv_header("message"))
        got = list(csv.DictReader(text.splitlines()))
        assert [list(r) for r in got] == [list(COLUMNS[StatsType.MESSAGE])] * 2  # extras dropped
        assert got[0]["revenue_amount"] == "488.5" and got[0]["journey_id"] == "1"
        assert got[1]["component_name"] == "EMAIL_1"
        assert D2 not in staged


def test_parquet_typed_columns_read_back():
    pq = pytest.importorskip("pyarrow.parquet")
    rows = [message_row(1, "2026-06-01"), message_row(2, "2026-06-01", 3)]
    stager, staged = stage(rows, fmt="parquet", stype="message", last=D2)
    with stager:
        assert staged[D1].local_path.endswith(".parquet")
        table = pq.read_table(staged[D1].local_path)
        assert table.column_names == list(COLUMNS[StatsType.MESSAGE])
        types = {f.name: str(f.type) for f in table.schema}
        assert types["journey_id"] == "int64" and types["send_count"] == "int64"
        assert types["revenue_amount"] == "double" and types["time"] == "string"
        got = table.to_pylist()
        assert got[1]["revenue_amount"] == 3.0 and isinstance(got[1]["revenue_amount"], float)
        assert got == [{**r, "revenue_amount": float(r["revenue_amount"])} for r in rows]
        first = Path(staged[D1].local_path).read_bytes()
    stager2, staged2 = stage(rows, fmt="parquet", stype="message", last=D2)
    with stager2:
        assert Path(staged2[D1].local_path).read_bytes() == first


def test_parquet_without_pyarrow_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(EngageLabValidationError) as err:
        PartitionStager("journey", "DAY", D1, D1, "parquet")
    assert "pip install 'airflow-provider-engagelab[parquet]'" in str(err.value)
