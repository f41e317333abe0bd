"""The typed fast path (msgspec records) gives what the field-by-field path gives, to the byte.

Random answers, contract-shaped or broken in one of many ways, are parsed twice: as the hook
does (fast path first) and with the fast path switched off. The outcome (rows with their key
order and journey errors, or the exception and its message) must be the same; and the files
staged from the typed records must be the very bytes staged from the flat rows, per format.
"""

from __future__ import annotations

import json
import random
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from airflow_provider_engagelab.core import parsing
from airflow_provider_engagelab.core.parsing import COLUMNS, DETAIL_FIELDS, parse_response
from airflow_provider_engagelab.core.planning import plan_calls
from airflow_provider_engagelab.core.query import StatsType, build_query
from airflow_provider_engagelab.exceptions import EngageLabError, EngageLabResponseError
from airflow_provider_engagelab.sinks.staging import PartitionStager

FIRST = date(2026, 6, 1)
NAMES = ["EMAIL_1", "", "a,b", 'say "hi"', "line\nbreak", "tab\there", "back\\slash", "é ü 中文",
         "\u2028\u2029", "[x]", "]\n[", "\x7f", " padded ", "1e16"]
AMOUNTS = [0, 7, 488.5, 0.0, -0.0, 1e16, 1e-5, 123456.789, 2**70, -3.25, 1.5e300]
MUTATIONS = ["none"] * 6 + [
    "shuffle_fields", "extra_field", "row_journey_same", "row_journey_other", "row_unit_same",
    "row_unit_other", "null_field", "bool_field", "float_for_int", "string_for_int", "drop_field",
    "time_outside", "time_malformed", "entry_unit_other", "entry_unit_null", "error_entry_garbage",
    "malformed_entry", "duplicate_entry", "unrequested_entry", "missing_entry", "detail_null",
    "detail_not_list", "code_nonzero", "row_not_object", "big_int", "nan_amount", "data_not_list",
]


def _value(rng: random.Random, name: str, kind: str, time: str) -> Any:
    if name == "time":
        return time
    if kind == "int":
        return rng.choice([0, 1, 320, 2**40])
    if kind == "str":
        return rng.choice(NAMES)
    return rng.choice(AMOUNTS)


