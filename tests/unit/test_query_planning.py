"""Validation and request planning of the pure core."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta

import pytest

from airflow_provider_engagelab.core.planning import date_windows, plan_calls
from airflow_provider_engagelab.core.query import (
    StatsType,
    TimeUnit,
    build_query,
    parse_date,
    parse_journey_ids,
    parse_time_unit,
)
from airflow_provider_engagelab.exceptions import EngageLabValidationError


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ([1, 2, 3], (1, 2, 3)),
        (["7", " 8 ", 9], (7, 8, 9)),
        ("10, 11,12", (10, 11, 12)),
        ("5", (5,)),
        (42, (42,)),
        ([3, 1, 3, 2, 1], (3, 1, 2)),
        ("9,9,9", (9,)),
        ((x for x in [4, 5]), (4, 5)),
        ("[1, 2, 3]", (1, 2, 3)),  # a Jinja-rendered list
        (" ('4', 5) ", (4, 5)),
    ],
)
def test_journey_ids_accepted(value, expected):
    assert parse_journey_ids(value) == expected


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ([], "at least one"),
        ("", "positive integer"),
        ("1,,2", "positive integer"),
        ([0], "> 0"),
        ("0", "> 0"),
        ([-3], "positive integer"),
        ("-3", "positive integer"),
        (["abc"], "digits only"),
        ([1.5], "positive integer"),
        (["1.0"], "digits only"),
        ([True], "boolean"),
        (True, "boolean"),
        (None, "list of positive integers"),
        ({"a": 1}, "list of positive integers"),
        ([None], "positive integer"),
        ("[1, 2", "list literal"),
        ("[1, 'x']", "digits only"),
        ("[]", "at least one"),
        ([2**63], "at most 9223372036854775807"),
    ],
)
def test_journey_ids_rejected_with_param_and_rule(value, rule):
    with pytest.raises(EngageLabValidationError) as err:
        parse_journey_ids(value)
    assert "journey_ids" in str(err.value)
    assert rule in str(err.value)


def test_time_unit_case_insensitive_and_upper_on_wire():
    assert parse_time_unit("hour") is TimeUnit.HOUR
    assert parse_time_unit(" Day ") is TimeUnit.DAY
    for bad in ("WEEK", "", None, 1):
        with pytest.raises(EngageLabValidationError, match="time_unit.*'HOUR' or 'DAY'"):
            parse_time_unit(bad)


def test_dates():
    assert parse_date("2026-06-01", "start_time") == date(2026, 6, 1)
    assert parse_date(date(2026, 6, 1), "start_time") == date(2026, 6, 1)
    assert parse_date(datetime(2026, 6, 1, 23, 59), "start_time") == date(2026, 6, 1)
    for bad in ("2026/06/01", "2026-6-1", "20260601", "", None, 20260601):
        with pytest.raises(EngageLabValidationError, match="start_time.*yyyy-MM-dd"):
            parse_date(bad, "start_time")
    with pytest.raises(EngageLabValidationError, match="end_time.*real calendar date"):
        parse_date("2026-02-30", "end_time")


def test_end_before_start_and_unknown_stats_type():
    rule = "end_time='2026-05-31'.*on or after start_time=2026-06-01"
    with pytest.raises(EngageLabValidationError, match=rule):
        build_query("journey", [1], "DAY", "2026-06-01", "2026-05-31")
    rule = "stats_type='sms'.*'journey', 'message', 'webhook'"
    with pytest.raises(EngageLabValidationError, match=rule):
        build_query("sms", [1], "DAY", "2026-06-01", "2026-06-01")
    q = build_query("MESSAGE", "1,2", "day", "2026-06-01", "2026-06-01")
    assert q.stats_type is StatsType.MESSAGE and q.days == 1


@pytest.mark.parametrize("n_ids", [1, 99, 100, 101, 200, 250, 1000, 1001])
@pytest.mark.parametrize("n_days", [1, 30, 31, 32, 62, 63, 365, 366])
def test_plan_is_minimal_and_tiles_the_range(n_ids, n_days):
    start = date(2024, 1, 30)
    end = start + timedelta(days=n_days - 1)
    query = build_query("webhook", list(range(1, n_ids + 1)), "HOUR", start, end)
    calls = plan_calls(query)
    assert len(calls) == math.ceil(n_ids / 100) * math.ceil(n_days / 31)
    for call in calls:
        assert 1 <= len(call.journey_ids) <= 100
        assert 1 <= (call.end - call.start).days + 1 <= 31
        assert call.params()["time_unit"] == "HOUR"
    # Every (journey, day) pair is requested exactly once.
    pairs = [
        (j, call.start + timedelta(days=d))
        for call in calls
        for j in call.journey_ids
        for d in range((call.end - call.start).days + 1)
    ]
    assert len(pairs) == len(set(pairs)) == n_ids * n_days


def test_windows_are_consecutive_without_gap_or_overlap():
    windows = date_windows(date(2026, 1, 1), date(2026, 12, 31))
    assert windows[0][0] == date(2026, 1, 1) and windows[-1][1] == date(2026, 12, 31)
    for (_, prev_end), (next_start, _) in zip(windows, windows[1:], strict=False):
        assert next_start == prev_end + timedelta(days=1)
    assert len(windows) == 12  # 365 days / 31


def test_params_on_the_wire():
    (call,) = plan_calls(build_query("journey", ["123", 456], "day", "2026-06-01", "2026-06-07"))
    assert call.endpoint == "/v1/stats/journey"
    assert call.params() == {
        "journey_id": "123,456",
        "time_unit": "DAY",
        "start_time": "2026-06-01",
        "end_time": "2026-06-07",
    }


def test_core_imports_without_airflow():
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['airflow'] = None\n"
        "import airflow_provider_engagelab.core.query, airflow_provider_engagelab.core.planning\n"
        "import airflow_provider_engagelab.core.parsing, airflow_provider_engagelab.core.retry\n"
        "import airflow_provider_engagelab.core.window, airflow_provider_engagelab.core.connection\n"
        "print('pure')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "pure"
