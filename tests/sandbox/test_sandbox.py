"""The sandbox API, exercised over real HTTP on 127.0.0.1.

Every rule of the contract (shared/engagelab-ma-stats-api.md) and of the sandbox's own
configuration is checked against a running server. Timings are printed (run with ``-s``),
never asserted.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests

from airflow_provider_engagelab.testing.sandbox import FAULT_KINDS, Fault, Sandbox
from airflow_provider_engagelab.testing.sandbox import rows as sandbox_rows

pytest_plugins = ["pytester", "airflow_provider_engagelab.testing.pytest_plugin"]

UTC = timezone.utc
REPO_ROOT = Path(__file__).resolve().parents[2]
CUTOFF = "2026-06-10T00:00:00+00:00"
PATHS = {
    "journey": "/v1/stats/journey",
    "message": "/v1/stats/journey/message",
    "webhook": "/v1/stats/journey/webhook",
}
FLOW_FIELDS = {
    "journey": ("entry_count", "conversion_count", "completion_count", "early_exit_count"),
    "message": (
        "entry_count",
        "plan_count",
        "send_count",
        "delivery_count",
        "impression_count",
        "open_count",
        "click_count",
        "conversion_count",
        "revenue_count",
    ),
    "webhook": ("entry_count", "send_count", "send_failure_count"),
}
API_FIELDS = {
    "journey": [
        "time",
        "entry_count",
        "conversion_count",
        "completion_count",
        "early_exit_count",
        "in_progress_count",
    ],
    "message": [
        "component_id",
        "component_name",
        "channel",
        "time",
        "entry_count",
        "plan_count",
        "send_count",
        "delivery_count",
        "impression_count",
        "open_count",
        "click_count",
        "conversion_count",
        "revenue_count",
        "revenue_amount",
    ],
    "webhook": [
        "component_id",
        "component_name",
        "time",
        "entry_count",
        "send_count",
        "send_failure_count",
    ],
}


# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------


@pytest.fixture
def sb():
    with Sandbox(available_through=CUTOFF) as s:
        yield s


def query(
    sb: Sandbox,
    stats_type: str = "journey",
    journey_id: str = "123",
    time_unit: str = "DAY",
    start: str = "2026-06-01",
    end: str = "2026-06-07",
    auth: tuple[str, str] | None | bool = True,
    timeout: float = 10,
    **extra: str,
) -> requests.Response:
    params = {
        "journey_id": journey_id,
        "time_unit": time_unit,
        "start_time": start,
        "end_time": end,
    }
    params.update(extra)
    return requests.get(
        sb.url + PATHS[stats_type],
        params={k: v for k, v in params.items() if v is not None},
        auth=sb.auth if auth is True else (auth or None),
        timeout=timeout,
    )


def flatten(body: dict) -> list[dict]:
    rows = []
    for entry in body["data"]:
        if entry["error_code"] == 0:
            for d in entry["detail"]:
                rows.append(
                    {"journey_id": entry["journey_id"], "time_unit": entry["time_unit"], **d}
                )
    return rows


def fetch_rows(sb: Sandbox, stats_type: str, ids, time_unit: str, start: str, end: str) -> list:
    r = query(sb, stats_type, ",".join(map(str, ids)), time_unit, start, end)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["code"] == 0
    return flatten(body)


def admin(sb: Sandbox, method: str, path: str, payload=None) -> requests.Response:
    return requests.request(method, sb.url + "/_admin/" + path, json=payload, timeout=10)


# ------------------------------------------------------------------------------------------
# auth and routing
# ------------------------------------------------------------------------------------------


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


# ------------------------------------------------------------------------------------------
# validation
# ------------------------------------------------------------------------------------------

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


# ------------------------------------------------------------------------------------------
# partial success and missing journeys
# ------------------------------------------------------------------------------------------


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


# ------------------------------------------------------------------------------------------
# the data model
# ------------------------------------------------------------------------------------------


def test_determinism_within_and_across_instances_and_processes(sb):
    first = query(sb, "message", "1,2,3", "HOUR", "2026-05-01", "2026-05-02").content
    again = query(sb, "message", "1,2,3", "HOUR", "2026-05-01", "2026-05-02").content
    assert first == again
    with Sandbox(available_through=CUTOFF) as other:
        assert query(other, "message", "1,2,3", "HOUR", "2026-05-01", "2026-05-02").content == first
    # a different query gives different numbers
    assert query(sb, "message", "1,2,4", "HOUR", "2026-05-01", "2026-05-02").content != first


def test_golden_values_and_independence_from_hash_seed():
    s = Sandbox(available_through=CUTOFF)  # the oracle needs no running server
    rows = s.expected_rows("journey", [123], "DAY", "2026-06-08", "2026-06-08")
    assert rows == [
        {
            "journey_id": 123,
            "time_unit": "DAY",
            "time": "2026-06-08",
            "entry_count": 437,
            "conversion_count": 30,
            "completion_count": 183,
            "early_exit_count": 8,
            "in_progress_count": 344,
        }
    ]
    script = (
        "import hashlib, json\n"
        "from airflow_provider_engagelab.testing.sandbox import Sandbox\n"
        f"s = Sandbox(available_through={CUTOFF!r})\n"
        "rows = [s.expected_rows(t, ['1', 77, 123456], 'HOUR', '2026-05-30', '2026-06-02')"
        " for t in ('journey', 'message', 'webhook')]\n"
        "print(hashlib.sha256(json.dumps(rows).encode()).hexdigest())\n"
    )
    local = [
        s.expected_rows(t, ["1", 77, 123456], "HOUR", "2026-05-30", "2026-06-02")
        for t in ("journey", "message", "webhook")
    ]
    digest = hashlib.sha256(json.dumps(local).encode()).hexdigest()
    for seed in ("1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO_ROOT)}
        out = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == digest


def _group_hours(rows: list[dict], stats_type: str) -> dict:
    groups: dict = defaultdict(list)
    for r in rows:
        groups[(r["journey_id"], r["time"][:10], r.get("component_id"))].append(r)
    return groups


@pytest.mark.parametrize("stats_type", ["journey", "message", "webhook"])
def test_day_equals_sum_of_hours(sb, stats_type):
    ids = [1, 22, 333, 4444, 98765]
    hours = fetch_rows(sb, stats_type, ids, "HOUR", "2026-05-01", "2026-05-07")
    days = fetch_rows(sb, stats_type, ids, "DAY", "2026-05-01", "2026-05-07")
    groups = _group_hours(hours, stats_type)
    assert len(days) == len(groups) and len(days) >= 5 * 7
    for day in days:
        hrs = groups[(day["journey_id"], day["time"], day.get("component_id"))]
        assert [h["time"] for h in hrs] == [f"{day['time']} {h:02d}" for h in range(24)]
        for f in FLOW_FIELDS[stats_type]:
            assert day[f] == sum(h[f] for h in hrs), (day, f)
        if stats_type == "journey":
            assert day["in_progress_count"] == hrs[-1]["in_progress_count"]
        if stats_type == "message":
            assert day["revenue_amount"] == round(sum(h["revenue_amount"] for h in hrs), 2)
            assert day["component_name"] == hrs[0]["component_name"]
            assert day["channel"] == hrs[0]["channel"]


def _check_funnel(stats_type: str, r: dict) -> None:
    assert list(r)[2:] == API_FIELDS[stats_type]
    for f in FLOW_FIELDS[stats_type]:
        assert isinstance(r[f], int) and r[f] >= 0
    if stats_type == "journey":
        assert isinstance(r["in_progress_count"], int) and r["in_progress_count"] >= 0
        assert (
            r["conversion_count"] + r["completion_count"] + r["early_exit_count"]
            <= r["entry_count"]
        )
    elif stats_type == "message":
        chain = [r[f] for f in FLOW_FIELDS["message"]]
        assert chain == sorted(chain, reverse=True), r
        assert r["open_count"] <= r["impression_count"] <= r["delivery_count"]
        assert isinstance(r["revenue_amount"], float) and r["revenue_amount"] >= 0
        assert round(r["revenue_amount"], 2) == r["revenue_amount"]
        assert (r["revenue_amount"] > 0) == (r["revenue_count"] > 0)
        assert r["component_id"] // 100 == r["journey_id"] and 1 <= r["component_id"] % 100 <= 3
        prefix = r["component_name"].rsplit("_", 1)[0]
        assert {
            "EMAIL": "Email",
            "APP_PUSH": "AppPush",
            "SMS": "SMS",
            "WEBPUSH": "WebPush",
            "WHATSAPP": "WhatsApp",
        }[prefix] == r["channel"]
        assert r["component_name"].endswith(f"_{r['component_id'] % 100}")
    else:
        assert r["send_count"] + r["send_failure_count"] == r["entry_count"]
        assert r["component_id"] // 100 == r["journey_id"] and 51 <= r["component_id"] % 100 <= 52
        assert r["component_name"] == f"WEBHOOK_{r['component_id'] % 100 - 50}"


@pytest.mark.parametrize("stats_type", ["journey", "message", "webhook"])
def test_funnel_invariants_components_and_zero_hours(stats_type):
    s = Sandbox(available_through=CUTOFF)
    ids = list(range(1, 41))
    hours = s.expected_rows(stats_type, ids, "HOUR", "2026-05-01", "2026-05-07")
    days = s.expected_rows(stats_type, ids, "DAY", "2026-05-01", "2026-05-07")
    for r in hours + days:
        _check_funnel(stats_type, r)
    assert any(r["entry_count"] == 0 for r in hours), "some hours should be empty"
    assert sum(r["entry_count"] for r in days) > 1000
    if stats_type == "message":
        assert sum(r["revenue_count"] for r in days) > 0
    if stats_type != "journey":
        per_journey = defaultdict(set)
        for r in days:
            per_journey[r["journey_id"]].add(r["component_id"])
        sizes = {len(v) for v in per_journey.values()}
        assert sizes == ({1, 2, 3} if stats_type == "message" else {1, 2})


# ------------------------------------------------------------------------------------------
# availability cutoff
# ------------------------------------------------------------------------------------------


def test_cutoff_hours_days_and_runtime_changes():
    with Sandbox(available_through="2026-03-10T05:00:00Z") as s:
        hours = fetch_rows(s, "journey", [9], "HOUR", "2026-03-09", "2026-03-11")
        assert len(hours) == 24 + 5
        assert hours[-1]["time"] == "2026-03-10 04"
        days = fetch_rows(s, "journey", [9], "DAY", "2026-03-09", "2026-03-11")
        assert [d["time"] for d in days] == ["2026-03-09", "2026-03-10"]
        partial = days[1]
        for f in FLOW_FIELDS["journey"]:
            assert partial[f] == sum(h[f] for h in hours[24:])
        assert partial["in_progress_count"] == hours[-1]["in_progress_count"]
        # the oracle applies the same cutoff (a partial day)
        assert s.expected_rows("journey", [9], "DAY", "2026-03-10", "2026-03-10") == [partial]

        # a cutoff inside an hour makes that hour available (its start is before the cutoff)
        s.configure(available_through=datetime(2026, 3, 10, 5, 30, tzinfo=UTC))
        assert len(fetch_rows(s, "journey", [9], "HOUR", "2026-03-10", "2026-03-10")) == 6

        # changed at run time through the admin interface (ISO string)
        r = admin(s, "POST", "config", {"available_through": "2026-03-12T00:00:00+00:00"})
        assert r.status_code == 200
        assert r.json()["available_through"] == "2026-03-12T00:00:00+00:00"
        days = fetch_rows(s, "journey", [9], "DAY", "2026-03-09", "2026-03-13")
        assert [d["time"] for d in days] == ["2026-03-09", "2026-03-10", "2026-03-11"]
        assert days[1]["entry_count"] >= partial["entry_count"]
        message_hours = fetch_rows(s, "message", [9], "HOUR", "2026-03-11", "2026-03-12")
        assert {h["time"][:10] for h in message_hours} == {"2026-03-11"}

        # midnight exactly: the day is not returned at all; later dates give an empty detail
        s.configure(available_through="2026-03-10T00:00:00Z")
        body = query(s, "webhook", "9", "DAY", "2026-03-10", "2026-03-20").json()
        assert body["data"] == [
            {"journey_id": 9, "time_unit": "DAY", "error_code": 0, "detail": []}
        ]


def test_partial_day_for_message_and_webhook_sums_available_hours():
    with Sandbox(available_through="2026-03-10T13:00:00Z") as s:
        for stats_type in ("message", "webhook"):
            hours = fetch_rows(s, stats_type, [31, 32], "HOUR", "2026-03-10", "2026-03-10")
            days = fetch_rows(s, stats_type, [31, 32], "DAY", "2026-03-10", "2026-03-10")
            groups = _group_hours(hours, stats_type)
            for d in days:
                hrs = groups[(d["journey_id"], "2026-03-10", d["component_id"])]
                assert len(hrs) == 13
                for f in FLOW_FIELDS[stats_type]:
                    assert d[f] == sum(h[f] for h in hrs)


def test_default_cutoff_is_today_midnight_utc():
    today = datetime.now(UTC).date()
    yesterday = today - timedelta(days=1)
    with Sandbox() as s:
        assert s.config.available_through is None
        hours = fetch_rows(s, "journey", [5], "HOUR", yesterday.isoformat(), today.isoformat())
        assert len(hours) == 24
        assert hours[-1]["time"] == f"{yesterday.isoformat()} 23"
        # a naive datetime is taken as UTC; None restores the moving default
        s.configure(available_through=datetime(2026, 1, 2, 1, 0))
        assert s.config.available_through == datetime(2026, 1, 2, 1, 0, tzinfo=UTC)
        s.configure(available_through=None)
        assert s.config.available_through is None


# ------------------------------------------------------------------------------------------
# rate limit
# ------------------------------------------------------------------------------------------


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


# ------------------------------------------------------------------------------------------
# random faults and latency
# ------------------------------------------------------------------------------------------


def _statuses(s: Sandbox, n: int) -> list[int]:
    return [query(s, end="2026-06-01").status_code for _ in range(n)]


def test_failure_rate_is_reproducible_with_a_seed():
    with Sandbox(available_through=CUTOFF, failure_rate=0.5, seed=7) as s:
        first = _statuses(s, 24)
        assert set(first) == {200, 500}
        assert s.counters()["faults"] == {"500": first.count(500)}
        r = None
        while r is None or r.status_code != 500:
            r = query(s, end="2026-06-01")
        assert r.json() == {"code": -1, "message": "Internal server error"}
        s.configure(seed=7)
        assert _statuses(s, 24) == first
        s.configure(seed=8)
        assert _statuses(s, 24) != first
    with Sandbox(available_through=CUTOFF, failure_rate=0.5, seed=7) as s:
        assert _statuses(s, 24) == first


def test_drop_hang_and_latency():
    with Sandbox(available_through=CUTOFF, drop_rate=1.0) as s:
        with pytest.raises(requests.ConnectionError):
            query(s)
        assert s.counters()["faults"] == {"drop": 1}
    with Sandbox(available_through=CUTOFF, hang_rate=1.0, hang_seconds=1.0) as s:
        with pytest.raises(requests.ReadTimeout):
            query(s, timeout=0.2)
        assert s.counters()["faults"] == {"hang": 1}
    with Sandbox(available_through=CUTOFF, latency=0.2) as s:
        started = time.perf_counter()
        assert query(s).status_code == 200
        assert time.perf_counter() - started >= 0.2


# ------------------------------------------------------------------------------------------
# scripted faults
# ------------------------------------------------------------------------------------------


def test_scripted_status_faults(sb):
    sb.inject(
        Fault("500"),
        Fault("500", status=503),
        Fault("429", retry_after=300),
        Fault("429"),
        Fault("html"),
        Fault("empty"),
        Fault("code_in_200"),
        Fault("code_in_200", code=50202),
    )
    r = query(sb)
    assert r.status_code == 500 and r.json() == {"code": -1, "message": "Internal server error"}
    assert query(sb).status_code == 503
    r = query(sb)
    assert r.status_code == 429 and r.headers["Retry-After"] == "300"
    assert r.json()["code"] == 55110
    r = query(sb)
    assert r.status_code == 429 and "Retry-After" not in r.headers
    r = query(sb)
    assert r.status_code == 502
    assert r.headers["Content-Type"].startswith("text/html")
    assert r.content.startswith(b"<html>")
    r = query(sb)
    assert r.status_code == 200 and r.content == b""
    r = query(sb)
    assert r.status_code == 200 and r.json() == {"code": 50217, "message": "Invalid time range."}
    r = query(sb)
    assert r.status_code == 200
    assert r.json() == {"code": 50202, "message": "Journey does not exist."}
    assert query(sb).status_code == 200  # the queue is empty again
    assert sb.counters()["faults"] == {"500": 2, "429": 2, "html": 1, "empty": 1, "code_in_200": 2}


def test_scripted_drop_and_hang(sb):
    sb.inject(Fault("drop"), Fault("hang", seconds=0.3))
    with pytest.raises(requests.ConnectionError):
        query(sb)
    started = time.perf_counter()
    r = query(sb)
    assert time.perf_counter() - started >= 0.3
    assert r.status_code == 200 and r.json()["code"] == 0


def test_scripted_truncated_missing_journey_and_bad_field(sb):
    full = query(sb, journey_id="1,2,3").content
    sb.inject(
        "truncated",
        {"kind": "missing_journey"},
        Fault("bad_field"),
        Fault("bad_field", field="entry_count", value="12"),
        Fault("bad_field", field="journey_id", value=None),
    )
    r = query(sb, journey_id="1,2,3")
    assert r.status_code == 200
    assert 0 < len(r.content) < len(full) and full.startswith(r.content)
    with pytest.raises(ValueError):
        json.loads(r.content)
    r = query(sb, journey_id="1,2,3")
    assert [e["journey_id"] for e in r.json()["data"]] == [1, 2]
    rows = query(sb, journey_id="1,2,3").json()["data"][0]["detail"]
    assert "entry_count" not in rows[0] and "entry_count" in rows[1]
    rows = query(sb, journey_id="1,2,3").json()["data"][0]["detail"]
    assert rows[0]["entry_count"] == "12"
    data = query(sb, journey_id="1,2,3").json()["data"]
    assert data[0]["journey_id"] is None and data[1]["journey_id"] == 2
    assert query(sb, journey_id="1,2,3").content == full


def test_scripted_faults_come_before_auth_and_rate_limit():
    with Sandbox(available_through=CUTOFF, rate_limit=1) as s:
        s.inject("500", "500")
        assert query(s, auth=None).status_code == 500
        assert query(s).status_code == 500
        assert query(s).status_code == 200  # the bucket was untouched by the scripted faults
        assert query(s).status_code == 429


def test_fault_objects():
    assert Fault.coerce("drop") == Fault("drop")
    assert Fault.coerce({"kind": "429", "retry_after": 3}) == Fault("429", retry_after=3)
    assert Fault("429", retry_after=3).to_dict() == {"kind": "429", "retry_after": 3}
    assert Fault.coerce(Fault("hang")) == Fault("hang")
    with pytest.raises(ValueError):
        Fault("nope")
    with pytest.raises(ValueError):
        Fault.coerce({"kind": "500", "colour": "red"})
    assert "bad_field" in FAULT_KINDS and len(FAULT_KINDS) == 10
    s = Sandbox()
    s.inject("500", Fault("drop"))
    assert s.pending_faults() == [Fault("500"), Fault("drop")]
    s.clear_faults()
    assert s.pending_faults() == []


# ------------------------------------------------------------------------------------------
# counters
# ------------------------------------------------------------------------------------------


def test_counters_and_reset(sb):
    query(sb, "journey", journey_id="1")
    query(sb, "message", journey_id="2", time_unit="HOUR")
    query(sb, "webhook", journey_id="3", time_unit="WEEK")
    query(sb, "webhook", auth=None)
    admin(sb, "GET", "counters")  # admin calls are not counted
    c = sb.counters()
    assert c["requests"] == 4
    assert c["by_endpoint"] == {
        "/v1/stats/journey": 1,
        "/v1/stats/journey/message": 1,
        "/v1/stats/journey/webhook": 2,
    }
    assert c["by_status"] == {200: 2, 400: 1, 401: 1}
    assert c["faults"] == {} and c["rate_limited"] == 0
    assert c["max_in_flight"] == 1 and c["in_flight"] == 0
    assert c["log"][0] == (
        "/v1/stats/journey",
        "journey_id=1&time_unit=DAY&start_time=2026-06-01&end_time=2026-06-07",
    )
    assert [p for p, _ in c["log"]] == [
        "/v1/stats/journey",
        "/v1/stats/journey/message",
        "/v1/stats/journey/webhook",
        "/v1/stats/journey/webhook",
    ]
    sb.reset_counters()
    c = sb.counters()
    assert c["requests"] == 0 and c["by_status"] == {} and c["log"] == []
    assert c["max_in_flight"] == 0


def test_request_log_is_bounded():
    with Sandbox(available_through=CUTOFF, log_size=3) as s:
        for i in range(5):
            query(s, journey_id=str(i + 1))
        log = s.counters()["log"]
        assert len(log) == 3
        assert log[0][1].startswith("journey_id=3&")


def test_max_in_flight_counts_concurrent_requests():
    with Sandbox(available_through=CUTOFF, latency=0.4) as s:
        statuses: list[int] = []
        threads = [
            threading.Thread(target=lambda: statuses.append(query(s).status_code)) for _ in range(5)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        c = s.counters()
        assert statuses == [200] * 5
        assert 3 <= c["max_in_flight"] <= 5
        assert c["in_flight"] == 0
        s.reset_counters()
        s.configure(latency=0)
        query(s)
        query(s)
        assert s.counters()["max_in_flight"] == 1


# ------------------------------------------------------------------------------------------
# admin interface
# ------------------------------------------------------------------------------------------


def test_admin_interface(sb):
    assert admin(sb, "GET", "health").json() == {"status": "ok"}
    query(sb)
    c = admin(sb, "GET", "counters").json()
    assert c["requests"] == 1 and c["by_status"] == {"200": 1}

    r = admin(sb, "POST", "config", {"rate_limit": 1, "missing_journeys": [5], "latency": 0})
    assert r.status_code == 200
    assert r.json()["rate_limit"] == 1.0 and r.json()["missing_journeys"] == [5]
    assert sb.config.missing_journeys == frozenset({5})
    assert query(sb, journey_id="5").json()["data"][0]["error_code"] == 50202
    assert query(sb).status_code == 429
    assert admin(sb, "GET", "config").json()["rate_limit"] == 1.0

    bad = admin(sb, "POST", "config", {"failure_rate": 2})
    assert bad.status_code == 400 and "failure_rate" in bad.json()["error"]
    assert admin(sb, "POST", "config", {"no_such_setting": 1}).status_code == 400
    assert admin(sb, "POST", "config", [1, 2]).status_code == 400

    sb.configure(rate_limit=None)
    r = admin(sb, "POST", "inject", ["500", {"kind": "429", "retry_after": 7}])
    assert r.status_code == 200
    assert r.json()["pending_faults"] == [{"kind": "500"}, {"kind": "429", "retry_after": 7}]
    assert query(sb).status_code == 500
    assert query(sb).headers["Retry-After"] == "7"
    assert admin(sb, "POST", "inject", {"faults": ["drop"]}).status_code == 200
    assert admin(sb, "POST", "inject", [{"kind": "bogus"}]).status_code == 400

    r = admin(sb, "POST", "reset")
    assert r.status_code == 200 and r.json()["requests"] == 0
    assert r.json()["pending_faults"] == 0
    assert query(sb).status_code == 200  # the queued drop was cleared
    assert admin(sb, "GET", "nope").status_code == 404
    assert admin(sb, "GET", "reset").status_code == 405


# ------------------------------------------------------------------------------------------
# the oracle
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stats_type", ["journey", "message", "webhook"])
@pytest.mark.parametrize("time_unit", ["DAY", "HOUR"])
def test_expected_rows_equals_the_endpoint(stats_type, time_unit):
    with Sandbox(available_through="2026-04-03T07:00:00Z", missing_journeys={999}) as s:
        ids = [3, "abc", 77, 3, 999, 1234567]
        got = fetch_rows(s, stats_type, ids, time_unit, "2026-04-01", "2026-04-05")
        want = s.expected_rows(stats_type, ids, time_unit, "2026-04-01", "2026-04-05")
        assert got == want
        assert [list(r) for r in got] == [
            ["journey_id", "time_unit", *API_FIELDS[stats_type]] for _ in got
        ]
        keys = [(r["journey_id"], r["time"], r.get("component_id", 0)) for r in want]
        order = {3: 0, 77: 1, 1234567: 2}
        assert keys == sorted(keys, key=lambda k: (order[k[0]], k[1], k[2]))
        assert {r["journey_id"] for r in want} == {3, 77, 1234567}
        assert max(r["time"] for r in want) < "2026-04-03 07"


def test_expected_rows_has_no_api_limits_and_accepts_many_input_forms():
    s = Sandbox(available_through=CUTOFF)
    rows = s.expected_rows("journey", range(1, 151), "day", date(2026, 1, 1), "2026-02-09")
    assert len(rows) == 150 * 40
    assert s.expected_rows("journey", "5,6", "DAY", "2026-01-01", "2026-01-01") == (
        s.expected_rows("journey", [5, "6"], "DAY", datetime(2026, 1, 1, 12), "2026-01-01")
    )
    with pytest.raises(ValueError):
        s.expected_rows("journeys", [1], "DAY", "2026-01-01", "2026-01-01")
    with pytest.raises(ValueError):
        s.expected_rows("journey", [1], "WEEK", "2026-01-01", "2026-01-01")
    with pytest.raises(ValueError):
        s.expected_rows("journey", [1], "DAY", "2026-01-02", "2026-01-01")


# ------------------------------------------------------------------------------------------
# lifecycle, CLI and pytest fixture
# ------------------------------------------------------------------------------------------


def test_start_stop_without_context_manager_and_stop_interrupts_hangs():
    s = Sandbox(available_through=CUTOFF, hang_rate=1.0, hang_seconds=60)
    s.start()
    url = s.url
    with pytest.raises(RuntimeError):
        s.start()
    result: list = []

    def slow_call():
        try:
            result.append(query(s, timeout=30).status_code)
        except requests.RequestException as exc:
            result.append(type(exc).__name__)

    t = threading.Thread(target=slow_call)
    t.start()
    time.sleep(0.2)
    started = time.perf_counter()
    s.stop()
    t.join(timeout=10)
    assert time.perf_counter() - started < 5
    assert result and not t.is_alive()
    assert not s.running
    with pytest.raises(requests.ConnectionError):
        requests.get(url + PATHS["journey"], timeout=2)
    s.stop()  # idempotent


def test_sandbox_imports_only_the_standard_library():
    script = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import airflow_provider_engagelab.testing.sandbox\n"
        "new = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "print(sorted(n for n in new if n not in sys.stdlib_module_names))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['airflow_provider_engagelab']"


def test_configure_rejects_bad_values():
    s = Sandbox()
    for bad in (
        {"failure_rate": -0.1},
        {"rate_limit": 0},
        {"rate_burst": 0.5},
        {"missing_journey_mode": "sometimes"},
        {"latency": "slow"},
        {"available_through": "yesterday"},
        {"retry_after_override": -1},
        {"unknown": 1},
    ):
        with pytest.raises((TypeError, ValueError)):
            s.configure(**bad)
    with pytest.raises(TypeError):
        Sandbox(unknown_setting=1)
    assert s.configure(missing_journeys="1, 2").missing_journeys == frozenset({1, 2})


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cli_prints_url_and_stops_cleanly(sig):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_provider_engagelab.testing.sandbox",
            "--port",
            "0",
            "--api-key",
            "k",
            "--api-secret",
            "s",
            "--available-through",
            CUTOFF,
            "--missing-journeys",
            "7,8",
            "--rate-limit",
            "100",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO_ROOT,
    )
    with proc:
        try:
            line = proc.stdout.readline().strip()
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+", line), line
            r = requests.get(
                line + PATHS["journey"],
                params={
                    "journey_id": "6,7",
                    "time_unit": "DAY",
                    "start_time": "2026-06-09",
                    "end_time": "2026-06-10",
                },
                auth=("k", "s"),
                timeout=5,
            )
            data = r.json()["data"]
            assert [e["error_code"] for e in data] == [0, 50202]
            assert [d["time"] for d in data[0]["detail"]] == ["2026-06-09"]
            proc.send_signal(sig)
            out, err = proc.communicate(timeout=10)
            assert proc.returncode == 0, err
            assert out == "" and err == ""
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


def test_pytest_fixture(engagelab_sandbox):
    assert engagelab_sandbox.running
    assert engagelab_sandbox.auth == ("sandbox-key", "sandbox-secret")
    r = requests.get(engagelab_sandbox.url + "/_admin/health", timeout=5)
    assert r.json() == {"status": "ok"}


@pytest.mark.parametrize(
    "engagelab_sandbox_settings", [{"missing_journeys": {5}, "available_through": CUTOFF}]
)
def test_pytest_fixture_settings_and_connection(engagelab_connection):
    assert engagelab_connection.config.missing_journeys == frozenset({5})
    conn = json.loads(os.environ["AIRFLOW_CONN_ENGAGELAB_DEFAULT"])
    assert conn == {
        "conn_type": "engagelab",
        "host": engagelab_connection.url,
        "login": "sandbox-key",
        "password": "sandbox-secret",
    }
    assert query(engagelab_connection, journey_id="5").json()["data"][0]["error_code"] == 50202


def test_pytest_plugin_marker_as_a_user_enables_it(pytester):
    pytester.makeconftest(
        'pytest_plugins = ["pytester", "airflow_provider_engagelab.testing.pytest_plugin"]\n'
    )
    pytester.makepyfile(
        """
        import pytest
        import requests

        @pytest.mark.engagelab_sandbox(rate_limit=1, api_secret="other")
        def test_marker(engagelab_sandbox):
            assert engagelab_sandbox.config.rate_limit == 1.0
            assert engagelab_sandbox.auth == ("sandbox-key", "other")

        def test_default(engagelab_sandbox):
            assert engagelab_sandbox.config.rate_limit is None
            r = requests.get(engagelab_sandbox.url + "/_admin/health", timeout=5)
            assert r.status_code == 200
        """
    )
    result = pytester.runpytest("--strict-markers", "-p", "no:cacheprovider", "-p", "no:asyncio")
    result.assert_outcomes(passed=2)


# ------------------------------------------------------------------------------------------
# speed (printed, not asserted)
# ------------------------------------------------------------------------------------------


def test_print_timings():
    ids = ",".join(str(i) for i in range(10_000, 10_100))
    cases = [
        ("journey", "DAY", "2026-01-01", "2026-01-31"),
        ("message", "DAY", "2026-01-01", "2026-01-31"),
        ("webhook", "DAY", "2026-01-01", "2026-01-31"),
        ("journey", "HOUR", "2026-01-01", "2026-01-31"),
    ]
    sandbox_rows.clear_caches()
    with Sandbox(available_through=CUTOFF) as s, requests.Session() as http:
        http.auth = s.auth
        lines = []
        for stats_type, tu, start, end in cases:
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                r = http.get(
                    s.url + PATHS[stats_type],
                    params={
                        "journey_id": ids,
                        "time_unit": tu,
                        "start_time": start,
                        "end_time": end,
                    },
                )
                times.append((time.perf_counter() - t0) * 1000)
                assert r.status_code == 200
            lines.append(
                f"{stats_type:8s} {tu:4s} 100 ids x 31 days: {len(r.content) / 1e6:6.2f} MB, "
                f"cold {times[0]:6.1f} ms, warm {min(times[1:]):6.1f} ms"
            )
        print("\nsandbox timings (HTTP round trip incl. requests' client side):")
        print("\n".join(lines))


@pytest.mark.parametrize("stats_type", ["journey", "message", "webhook"])
def test_row_text_is_the_json_of_the_row(stats_type):
    """The endpoint formats rows as text directly; it must be the JSON of the dict rows
    that ``expected_rows`` returns, for any journey, day and number of available hours."""
    rng = random.Random(stats_type)
    for _ in range(400):
        jid = rng.choice([rng.randint(1, 2000), rng.randint(1, 10**12), 2**63 - 1])
        day = date(2020, 1, 1).toordinal() + rng.randint(0, 3000)
        hours = rng.randint(1, 24)
        for day_mode in (True, False):
            rows = sandbox_rows.day_detail(stats_type, jid, day_mode, day, hours)
            text = sandbox_rows.day_detail(stats_type, jid, day_mode, day, hours, as_json=True)
            assert [json.loads(t) for t in text] == rows
            assert ",".join(text) == json.dumps(rows, separators=(",", ":"))[1:-1]