def _answer(rng: random.Random, stats: StatsType, unit: str, ids: list[int], days: int) -> tuple[dict, str]:
    """A random answer for ``ids`` over ``days`` days, and the mutation applied to it."""
    times = [(FIRST + timedelta(days=d)).isoformat() for d in range(days)]
    if unit == "HOUR":
        times = [f"{t} {h:02d}" for t in times for h in rng.sample(range(24), 3)]
    data: list[dict[str, Any]] = []
    for jid in ids:
        if rng.random() < 0.15:
            data.append({"journey_id": jid, "error_code": rng.choice([50202, -1])})
            continue
        rows = [{name: _value(rng, name, kind, t) for name, kind in DETAIL_FIELDS[stats]}
                for t in times for _ in range(rng.randint(0, 2))]
        entry: dict[str, Any] = {"journey_id": jid, "error_code": 0, "detail": rows}
        if rng.random() < 0.7:
            entry["time_unit"] = unit
        data.append(entry)
    mutation = rng.choice(MUTATIONS)
    answer: dict[str, Any] = {"code": 0, "message": "success", "data": data}
    ok = [e for e in data if e.get("detail")]
    row = rng.choice(ok)["detail"][0] if ok else None
    field = rng.choice([name for name, _ in DETAIL_FIELDS[stats]])
    int_field = next(name for name, kind in DETAIL_FIELDS[stats] if kind == "int")
    entry = rng.choice(data)
    if mutation == "shuffle_fields" and row is not None:
        items = list(row.items())
        rng.shuffle(items)
        row.clear()
        row.update(items)
    elif mutation == "extra_field" and row is not None:
        row["new_metric"] = rng.choice([1, "x", None, [1, 2], 2.5])
    elif mutation == "row_journey_same" and row is not None:
        row["journey_id"] = next(e["journey_id"] for e in ok if e["detail"] and e["detail"][0] is row)
    elif mutation == "row_journey_other" and row is not None:
        row["journey_id"] = 999_999
    elif mutation == "row_unit_same" and row is not None:
        row["time_unit"] = unit
    elif mutation == "row_unit_other" and row is not None:
        row["time_unit"] = "DAY" if unit == "HOUR" else "HOUR"
    elif mutation == "null_field" and row is not None:
        row[field] = None
    elif mutation == "bool_field" and row is not None:
        row[int_field] = True
    elif mutation == "float_for_int" and row is not None:
        row[int_field] = 3.0
    elif mutation == "string_for_int" and row is not None:
        row[int_field] = "3"
    elif mutation == "drop_field" and row is not None:
        del row[field]
    elif mutation == "time_outside" and row is not None:
        row["time"] = "2026-05-31" if unit == "DAY" else "2026-05-31 23"
    elif mutation == "time_malformed" and row is not None:
        row["time"] = "2026-06-01T00" if unit == "DAY" else "2026-06-01 24"
    elif mutation == "entry_unit_other":
        entry["time_unit"] = "DAY" if unit == "HOUR" else "HOUR"
    elif mutation == "entry_unit_null":
        entry["time_unit"] = None
    elif mutation == "error_entry_garbage":
        data.append({"journey_id": 7_777, "error_code": 50202, "detail": [{"time": None}, 5]})
    elif mutation == "malformed_entry":
        data.append({"journey_id": -1, "error_code": 50221})
    elif mutation == "duplicate_entry":
        data.append(dict(entry))
    elif mutation == "unrequested_entry":
        data.append({"journey_id": 424_242, "error_code": 0, "detail": []})
    elif mutation == "missing_entry":
        data.remove(entry)
    elif mutation == "detail_null" and "detail" in entry:
        entry["detail"] = None
    elif mutation == "detail_not_list" and "detail" in entry:
        entry["detail"] = {"time": FIRST.isoformat()}
    elif mutation == "code_nonzero":
        answer["code"] = 55110
    elif mutation == "row_not_object" and ok:
        rng.choice(ok)["detail"].append([1, 2])
    elif mutation == "big_int" and row is not None:
        row[int_field] = 10**30
    elif mutation == "nan_amount" and row is not None and "revenue_amount" in row:
        row["revenue_amount"] = float("nan")
    elif mutation == "data_not_list":
        answer["data"] = {"journey_id": ids[0]}
    return answer, mutation


def _outcome(call, body: bytes) -> Any:
    try:
        parsed = parse_response(call, 200, body)
    except EngageLabError as exc:  # the same one, with the same message, on both paths
        return type(exc).__name__, str(exc)
    return [list(row.items()) for row in parsed.rows], parsed.errors, parsed


CASES = [(seed, stats, unit) for seed in range(70) for stats in StatsType for unit in ("DAY", "HOUR")]


@pytest.mark.parametrize(("seed", "stats", "unit"), CASES)
def test_fast_path_agrees_with_the_field_by_field_path(seed, stats, unit, monkeypatch, tmp_path):
    rng = random.Random(f"{seed}-{stats.value}-{unit}")
    ids = rng.sample(range(1, 500), rng.randint(1, 4))
    days = rng.randint(1, 3)
    call = plan_calls(build_query(stats, ids, unit, FIRST, FIRST + timedelta(days=days - 1)))[0]
    answer, mutation = _answer(rng, stats, unit, ids, days)
    body = json.dumps(answer, ensure_ascii=rng.random() < 0.5).encode()

    fast = _outcome(call, body)
    with monkeypatch.context() as patch:
        patch.setattr(parsing, "_parse_fast", lambda call, body: None)
        slow = _outcome(call, body)
    assert fast[:2] == slow[:2], mutation
    if len(fast) == 2:  # refused on both paths, with the same message
        return
    if mutation == "none":  # a contract-shaped answer takes the typed path
        assert fast[2].records is not None
    for row in fast[2].rows:  # COLUMNS order, then the fields the contract does not name
        assert tuple(row)[: len(COLUMNS[stats])] == COLUMNS[stats]

    for fmt in ("jsonl", "csv", "parquet"):
        outputs = []
        for source in (fast[2], slow[2]):
            with PartitionStager(stats, unit, call.start, call.end, fmt,
                                 staging_dir=str(tmp_path), max_open_files=2) as stager:
                try:
                    stager.add_response(source)
                except (ValueError, UnicodeEncodeError, OverflowError) as exc:
                    outputs.append(type(exc).__name__)
                    continue
                outputs.append([(s.rows, Path(s.local_path).read_bytes()) for s in stager.finish().values()])
        assert outputs[0] == outputs[1], (mutation, fmt)


