"""The fast row path (msgspec, C-level checks, batched staging) behaves like the plain one."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import pytest

from airflow_provider_engagelab.core import writers
from airflow_provider_engagelab.core.parsing import parse_response
from airflow_provider_engagelab.core.planning import plan_calls
from airflow_provider_engagelab.core.query import build_query
from airflow_provider_engagelab.core.writers import PartitionStager, jsonl_line, jsonl_lines
from airflow_provider_engagelab.exceptions import EngageLabResponseError

_STD = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)

ODD_ROWS = [
    {"a": 1e16, "b": 1e-05, "c": 0.0, "d": -0.0, "e": -1.5e-7, "f": 123.45, "g": -488.5},
    {"a": 2**70, "b": -(2**65), "c": True, "d": None, "e": "é ü \u2028 \u2029 \x7f \x00 \n \" \\ /"},
    {"a": [1, 2.5e20], "b": {"c": 1e-9}},
    {1: "int key", 1e16: "float key"},
    {"a": 0.0001, "b": 9.999e15, "c": 0.0, "d": 5e-324, "e": 1.7976931348623157e308},
    {"lone": "\ud800"},
    {},
]


@pytest.mark.parametrize("row", ODD_ROWS)
def test_jsonl_line_is_the_stdlib_encoding(row):
    assert jsonl_line(row) == _STD.encode(row) + "\n"
    assert jsonl_lines([row, row]) == (_STD.encode(row) + "\n") * 2


def test_jsonl_lines_of_mixed_rows():
    assert jsonl_lines(ODD_ROWS) == "".join(_STD.encode(r) + "\n" for r in ODD_ROWS)


@pytest.mark.parametrize(
    ("value", "error"),
    [(float("nan"), ValueError), (float("inf"), ValueError), (datetime(2026, 1, 1), TypeError),
     (b"x", TypeError), ({1, 2}, TypeError)],
)
def test_values_the_stdlib_refuses_are_refused(value, error):
    row = {"time": "2026-06-01", "v": value, "w": 1.5}
    with pytest.raises(error):
        jsonl_line(row)
    with pytest.raises(error):
        jsonl_lines([{"time": "2026-06-01", "w": 2.5}, row])


def test_non_string_keys_the_stdlib_refuses_are_refused():
    with pytest.raises(TypeError):
        jsonl_line({datetime(2026, 1, 1): 1})


def _call(stats="message", unit="DAY", start="2026-05-28", end="2026-05-28"):
    return plan_calls(build_query(stats, [123], unit, start, end))[0]


MESSAGE_ROW = (
    '{"component_id":8801,"component_name":"EMAIL_1","channel":"Email","time":"%s","entry_count":320,'
    '"plan_count":312,"send_count":290,"delivery_count":270,"impression_count":198,"open_count":155,'
    '"click_count":24,"conversion_count":8,"revenue_count":7,"revenue_amount":%s}'
)


def _body(time="2026-05-28", amount="488.5", prefix=""):
    return (prefix + '{"code":0,"message":"success","data":[{"journey_id":123,"time_unit":"DAY",'
            '"error_code":0,"detail":[' + MESSAGE_ROW % (time, amount) + "]}]}").encode()


@pytest.mark.parametrize(("amount", "shown"), [("NaN", "nan"), ("Infinity", "inf"), ("1E400", "inf")])
def test_non_finite_numbers_keep_the_stdlib_outcome(amount, shown):
    with pytest.raises(EngageLabResponseError) as info:
        parse_response(_call(), 200, _body(amount=amount))
    assert f"detail field 'revenue_amount' must be number, got {shown} (float)" in str(info.value)
    assert not info.value.retryable


def test_a_utf8_bom_and_a_big_int_parse_as_before():
    rows = parse_response(_call(), 200, _body(prefix="\ufeff")).rows
    assert rows[0]["revenue_amount"] == 488.5
    rows = parse_response(_call(), 200, _body(amount=str(10**30))).rows
    assert rows[0]["revenue_amount"] == 10**30


@pytest.mark.parametrize("time", ["2026-05-28\n", "2026-05-28"])
def test_times_the_slow_path_accepts_still_pass(time):
    assert parse_response(_call(), 200, _body(time=json.dumps(time)[1:-1])).rows[0]["time"] == time


def test_hour_buckets_beyond_23_keep_todays_outcome():
    call = _call(unit="HOUR")
    body = _body(time="2026-05-28 99").replace(b'"DAY"', b'"HOUR"')
    assert parse_response(call, 200, body).rows[0]["time"] == "2026-05-28 99"


def _message(jid, time, amount=488.5, **extra):
    return {"journey_id": jid, "time_unit": "DAY", "component_id": 1, "component_name": "E",
            "channel": "Email", "time": time, "entry_count": 1, "plan_count": 1, "send_count": 1,
            "delivery_count": 1, "impression_count": 1, "open_count": 1, "click_count": 1,
            "conversion_count": 1, "revenue_count": 1, "revenue_amount": amount, **extra}


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_add_all_writes_the_bytes_of_add(tmp_path, monkeypatch, fmt):
    monkeypatch.setattr(writers, "STAGE_BATCH_ROWS", 3)
    rows = [_message(j, f"2026-06-0{d}", amount=a) for j in (1, 2) for d in (3, 1, 2)
            for a in (1.5, 0.0, 1e16, 7)]
    rows.append({"journey_id": 1, "time": "2026-06-02"})  # columns missing: written empty
    rows.append(_message(1, "2026-06-01", note="extra"))
    outputs = []
    for batched in (False, True):
        with PartitionStager("message", "DAY", [1, 2], date(2026, 6, 1), date(2026, 6, 3), fmt,
                             staging_dir=str(tmp_path), max_open_files=2) as stager:
            if batched:
                assert stager.add_all(rows) == len(rows)
            else:
                for row in rows:
                    stager.add(row)
            outputs.append([(s.rows, Path(s.local_path).read_bytes()) for s in stager.finish()])
    assert outputs[0] == outputs[1]


def test_add_all_stops_at_a_row_outside_the_window_like_add(tmp_path):
    rows = [_message(1, "2026-06-01"), _message(1, "2026-06-02"), _message(1, "2026-06-09"),
            _message(1, "2026-06-01")]
    with PartitionStager("message", "DAY", [1], date(2026, 6, 1), date(2026, 6, 2), "jsonl",
                         staging_dir=str(tmp_path)) as stager:
        with pytest.raises(EngageLabResponseError, match="outside the requested window"):
            stager.add_all(rows)
        assert stager.total_rows == 2


def test_add_then_add_all_keep_the_order_and_a_lone_surrogate_fails_alike(tmp_path):
    with PartitionStager("message", "DAY", [1], date(2026, 6, 1), date(2026, 6, 1), "jsonl",
                         staging_dir=str(tmp_path)) as stager:
        stager.add(_message(1, "2026-06-01", amount=1.0))
        stager.add_all([_message(1, "2026-06-01", amount=2.0)])
        stager.add(_message(1, "2026-06-01", amount=3.0))
        with pytest.raises(UnicodeEncodeError):
            stager.add_all([_message(1, "2026-06-01", note="\ud800")])
        with pytest.raises(UnicodeEncodeError):
            stager.add(_message(1, "2026-06-01", note="\ud800"))
        staged = stager.finish()
        lines = Path(staged[0].local_path).read_text().splitlines()
        assert [json.loads(line)["revenue_amount"] for line in lines] == [1.0, 2.0, 3.0]


@pytest.mark.parametrize("amount", [1e16, 1e-5, 0.0, -0.0, -1.5, 2**70, True, None, "x", float("nan"),
                                    float("inf")])
def test_contract_shaped_rows_with_odd_numbers_stage_like_add(tmp_path, amount):
    rows = [_message(1, "2026-06-01", amount=1.5), _message(1, "2026-06-01", amount=amount)]
    outcomes = []
    for batched in (False, True):
        with PartitionStager("message", "DAY", [1], date(2026, 6, 1), date(2026, 6, 1), "jsonl",
                             staging_dir=str(tmp_path)) as stager:
            try:
                if batched:
                    stager.add_all(rows)
                else:
                    for row in rows:
                        stager.add(row)
            except ValueError as exc:
                outcomes.append(type(exc))
                continue
            outcomes.append(Path(stager.finish()[0].local_path).read_bytes())
    assert outcomes[0] == outcomes[1]
