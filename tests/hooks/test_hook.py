"""EngageLabHook over requests-mock: the edges of the transport."""

from __future__ import annotations

import base64
import json
import logging
from urllib.parse import parse_qs, urlparse

import pytest
import requests

from airflow_provider_engagelab.core.retry import Pacer
from airflow_provider_engagelab.exceptions import (
    EngageLabAuthError,
    EngageLabBadRequestError,
    EngageLabRateLimitError,
    EngageLabResponseError,
    EngageLabServerError,
    EngageLabTransportError,
    EngageLabValidationError,
)
from airflow_provider_engagelab.hooks.engagelab import EngageLabHook

BASE = "https://api.test"
SECRET = "sEcReT-9f3b27-do-not-leak"
TOKEN = base64.b64encode(f"key-1:{SECRET}".encode()).decode()
JOURNEY_URL = f"{BASE}/v1/stats/journey"


def _set_conn(monkeypatch, extra=None, host=BASE, login="key-1", password=SECRET):
    conn = {"conn_type": "engagelab", "host": host, "login": login, "password": password,
            "extra": extra or {}}
    monkeypatch.setenv("AIRFLOW_CONN_ENGAGELAB_DEFAULT", json.dumps(conn))


@pytest.fixture
def hook(monkeypatch):
    _set_conn(monkeypatch, {"max_retries": 3, "max_retry_wait": 5})
    h = EngageLabHook()
    h.waits = []
    h.sleep = h.waits.append
    return h


def _answer(request, context):
    """A valid journey-stats answer for whatever was asked (one row per journey and day)."""
    q = parse_qs(urlparse(request.url).query)
    ids = [int(x) for x in q["journey_id"][0].split(",")]
    start = q["start_time"][0]
    return {"code": 0, "message": "success", "data": [
        {"journey_id": j, "time_unit": "DAY", "error_code": 0, "detail": [
            {"time": start, "entry_count": j, "conversion_count": 0, "completion_count": 0,
             "early_exit_count": 0, "in_progress_count": 0}]} for j in ids]}


def test_get_stats_sends_basic_auth_and_exact_params(hook, requests_mock):
    requests_mock.get(JOURNEY_URL, json=_answer)
    result = hook.get_journey_stats([5, 6], "day", "2026-06-01", "2026-06-07")
    req = requests_mock.request_history[0]
    assert req.headers["Authorization"] == f"Basic {TOKEN}"
    assert parse_qs(urlparse(req.url).query) == {
        "journey_id": ["5,6"], "time_unit": ["DAY"], "start_time": ["2026-06-01"],
        "end_time": ["2026-06-07"]}
    assert [r["journey_id"] for r in result.rows] == [5, 6]
    assert (result.calls, result.requests, result.errors) == (1, 1, [])


def test_tuning_extras_are_not_sent_as_headers(monkeypatch, requests_mock):
    _set_conn(monkeypatch, {"timeout": 5, "max_retries": 1, "max_concurrent_requests": 2,
                            "requests_per_second": 100, "max_retry_wait": 1, "verify": True})
    requests_mock.get(JOURNEY_URL, json=_answer)
    EngageLabHook().get_journey_stats([1], "DAY", "2026-06-01", "2026-06-01")
    headers = {k.lower() for k in requests_mock.request_history[0].headers}
    assert not headers & {"timeout", "max_retries", "max_concurrent_requests",
                          "requests_per_second", "max_retry_wait"}
    assert "verify" not in headers  # HttpHook's transport keys stay transport settings


def test_unknown_extras_are_refused_not_sent_as_headers(monkeypatch, requests_mock):
    _set_conn(monkeypatch, {"max_retires": 3})
    with pytest.raises(EngageLabValidationError, match="extra 'max_retires': unknown key"):
        EngageLabHook().get_journey_stats([1], "DAY", "2026-06-01", "2026-06-01")
    assert requests_mock.call_count == 0