def _message_body(rows: list[dict[str, Any]], jid: int = 1) -> bytes:
    return json.dumps({"code": 0, "message": "ok", "data": [
        {"journey_id": jid, "time_unit": "DAY", "error_code": 0, "detail": rows}]}).encode()


def _message_row(day: str, name: str = "EMAIL_1", amount: Any = 1.5) -> dict[str, Any]:
    row = {name: 1 for name, kind in DETAIL_FIELDS[StatsType.MESSAGE] if kind == "int"}
    return {**row, "component_name": name, "channel": "Email", "time": day, "revenue_amount": amount}


def test_a_detail_row_naming_another_journey_is_refused():
    call = plan_calls(build_query("message", [1], "DAY", FIRST, FIRST))[0]
    body = _message_body([{**_message_row("2026-06-01"), "journey_id": 2}])
    with pytest.raises(EngageLabResponseError, match="a detail row has journey_id=2, its entry 1"):
        parse_response(call, 200, body)


def test_parquet_row_groups_are_fixed_whatever_the_batches(tmp_path, monkeypatch):
    """65,536-row groups from many small staged batches; the file equals one written at once."""
    monkeypatch.setattr("airflow_provider_engagelab.sinks.staging.PARQUET_BATCH_ROWS", 100)
    day = "2026-06-01"
    rows = [_message_row(day, name=f"c{i}", amount=i / 4) for i in range(1, 351)]
    call = plan_calls(build_query("message", [1], "DAY", FIRST, FIRST))[0]
    files = []
    for sizes in ([350], [1, 2, 97, 150, 100], [7] * 50):
        with PartitionStager("message", "DAY", FIRST, FIRST, "parquet", staging_dir=str(tmp_path)) as st:
            start = 0
            for size in sizes:
                st.add_response(parse_response(call, 200, _message_body(rows[start:start + size])))
                start += size
            staged = next(iter(st.finish().values()))
            files.append(Path(staged.local_path).read_bytes())
            meta = pq.ParquetFile(staged.local_path).metadata
            assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [100, 100, 100, 50]
            table = pq.read_table(staged.local_path)
            assert table.column("component_name").to_pylist() == [r["component_name"] for r in rows]
            assert table.column("revenue_amount").to_pylist() == [r["revenue_amount"] for r in rows]
    assert files[0] == files[1] == files[2]


def test_records_of_another_window_or_type_are_staged_like_rows(tmp_path):
    """A response of another stats type or outside the stager's window takes the row path."""
    call = plan_calls(build_query("message", [1], "DAY", FIRST, FIRST + timedelta(days=1)))[0]
    body = _message_body([_message_row("2026-06-01"), _message_row("2026-06-02")])
    parsed = parse_response(call, 200, body)
    assert parsed.records is not None
    with PartitionStager("message", "DAY", FIRST, FIRST, "jsonl", staging_dir=str(tmp_path)) as st:
        with pytest.raises(EngageLabResponseError, match="outside the requested window"):
            st.add_response(parsed)
        assert st.total_rows == 1  # the row before it was staged, as add_all would have
    with PartitionStager("journey", "DAY", FIRST, FIRST, "csv", staging_dir=str(tmp_path)) as st:
        st.add_response(parse_response(call, 200, _message_body([_message_row("2026-06-01")])))
        text = Path(next(iter(st.finish().values())).local_path).read_text()
    assert text.splitlines()[0].split(",") == list(COLUMNS[StatsType.JOURNEY])
    assert text.splitlines()[1].startswith("1,DAY,")
