"""Envelope parsing, error-code mapping and row flattening."""

from __future__ import annotations

import json

import pytest

from airflow_provider_engagelab.core.parsing import COLUMNS, parse_response
from airflow_provider_engagelab.core.planning import plan_calls
from airflow_provider_engagelab.core.query import StatsType, build_query
from airflow_provider_engagelab.exceptions import (
    EngageLabAuthError,
    EngageLabBadRequestError,
    EngageLabError,
    EngageLabJourneyNotFoundError,
    EngageLabProjectNotFoundError,
    EngageLabRateLimitError,
    EngageLabResponseError,
    EngageLabServerError,
)


def _call(stats="journey", ids=(123,), unit="DAY", start="2026-05-28", end="2026-05-28"):
    return plan_calls(build_query(stats, list(ids), unit, start, end))[0]


JOURNEY_ROW = {
    "time": "2026-05-28", "entry_count": 312, "conversion_count": 24, "early_exit_count": 41,
    "completion_count": 247, "in_progress_count": 156,
}
MESSAGE_ROW = {
    "component_id": 8801, "component_name": "EMAIL_1", "channel": "Email", "time": "2026-05-28",
    "entry_count": 320, "plan_count": 312, "send_count": 290, "delivery_count": 270,
    "impression_count": 198, "open_count": 155, "click_count": 24, "conversion_count": 8,
    "revenue_count": 7, "revenue_amount": 488.50,
}
WEBHOOK_ROW = {
    "component_id": 9001, "component_name": "WEBHOOK_1", "time": "2026-05-28", "entry_count": 520,
    "send_count": 498, "send_failure_count": 22,
}


def _body(data, code=0, message="success"):
    return json.dumps({"code": code, "message": message, "data": data}).encode()


@pytest.mark.parametrize(
    ("stats", "row"), [("journey", JOURNEY_ROW), ("message", MESSAGE_ROW), ("webhook", WEBHOOK_ROW)]
)
def test_rows_flattened_with_types_unchanged(stats, row):
    body = _body([{"journey_id": 123, "time_unit": "DAY", "error_code": 0, "detail": [row]}])
    parsed = parse_response(_call(stats), 200, body)
    assert parsed.errors == []
    assert parsed.rows == [{"journey_id": 123, "time_unit": "DAY", **row}]
    assert list(parsed.rows[0])[:2] == ["journey_id", "time_unit"]
    assert set(COLUMNS[StatsType(stats)]) == set(parsed.rows[0])
    if stats == "message":
        assert parsed.rows[0]["revenue_amount"] == 488.5


def test_partial_success_keeps_good_rows_and_reports_journey_errors():
    body = _body([
        {"journey_id": 123, "time_unit": "DAY", "error_code": 0, "detail": [JOURNEY_ROW]},
        {"journey_id": -1, "error_code": 50221},
        {"journey_id": 456, "error_code": 50202},
    ])
    parsed = parse_response(_call(ids=(123, 456, 789)), 200, body)
    assert [r["journey_id"] for r in parsed.rows] == [123]
    assert [(e.journey_id, e.error_code) for e in parsed.errors] == [(-1, 50221), (456, 50202)]
    assert "does not exist" in parsed.errors[1].meaning
    assert parsed.errors[0].as_dict() == {
        "journey_id": -1, "error_code": 50221, "meaning": "invalid journey_id format"
    }


@pytest.mark.parametrize(
    ("status", "code", "message", "cls", "retryable"),
    [
        (401, 40050, "authorization invalid", EngageLabAuthError, False),
        (429, 55110, "Too many requests, please try again later.", EngageLabRateLimitError, True),
        (400, 40001, "Invalid HTTP parameter", EngageLabBadRequestError, False),
        (400, 40002, "Invalid business parameter", EngageLabBadRequestError, False),
        (400, 50034, "Project does not exist", EngageLabProjectNotFoundError, False),
        (500, -1, "Internal server error", EngageLabServerError, True),
        (400, 50202, "Journey does not exist.", EngageLabJourneyNotFoundError, False),
        (400, 50217, "Invalid time range.", EngageLabBadRequestError, False),
        (400, 50219, "The number of JourneyIDs exceeds 100.", EngageLabBadRequestError, False),
        (400, 50220, "Invalid time_unit.", EngageLabBadRequestError, False),
        (400, 50221, "Invalid journey_id format.", EngageLabBadRequestError, False),
        (200, 50217, "Invalid time range.", EngageLabBadRequestError, False),  # error inside 200
        (418, 99999, "teapot", EngageLabBadRequestError, False),
        (503, 99999, "maintenance", EngageLabServerError, True),
    ],
)
def test_every_code_maps_to_its_error(status, code, message, cls, retryable):
    body = json.dumps({"code": code, "message": message}).encode()
    with pytest.raises(cls) as err:
        parse_response(_call(), status, body, retry_after=3.0)
    exc = err.value
    assert isinstance(exc, EngageLabError)
    assert (exc.code, exc.status, exc.retryable) == (code, status, retryable)
    assert message in str(exc) and f"code {code}" in str(exc) and f"HTTP {status}" in str(exc)
    assert exc.retry_after == 3.0