def test_many_ids_and_days_are_planned_and_merged_in_order(hook, requests_mock):
    requests_mock.get(JOURNEY_URL, json=_answer)
    ids = list(range(1, 251))
    result = hook.get_journey_stats(ids, "DAY", "2026-01-01", "2026-03-01")  # 60 days -> 2 windows
    assert result.calls == 3 * 2 == len(requests_mock.request_history)
    # Plan order: window 1 (batches 1..3), then window 2 (batches 1..3).
    assert [r["journey_id"] for r in result.rows] == ids + ids
    assert [r["time"] for r in result.rows] == ["2026-01-01"] * 250 + ["2026-02-01"] * 250


@pytest.mark.parametrize(
    "bad",
    [
        dict(journey_ids=[], match="journey_ids"),
        dict(journey_ids="1,x", match="journey_ids"),
        dict(time_unit="WEEK", match="time_unit"),
        dict(start_time="2026-13-01", match="start_time"),
        dict(end_time="2026-05-01", match="end_time"),
        dict(stats_type="sms", match="stats_type"),
    ],
)
def test_bad_input_fails_before_any_request(hook, requests_mock, bad):
    args = dict(stats_type="journey", journey_ids=[1], time_unit="DAY",
                start_time="2026-06-01", end_time="2026-06-02")
    match = bad.pop("match")
    args.update(bad)
    with pytest.raises(EngageLabValidationError, match=match):
        hook.get_stats(**args)
    assert requests_mock.call_count == 0


@pytest.mark.parametrize(
    ("conn", "match"),
    [
        (dict(host="ma-api.engagelab.com"), "host='ma-api.engagelab.com'"),
        (dict(password=""), "API Secret"),
        (dict(login=""), "API Key"),
    ],
)
def test_bad_connection_fails_before_any_request(monkeypatch, requests_mock, conn, match):
    _set_conn(monkeypatch, **conn)
    with pytest.raises(EngageLabValidationError, match=match):
        EngageLabHook().get_journey_stats([1], "DAY", "2026-06-01", "2026-06-01")
    assert requests_mock.call_count == 0


def test_default_host(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ENGAGELAB_DEFAULT", json.dumps(
        {"conn_type": "engagelab", "login": "k", "password": "s"}))
    assert EngageLabHook().resolved.base_url == "https://ma-api.engagelab.com"


def test_429_with_retry_after_is_retried_honouring_the_header(hook, requests_mock):
    requests_mock.get(JOURNEY_URL, [
        {"status_code": 429, "json": {"code": 55110, "message": "Too many requests"},
         "headers": {"Retry-After": "2"}},
        {"status_code": 429, "json": {"code": 55110, "message": "Too many requests"},
         "headers": {"Retry-After": "4"}},
        {"json": _answer},
    ])
    result = hook.get_journey_stats([1], "DAY", "2026-06-01", "2026-06-01")
    assert requests_mock.call_count == 3 and result.requests == 3
    assert 2 <= hook.waits[0] <= 2.5 and 4 <= hook.waits[1] <= 4.5


def test_retry_after_is_capped(hook, requests_mock):
    requests_mock.get(JOURNEY_URL, [
        {"status_code": 429, "json": {"code": 55110, "message": "x"}, "headers": {"Retry-After": "600"}},
        {"json": _answer},
    ])
    hook.get_journey_stats([1], "DAY", "2026-06-01", "2026-06-01")
    assert hook.waits == [5.0]  # max_retry_wait


def test_rate_limit_storm_exhausts_the_budget_with_a_clear_message(hook, requests_mock):
    requests_mock.get(JOURNEY_URL, status_code=429, json={"code": 55110, "message": "Too many requests"})
    with pytest.raises(EngageLabRateLimitError) as err:
        hook.get_journey_stats([1], "DAY", "2026-06-01", "2026-06-01")
    assert requests_mock.call_count == 4  # 1 + max_retries=3
    assert len(hook.waits) == 3
    assert "gave up after 4 attempts" in str(err.value) and err.value.code == 55110


