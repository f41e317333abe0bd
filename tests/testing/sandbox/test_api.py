"""sandbox/api.py: authentication, routing, the parameter checks in order, partial success,
missing journeys and the rate limit, over real HTTP."""

from __future__ import annotations

import re
import time

import pytest
import requests

from airflow_provider_engagelab.testing.sandbox import Sandbox

from .helpers import CUTOFF, PATHS, query


@pytest.mark.parametrize(
    "auth_value",
    [
        None,
        ("sandbox-key", "wrong"),
        ("wrong", "sandbox-secret"),
        "Basic !!!not-base64",
        "Bearer c2FuZGJveC1rZXk6c2FuZGJveC1zZWNyZXQ=",
    ],
)
def test_bad_or_missing_credentials_get_401(sb, auth_value):
    url = sb.url + PATHS["journey"]
    params = {
        "journey_id": "1",
        "time_unit": "DAY",
        "start_time": "2026-06-01",
        "end_time": "2026-06-01",
    }
    if isinstance(auth_value, str):
        r = requests.get(url, params=params, headers={"Authorization": auth_value}, timeout=5)
    else:
        r = requests.get(url, params=params, auth=auth_value, timeout=5)
    assert r.status_code == 401
    assert r.json() == {"code": 40050, "message": "authorization invalid"}
    assert sb.counters()["by_status"] == {401: 1}

def test_good_credentials_and_default_names():
    with Sandbox(available_through=CUTOFF) as s:
        assert s.auth == ("sandbox-key", "sandbox-secret")
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", s.url)
        r = query(s)
        assert r.status_code == 200
        assert r.headers["Content-Type"] == "application/json"
    with Sandbox(api_key="k", api_secret="s:with:colons", available_through=CUTOFF) as s:
        assert query(s, auth=("k", "s:with:colons")).status_code == 200
        assert query(s, auth=("sandbox-key", "sandbox-secret")).status_code == 401

def test_unknown_path_is_404_json_and_post_is_405(sb):
    r = requests.get(sb.url + "/v1/stats/nope", auth=sb.auth, timeout=5)
    assert r.status_code == 404
    assert r.json()["code"] == 40001
    r = requests.post(sb.url + PATHS["journey"], auth=sb.auth, timeout=5)
    assert r.status_code == 405
    assert r.json()["code"] == 40001
    assert sb.counters()["by_endpoint"] == {"other": 1, "/v1/stats/journey": 1}

IDS_100 = ",".join(str(i) for i in range(1, 101))
IDS_101 = ",".join(str(i) for i in range(1, 102))

@pytest.mark.parametrize(
    ("params", "status", "code", "message"),
    [
        ({"journey_id": None}, 400, 40001, "Invalid HTTP parameter"),
        ({"journey_id": ""}, 400, 40001, "Invalid HTTP parameter"),
        ({"time_unit": None}, 400, 40001, "Invalid HTTP parameter"),
        ({"start": None}, 400, 40001, "Invalid HTTP parameter"),
        ({"end": None}, 400, 40001, "Invalid HTTP parameter"),
        ({"start": "2026-6-1"}, 400, 40002, "Invalid business parameter"),
        ({"end": "2026-02-30", "start": "2026-02-01"}, 400, 40002, "Invalid business parameter"),
        ({"end": "20260607"}, 400, 40002, "Invalid business parameter"),
        ({"time_unit": "day"}, 400, 50220, "Invalid time_unit."),
        ({"time_unit": "WEEK"}, 400, 50220, "Invalid time_unit."),
        ({"start": "2026-06-08", "end": "2026-06-07"}, 400, 50217, "Invalid time range."),
        ({"start": "2026-01-01", "end": "2026-02-01"}, 400, 50217, "Invalid time range."),
        ({"start": "2026-01-01", "end": "2026-01-31"}, 200, 0, "success"),
        ({"start": "2026-06-07", "end": "2026-06-07"}, 200, 0, "success"),
        ({"journey_id": IDS_101}, 400, 50219, "The number of JourneyIDs exceeds 100."),
        ({"journey_id": IDS_100}, 200, 0, "success"),
        # the order of the checks
        ({"journey_id": None, "start": "bad"}, 400, 40001, "Invalid HTTP parameter"),
        ({"start": "bad", "time_unit": "WEEK"}, 400, 40002, "Invalid business parameter"),
        ({"time_unit": "WEEK", "start": "2026-05-09"}, 400, 50220, "Invalid time_unit."),
        ({"start": "2026-05-09", "journey_id": IDS_101}, 400, 50217, "Invalid time range."),
    ],
)
def test_validation_codes(sb, params, status, code, message):
    kwargs = {"journey_id": "123", "time_unit": "DAY", "start": "2026-05-01", "end": "2026-05-07"}
    kwargs.update(params)
    r = query(sb, **kwargs)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["code"] == code
    assert body["message"] == message
    if status != 200:
        assert "data" not in body

