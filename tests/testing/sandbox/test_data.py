"""sandbox/data.py: deterministic numbers, DAY = sum of its HOURs, funnels, the availability cutoff."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections import defaultdict
from datetime import datetime, timedelta

import pytest

from airflow_provider_engagelab.testing.sandbox import Sandbox

from .helpers import API_FIELDS, CUTOFF, FLOW_FIELDS, REPO_ROOT, UTC, admin, fetch_rows, query


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
    with Sandbox() as s:
        assert s.config.available_through is None
        while True:  # whatever today is; again if UTC midnight passed during the request
            today = datetime.now(UTC).date()
            yesterday = today - timedelta(days=1)
            hours = fetch_rows(s, "journey", [5], "HOUR", yesterday.isoformat(), today.isoformat())
            if datetime.now(UTC).date() == today:
                break
        assert len(hours) == 24
        assert hours[-1]["time"] == f"{yesterday.isoformat()} 23"
        # a naive datetime is taken as UTC; None restores the moving default
        s.configure(available_through=datetime(2026, 1, 2, 1, 0))
        assert s.config.available_through == datetime(2026, 1, 2, 1, 0, tzinfo=UTC)
        s.configure(available_through=None)
        assert s.config.available_through is None