@pytest.mark.parametrize(
    "responses",
    [
        [{"status_code": 500, "json": {"code": -1, "message": "Internal server error"}}],
        [{"status_code": 502, "text": "<html>bad gateway</html>"}],
        [{"exc": requests.exceptions.ConnectTimeout}],
        [{"exc": requests.exceptions.ReadTimeout}],
        [{"exc": requests.exceptions.ConnectionError("reset by peer")}],
        [{"status_code": 200, "text": '{"code": 0, "data": [{"jour'}],
    ],
)
def test_transient_failures_are_retried(hook, requests_mock, responses):
    requests_mock.get(JOURNEY_URL, responses + [{"json": _answer}])
    result = hook.get_journey_stats([1], "DAY", "2026-06-01", "2026-06-01")
    assert requests_mock.call_count == 2 and len(result.rows) == 1
    assert len(hook.waits) == 1 and 0.25 <= hook.waits[0] <= 0.5


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        (401, {"code": 40050, "message": "authorization invalid"}, EngageLabAuthError),
        (400, {"code": 50217, "message": "Invalid time range."}, EngageLabBadRequestError),
        (400, {"code": 40001, "message": "Invalid HTTP parameter"}, EngageLabBadRequestError),
        (200, {"code": 50220, "message": "Invalid time_unit."}, EngageLabBadRequestError),
        (200, {"code": 0, "message": "success", "data": []}, EngageLabResponseError),
    ],
)
def test_non_retryable_failures_fail_at_once_keeping_code_and_status(hook, requests_mock, status, body, cls):
    requests_mock.get(JOURNEY_URL, status_code=status, json=body)
    with pytest.raises(cls) as err:
        hook.get_journey_stats([1], "DAY", "2026-06-01", "2026-06-01")
    assert requests_mock.call_count == 1 and hook.waits == []
    assert err.value.status == status
    if body["code"]:
        assert err.value.code == body["code"] and body["message"] in str(err.value)


def test_timeouts_are_set_and_redirects_not_followed(monkeypatch, requests_mock):
    _set_conn(monkeypatch, {"timeout": 7, "max_retries": 0})
    requests_mock.get(JOURNEY_URL, status_code=302, headers={"Location": "https://evil.test/steal"})
    requests_mock.get("https://evil.test/steal", json=_answer)
    with pytest.raises(EngageLabResponseError, match="redirects are not followed"):
        EngageLabHook().get_journey_stats([1], "DAY", "2026-06-01", "2026-06-01")
    assert [r.hostname for r in requests_mock.request_history] == ["api.test"]
    assert requests_mock.request_history[0].timeout == 7.0


def test_requests_per_second_paces_the_calls(monkeypatch, requests_mock):
    _set_conn(monkeypatch, {"requests_per_second": 10, "max_concurrent_requests": 1})
    requests_mock.get(JOURNEY_URL, json=_answer)
    hook = EngageLabHook()
    now = [0.0]  # the pacer's clock: moves only when the hook waits, so no timing is measured
    _ = hook.resolved
    hook._pacer = Pacer(10, clock=lambda: now[0])
    hook.waits = []

    def sleep(seconds):
        hook.waits.append(seconds)
        now[0] += seconds

    hook.sleep = sleep
    hook.get_journey_stats(list(range(1, 401)), "DAY", "2026-06-01", "2026-06-01")
    assert hook.waits == pytest.approx([0.1, 0.1, 0.1])  # the first call goes at once, 3 wait 1/rate