def test_repeated_parameter_is_40001(sb):
    r = requests.get(
        sb.url + PATHS["journey"] + "?journey_id=1&journey_id=2&time_unit=DAY"
        "&start_time=2026-06-01&end_time=2026-06-01",
        auth=sb.auth,
        timeout=5,
    )
    assert r.status_code == 400
    assert r.json()["code"] == 40001

def test_partial_success_malformed_and_missing(sb):
    sb.configure(missing_journeys={7})
    r = query(sb, journey_id="5,abc,0,7,5,-3,99999999999999999999, 8", end="2026-06-02")
    assert r.status_code == 200
    body = r.json()
    assert body["code"] == 0 and body["message"] == "success"
    data = body["data"]
    assert [e["journey_id"] for e in data] == [5, -1, -1, 7, -1, -1, -1]
    assert [e["error_code"] for e in data] == [0, 50221, 50221, 50202, 50221, 50221, 50221]
    assert all(e["time_unit"] == "DAY" for e in data)
    assert data[1] == {"journey_id": -1, "time_unit": "DAY", "error_code": 50221}
    assert data[3] == {"journey_id": 7, "time_unit": "DAY", "error_code": 50202}
    assert [d["time"] for d in data[0]["detail"]] == ["2026-06-01", "2026-06-02"]

def test_missing_journeys_from_the_constructor_and_whole_call_mode():
    with Sandbox(available_through=CUTOFF, missing_journeys=[42]) as s:
        assert query(s, journey_id="1,42").json()["data"][1]["error_code"] == 50202
        s.configure(missing_journey_mode="whole_call")
        r = query(s, journey_id="1,42")
        assert r.status_code == 400
        assert r.json() == {"code": 50202, "message": "Journey does not exist."}
        # without a missing journey the call still succeeds, malformed IDs stay per journey
        r = query(s, journey_id="1,x")
        assert r.status_code == 200
        assert [e["error_code"] for e in r.json()["data"]] == [0, 50221]

def test_rate_limit_429_with_retry_after():
    with Sandbox(available_through=CUTOFF, rate_limit=1) as s:
        assert query(s).status_code == 200
        r = query(s)
        assert r.status_code == 429
        assert r.json() == {"code": 55110, "message": "Too many requests, please try again later."}
        assert r.headers["Retry-After"] == "1"
        s.configure(retry_after_override=300)
        r = query(s)
        assert r.status_code == 429 and r.headers["Retry-After"] == "300"
        s.configure(send_retry_after=False)
        r = query(s)
        assert r.status_code == 429 and "Retry-After" not in r.headers
        c = s.counters()
        assert c["rate_limited"] == 3 and c["by_status"] == {200: 1, 429: 3} and c["requests"] == 4

        # Retry-After is the wait for the next token, rounded up
        s.configure(rate_limit=0.25, send_retry_after=True, retry_after_override=None)
        assert query(s).status_code == 200
        r = query(s)
        assert r.status_code == 429 and r.headers["Retry-After"] == "4"

def test_rate_limit_burst_and_refill():
    with Sandbox(available_through=CUTOFF, rate_limit=1, rate_burst=3) as s:
        statuses = [query(s).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
    with Sandbox(available_through=CUTOFF, rate_limit=5, rate_burst=1) as s:
        assert query(s).status_code == 200
        assert query(s).status_code == 429
        time.sleep(0.25)
        assert query(s).status_code == 200
        s.configure(rate_limit=None)
        assert all(query(s).status_code == 200 for _ in range(5))
