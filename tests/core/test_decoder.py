"""The one typed decoder: contract-shaped answers, fields the contract does not name, identity."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from airflow_provider_engagelab.core import parsing
from airflow_provider_engagelab.core.contract import COLUMNS, DETAIL_FIELDS
from airflow_provider_engagelab.core.parsing import parse_response
from airflow_provider_engagelab.core.planning import plan_calls
from airflow_provider_engagelab.core.query import StatsType, build_query
from airflow_provider_engagelab.exceptions import EngageLabResponseError
from airflow_provider_engagelab.sinks.staging import PartitionStager

FIRST = date(2026, 6, 1)


def _message_body(rows: list[dict[str, Any]], jid: int = 1) -> bytes:
    return json.dumps({"code": 0, "message": "ok", "data": [
        {"journey_id": jid, "time_unit": "DAY", "error_code": 0, "detail": rows}]}).encode()


def _message_row(day: str, name: str = "EMAIL_1", amount: Any = 1.5) -> dict[str, Any]:
    row = {name: 1 for name, kind in DETAIL_FIELDS[StatsType.MESSAGE] if kind == "int"}
    return {**row, "component_name": name, "channel": "Email", "time": day, "revenue_amount": amount}


def _call(days: int = 1, stats: str = "message", ids=(1,)):
    return plan_calls(build_query(stats, list(ids), "DAY", FIRST, FIRST + timedelta(days=days - 1)))[0]


@pytest.fixture(autouse=True)
def _forget_learned_fields(monkeypatch):
    monkeypatch.setattr(parsing, "_known_extras", {})


def test_a_contract_shaped_answer_gives_typed_records_in_columns_order():
    parsed = parse_response(_call(), 200, _message_body([_message_row("2026-06-01")]))
    (record,) = parsed.records
    assert type(record) is parsing.RECORD_TYPES[StatsType.MESSAGE, parsed.call.time_unit]
    assert tuple(parsed.rows[0]) == COLUMNS[StatsType.MESSAGE]
    assert parsed.rows[0]["journey_id"] == 1 and parsed.extra_fields == ()
    assert parsed.ok_journeys == {1}


def test_an_added_field_stays_on_the_typed_path_and_is_reported():
    rows = [{**_message_row("2026-06-01"), "ctr": 0.25}, _message_row("2026-06-01", name="EMAIL_2")]
    parsed = parse_response(_call(), 200, _message_body(rows))
    assert parsed.extra_fields == ("ctr",)
    assert type(parsed.records[0]).extra_fields == ("ctr",)  # a typed record with the field
    assert parsed.rows[0]["ctr"] == 0.25 and "ctr" not in parsed.rows[1]  # absent: not invented
    assert tuple(parsed.rows[0])[: len(COLUMNS[StatsType.MESSAGE])] == COLUMNS[StatsType.MESSAGE]
    # the next answer decodes with the learned record type at once
    assert parsing._known_extras[StatsType.MESSAGE, parsed.call.time_unit] == ("ctr",)
    again = parse_response(_call(), 200, _message_body([_message_row("2026-06-01")]))
    assert again.extra_fields == () and type(again.records[0]).extra_fields == ("ctr",)


def test_several_added_fields_anywhere_in_the_answer():
    rows = [_message_row("2026-06-01"), {**_message_row("2026-06-01", "B"), "x": 1},
            {**_message_row("2026-06-01", "C"), "y": "s", "x": None}]
    parsed = parse_response(_call(), 200, _message_body(rows))
    assert sorted(parsed.extra_fields) == ["x", "y"]
    assert [r.get("x", "absent") for r in parsed.rows] == ["absent", 1, None]


def test_dropping_the_added_fields_keeps_the_columns():
    parsed = parse_response(_call(), 200, _message_body([{**_message_row("2026-06-01"), "ctr": 1}]))
    parsed.drop_extra_fields()
    assert tuple(parsed.rows[0]) == COLUMNS[StatsType.MESSAGE]
    assert msgspec.json.encode(parsed.records[0]) == msgspec.json.encode(parsed.rows[0])


def test_too_many_added_fields_are_refused():
    row = {**_message_row("2026-06-01"), **{f"f{i}": i for i in range(parsing.MAX_EXTRA_FIELDS + 1)}}
    with pytest.raises(EngageLabResponseError, match="more than 32 detail fields the contract does not name"):
        parse_response(_call(), 200, _message_body([row]))


def test_a_row_may_repeat_its_entry_identity_but_not_contradict_it():
    same = {**_message_row("2026-06-01"), "journey_id": 1, "time_unit": "DAY"}
    assert parse_response(_call(), 200, _message_body([same])).rows[0]["journey_id"] == 1
    with pytest.raises(EngageLabResponseError, match="a detail row has journey_id=2, its entry 1"):
        parse_response(_call(), 200, _message_body([{**_message_row("2026-06-01"), "journey_id": 2}]))
    with pytest.raises(EngageLabResponseError, match="a detail row has time_unit='HOUR', its entry 'DAY'"):
        parse_response(_call(), 200, _message_body([{**_message_row("2026-06-01"), "time_unit": "HOUR"}]))
    with pytest.raises(EngageLabResponseError, match="a detail row has journey_id='1', its entry 1"):
        parse_response(_call(), 200, _message_body([{**_message_row("2026-06-01"), "journey_id": "1"}]))


def test_a_malformed_journey_with_rows_is_refused():
    body = json.dumps({"code": 0, "data": [{"journey_id": -1, "error_code": 0, "detail": []}]}).encode()
    with pytest.raises(EngageLabResponseError, match="journey_id -1 .* has error_code 0"):
        parse_response(_call(), 200, body)


def test_an_hour_that_is_not_an_hour_is_refused():
    call = plan_calls(build_query("journey", [1], "HOUR", FIRST, FIRST))[0]
    row = {"time": "2026-06-01 24", "entry_count": 1, "conversion_count": 1, "completion_count": 1,
           "early_exit_count": 1, "in_progress_count": 1}
    body = json.dumps({"code": 0, "data": [{"journey_id": 1, "error_code": 0, "detail": [row]}]}).encode()
    with pytest.raises(EngageLabResponseError, match="time '2026-06-01 24' is not a HOUR bucket"):
        parse_response(call, 200, body)


def test_a_utf8_byte_order_mark_is_accepted():
    body = b"\xef\xbb\xbf" + _message_body([_message_row("2026-06-01", name="É")])
    assert parse_response(_call(), 200, body).rows[0]["component_name"] == "É"


def test_a_refusal_inside_a_200_maps_its_code():
    with pytest.raises(Exception, match="code 50217") as err:
        parse_response(_call(), 200, b'{"code": 50217, "message": "Invalid time range."}')
    assert err.value.code == 50217


def test_parquet_row_groups_are_fixed_whatever_the_batches(tmp_path, monkeypatch):
    """65,536-row groups from many small staged batches; the file equals one written at once."""
    pq = pytest.importorskip("pyarrow.parquet")
    monkeypatch.setattr("airflow_provider_engagelab.sinks.staging.PARQUET_BATCH_ROWS", 100)
    rows = [_message_row("2026-06-01", name=f"c{i}", amount=i / 4) for i in range(1, 351)]
    call = _call()
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
    assert files[0] == files[1] == files[2]


def test_records_of_another_window_or_type_are_staged_like_rows(tmp_path):
    """A response of another stats type or outside the stager's window takes the row path."""
    call = _call(days=2)
    rows = [_message_row("2026-06-01"), _message_row("2026-06-02")]
    parsed = parse_response(call, 200, _message_body(rows))
    with PartitionStager("message", "DAY", FIRST, FIRST, "jsonl", staging_dir=str(tmp_path)) as st:
        with pytest.raises(EngageLabResponseError, match="outside the requested window"):
            st.add_response(parsed)
        assert st.total_rows == 1  # the row before it was staged
    with PartitionStager("journey", "DAY", FIRST, FIRST, "csv", staging_dir=str(tmp_path)) as st:
        st.add_response(parse_response(call, 200, _message_body([_message_row("2026-06-01")])))
        text = Path(next(iter(st.finish().values())).local_path).read_text()
    assert text.splitlines()[0].split(",") == list(COLUMNS[StatsType.JOURNEY])
    assert text.splitlines()[1].startswith("1,DAY,")


def test_csv_of_records_with_a_field_the_contract_does_not_name_leaves_it_out():
    """Records decoded with an extra field (the API grew one) write the same CSV lines as
    records without it: the COLUMNS only, whichever tuple path the encoder takes."""
    import csv
    import io

    from airflow_provider_engagelab.core.encoding import csv_records

    call = _call(days=1)
    rows = [_message_row("2026-06-01", name=f"EMAIL_{i}", amount=i + 0.25) for i in range(5)]
    plain = parse_response(call, 200, _message_body(rows)).records
    grown = parse_response(call, 200, _message_body([{**r, "ctr": 0.5} for r in rows])).records
    assert type(grown[0]).extra_fields == ("ctr",) and type(plain[0]).extra_fields == ()
    assert csv_records(StatsType.MESSAGE, grown) == csv_records(StatsType.MESSAGE, plain)
    lines = list(csv.reader(io.StringIO(csv_records(StatsType.MESSAGE, plain).decode())))
    assert [len(line) for line in lines] == [len(COLUMNS[StatsType.MESSAGE])] * 5