def test_partial_success_returns_rows_and_journey_errors(hook, requests_mock):
    requests_mock.get(JOURNEY_URL, json={"code": 0, "message": "success", "data": [
        {"journey_id": 1, "time_unit": "DAY", "error_code": 0, "detail": []},
        {"journey_id": 2, "time_unit": "DAY", "error_code": 50202},
    ]})
    result = hook.get_journey_stats([1, 2], "DAY", "2026-06-01", "2026-06-01")
    assert [(e.journey_id, e.error_code) for e in result.errors] == [(2, 50202)]


def test_streaming_yields_rows_without_collecting(hook, requests_mock):
    requests_mock.get(JOURNEY_URL, json=_answer)
    stream = hook.iter_stats("journey", list(range(1, 301)), "DAY", "2026-06-01", "2026-06-01")
    it = iter(stream)
    first = next(it)
    assert first["journey_id"] == 1
    assert stream.calls_done == 1  # one call consumed so far
    rest = list(it)
    assert len(rest) == 299 and stream.calls_done == stream.planned_calls == 3
    with pytest.raises(RuntimeError, match="only once"):
        list(stream)


@pytest.mark.parametrize(
    "responses",
    [
        {"status_code": 401, "json": {"code": 40050, "message": "authorization invalid"}},
        {"status_code": 500, "json": {"code": -1, "message": "Internal server error"}},
        {"status_code": 200, "text": "not json"},
        {"exc": requests.exceptions.ConnectTimeout},
    ],
)
def test_secret_and_token_never_logged_or_raised(hook, requests_mock, caplog, capsys, responses):
    caplog.set_level(logging.DEBUG)
    requests_mock.get(JOURNEY_URL, **responses)
    with pytest.raises(Exception) as err:
        hook.get_journey_stats([1], "DAY", "2026-06-01", "2026-06-01")
    ok, message = hook.test_connection()
    captured = capsys.readouterr()
    # Airflow's structlog handlers print to stdout/stderr; stdlib records land in caplog.
    texts = [str(err.value), repr(err.value), message, caplog.text, captured.out, captured.err]
    texts += [str(a) for rec in caplog.records for a in (rec.args or ())]
    assert "EngageLab journey stats" in captured.out + caplog.text  # the log was captured
    for text in texts:
        assert SECRET not in text and TOKEN not in text
    assert ok is False


def test_secret_registered_with_airflow_masker(hook):
    from airflow.providers.common.compat.sdk import redact

    _ = hook.resolved
    assert SECRET not in redact(f"x {SECRET} y") and TOKEN not in redact(f"Basic {TOKEN}")


def test_test_connection(hook, requests_mock):
    requests_mock.get(JOURNEY_URL, json=_answer)
    ok, message = hook.test_connection()
    assert ok and BASE in message
    missing = {"code": 50202, "message": "Journey does not exist."}
    requests_mock.get(JOURNEY_URL, status_code=400, json=missing)
    assert hook.test_connection()[0] is True  # credentials accepted; journey 1 just does not exist
    requests_mock.get(JOURNEY_URL, status_code=401, json={"code": 40050, "message": "authorization invalid"})
    ok, message = hook.test_connection()
    assert not ok and "Authentication failed" in message and "40050" in message


def test_transport_error_text_is_short(monkeypatch):
    _set_conn(monkeypatch, {"max_retries": 0}, host="http://127.0.0.1:9")
    with pytest.raises(EngageLabTransportError) as err:
        EngageLabHook().get_journey_stats([1], "DAY", "2026-06-01", "2026-06-01")
    assert "Connection refused" in str(err.value) and err.value.__cause__ is None
    assert err.value.__suppress_context__


def test_server_error_keeps_code_and_status(hook, requests_mock):
    requests_mock.get(JOURNEY_URL, status_code=500, json={"code": -1, "message": "Internal server error"})
    with pytest.raises(EngageLabServerError) as err:
        hook.get_journey_stats([1], "DAY", "2026-06-01", "2026-06-01")
    assert (err.value.code, err.value.status) == (-1, 500)
    assert requests_mock.call_count == 4