@pytest.mark.parametrize(
    ("status", "body", "cls", "retryable"),
    [
        (502, b"<html><body>Bad Gateway</body></html>", EngageLabServerError, True),
        (200, b"", EngageLabResponseError, True),
        (200, b'{"code": 0, "message": "success", "data": [{"journ', EngageLabResponseError, True),
        (200, b"<html>captive portal</html>", EngageLabResponseError, True),
        (401, b"Unauthorized", EngageLabAuthError, False),
        (429, b"", EngageLabRateLimitError, True),
        (200, b'[1, 2]', EngageLabResponseError, True),
    ],
)
def test_bodies_that_are_not_the_contract(status, body, cls, retryable):
    with pytest.raises(cls) as err:
        parse_response(_call(), status, body)
    assert err.value.retryable is retryable
    assert err.value.status == status


@pytest.mark.parametrize(
    ("data", "what"),
    [
        ("nope", "'data' is not a list"),
        ([], "no entry for requested journey(s) 123"),
        ([{"journey_id": 999, "error_code": 0, "detail": []}], "journey 999 was not requested"),
        ([{"journey_id": 123, "time_unit": "HOUR", "error_code": 0, "detail": []}], "time_unit 'HOUR'"),
        ([{"journey_id": 123, "error_code": 0, "detail": [dict(JOURNEY_ROW, entry_count="3")]}],
         "'entry_count' must be int"),
        ([{"journey_id": 123, "error_code": 0, "detail": [dict(JOURNEY_ROW, entry_count=True)]}],
         "'entry_count' must be int"),
        ([{"journey_id": 123, "error_code": 0,
           "detail": [{k: v for k, v in JOURNEY_ROW.items() if k != "completion_count"}]}],
         "'completion_count' must be int, got missing"),
        ([{"journey_id": 123, "error_code": 0, "detail": [dict(JOURNEY_ROW, time="2026-05-29")]}],
         "time '2026-05-29' is not a DAY bucket in 2026-05-28..2026-05-28"),
        ([{"journey_id": 123, "error_code": 0, "detail": [dict(JOURNEY_ROW, time="2026-05-28 03")]}],
         "is not a DAY bucket"),
        ([{"journey_id": "123", "error_code": 0, "detail": []}], "journey_id='123'"),
        ([{"journey_id": 123, "error_code": 0}], "'detail' must be a list, got None"),
        ([{"journey_id": 123, "error_code": 0, "detail": None}], "'detail' must be a list"),
    ],
)
def test_schema_violations_are_clear_and_not_retried(data, what):
    with pytest.raises(EngageLabResponseError) as err:
        parse_response(_call(), 200, _body(data))
    assert what in str(err.value)
    assert err.value.retryable is False


@pytest.mark.parametrize("amount", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_revenue_is_rejected(amount):
    row = json.dumps(MESSAGE_ROW).replace("488.5", amount)
    body = ('{"code": 0, "message": "success", "data": [{"journey_id": 123, "time_unit": "DAY", '
            '"error_code": 0, "detail": [' + row + ']}]}').encode()
    with pytest.raises(EngageLabResponseError, match="'revenue_amount' must be number"):
        parse_response(_call("message"), 200, body)


def test_hour_buckets_validated():
    call = _call(unit="HOUR")
    ok = dict(JOURNEY_ROW, time="2026-05-28 23")
    parsed = parse_response(call, 200, _body([
        {"journey_id": 123, "time_unit": "HOUR", "error_code": 0, "detail": [ok]}
    ]))
    assert parsed.rows[0]["time"] == "2026-05-28 23"
