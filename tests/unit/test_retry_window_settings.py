"""Retry policy, pacing, connection settings and the run window."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import tenacity

from airflow_provider_engagelab.core.connection import refused_env_extra, resolve_connection
from airflow_provider_engagelab.core.retry import (
    Pacer,
    budget_exhausted,
    parse_retry_after,
    retry_kwargs,
)
from airflow_provider_engagelab.core.settings import ConnectionSettings, base_url, parse_settings
from airflow_provider_engagelab.core.window import apply_lookback, run_window
from airflow_provider_engagelab.exceptions import (
    EngageLabAuthError,
    EngageLabRateLimitError,
    EngageLabServerError,
    EngageLabValidationError,
)


def test_parse_retry_after():
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    now = datetime(2026, 6, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert parse_retry_after("Mon, 01 Jun 2026 12:00:30 GMT", now=lambda: now) == 30.0


def _run(exc_factory, settings, attempts_needed=99):
    waits: list[float] = []
    calls = {"n": 0}

    def fn():
        calls["n"] += 1
        if calls["n"] < attempts_needed:
            raise exc_factory()
        return "ok"

    retrying = tenacity.Retrying(**retry_kwargs(settings, sleep=waits.append))
    try:
        return retrying(fn), calls["n"], waits
    except Exception as exc:  # noqa: BLE001
        return exc, calls["n"], waits


def test_retryable_errors_use_the_budget_with_capped_jittered_backoff():
    settings = ConnectionSettings(max_retries=4, max_retry_wait=3.0)
    result, attempts, waits = _run(lambda: EngageLabServerError("boom", code=-1, status=500), settings)
    assert isinstance(result, EngageLabServerError)
    assert attempts == 5 and len(waits) == 4
    ceilings = [0.5, 1.0, 2.0, 3.0]
    for wait, ceiling in zip(waits, ceilings, strict=True):
        assert ceiling / 2 <= wait <= ceiling


def test_success_after_transient_failures():
    result, attempts, waits = _run(lambda: EngageLabServerError("x", status=500), ConnectionSettings(), 3)
    assert (result, attempts, len(waits)) == ("ok", 3, 2)


def test_non_retryable_errors_fail_at_once():
    result, attempts, waits = _run(lambda: EngageLabAuthError("no", code=40050, status=401),
                                   ConnectionSettings())
    assert isinstance(result, EngageLabAuthError) and attempts == 1 and waits == []


def test_retry_after_honoured_and_capped():
    def limited(seconds):
        def make():
            exc = EngageLabRateLimitError("slow down", code=55110, status=429)
            exc.retry_after = seconds
            return exc
        return make

    _, _, waits = _run(limited(2.0), ConnectionSettings(max_retries=2, max_retry_wait=10))
    assert all(2.0 <= w <= 2.5 for w in waits)
    _, _, waits = _run(limited(300.0), ConnectionSettings(max_retries=2, max_retry_wait=10))
    assert waits == [10, 10]


def test_budget_exhausted_message():
    exc = EngageLabRateLimitError("Too many requests", code=55110, status=429)
    new = budget_exhausted(exc, 6, ConnectionSettings(max_retries=5))
    assert isinstance(new, EngageLabRateLimitError)
    assert "gave up after 6 attempts" in str(new) and "max_retries=5" in str(new)
    assert "requests_per_second" in str(new)
    assert (new.code, new.status) == (55110, 429)


def test_pacer_spaces_requests():
    now = [100.0]
    pacer = Pacer(4.0, clock=lambda: now[0])
    assert [pacer.reserve() for _ in range(4)] == [0.0, 0.25, 0.5, 0.75]
    now[0] = 110.0
    assert pacer.reserve() == 0.0
    assert Pacer(None).reserve() == 0.0


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ({"timeout": 0}, "timeout"),
        ({"timeout": "abc"}, "timeout"),
        ({"max_retries": -1}, "max_retries"),
        ({"max_retries": 1.5}, "max_retries"),
        ({"max_concurrent_requests": 0}, "max_concurrent_requests"),
        ({"requests_per_second": 0}, "requests_per_second"),
        ({"max_retry_wait": True}, "max_retry_wait"),
        ({"timeout": float("nan")}, "timeout"),
        ({"timeout": 1e300}, "timeout"),
        ({"max_retries": 1000}, "max_retries"),
    ],
)
def test_bad_tuning_extras(extra, key):
    with pytest.raises(EngageLabValidationError, match=f"extra {key}="):
        parse_settings(extra)


def test_unknown_extra_is_refused():
    with pytest.raises(EngageLabValidationError, match="extra 'max_retires': unknown key.*max_retries"):
        parse_settings({"max_retires": 3})


def test_tuning_extras_parsed_from_strings():
    s = parse_settings({"timeout": "5", "max_retries": "2", "requests_per_second": "20",
                        "max_concurrent_requests": 8, "proxies": {"https": "http://proxy:3128"}})
    assert (s.timeout, s.max_retries, s.requests_per_second, s.max_concurrent_requests) == (5.0, 2, 20.0, 8)
    assert parse_settings({"requests_per_second": ""}).requests_per_second is None


def test_base_url_rules():
    assert base_url(None) == "https://ma-api.engagelab.com"
    assert base_url("https://ma-api.engagelab.com/") == "https://ma-api.engagelab.com"
    assert base_url("ma-api.engagelab.com", schema="https") == "https://ma-api.engagelab.com"
    assert base_url("http://127.0.0.1", port=8080) == "http://127.0.0.1:8080"
    with pytest.raises(EngageLabValidationError, match="host='ma-api.engagelab.com'.*https://"):
        base_url("ma-api.engagelab.com")
    with pytest.raises(EngageLabValidationError, match="host='ftp://x'"):
        base_url("ftp://x")
    with pytest.raises(EngageLabValidationError, match="user:password") as err:
        base_url("https://key:s3cr3t@api.test")
    assert "s3cr3t" not in str(err.value)
    with pytest.raises(EngageLabValidationError, match="without \\?query"):
        base_url("https://api.test/?region=sg")
    with pytest.raises(EngageLabValidationError, match="port must be a number"):
        base_url("http://127.0.0.1:99999")


def test_credentials_required_and_secret_not_in_repr():
    with pytest.raises(EngageLabValidationError, match="login \\(API Key\\)"):
        resolve_connection(host=None, schema=None, port=None, login="", password="s", extra={})
    with pytest.raises(EngageLabValidationError, match="password \\(API Secret\\)"):
        resolve_connection(host=None, schema=None, port=None, login="k", password="", extra={})
    resolved = resolve_connection(host=None, schema=None, port=None, login="k", password="TOPSECRET",
                                  extra=None)
    assert "TOPSECRET" not in repr(resolved)
    assert resolved.basic_token == "azpUT1BTRUNSRVQ="


_ENV_JSON = '{"conn_type": "engagelab", "login": "k", "password": "TOPSECRET", "extra": %s}'


@pytest.mark.parametrize(("value", "kind"), [
    (_ENV_JSON % "[1, 2]", "a JSON array"),
    (_ENV_JSON % '"[1, 2]"', "a JSON array"),  # Extra given as JSON text
    (_ENV_JSON % "5", "a JSON number"),
    (_ENV_JSON % "true", "a JSON boolean"),
    (_ENV_JSON % '"not json"', "text that is not JSON"),
    ("engagelab://k:TOPSECRET@api.test/https?__extra__=%5B1%5D", "a JSON array"),
    ("engagelab://k:TOPSECRET@api.test/https?__extra__=%22x%22", "a JSON string"),
])
def test_refused_env_extra_explains_a_non_object_extra(value, kind):
    message = refused_env_extra("engagelab_default", {"AIRFLOW_CONN_ENGAGELAB_DEFAULT": value})
    assert message is not None
    assert message.startswith("Invalid connection extra: must be a JSON object")
    assert f"AIRFLOW_CONN_ENGAGELAB_DEFAULT gives {kind}" in message
    assert "TOPSECRET" not in message


@pytest.mark.parametrize("environ", [
    {},  # not in the environment: Airflow's "not defined" is the truth
    {"AIRFLOW_CONN_ENGAGELAB_DEFAULT": ""},
    {"AIRFLOW_CONN_OTHER": _ENV_JSON % "[1]"},
    {"AIRFLOW_CONN_ENGAGELAB_DEFAULT": _ENV_JSON % '{"timeout": 5}'},
    {"AIRFLOW_CONN_ENGAGELAB_DEFAULT": _ENV_JSON % '"{\\"timeout\\": 5}"'},
    {"AIRFLOW_CONN_ENGAGELAB_DEFAULT": _ENV_JSON % "null"},
    {"AIRFLOW_CONN_ENGAGELAB_DEFAULT": '{"conn_type": "engagelab"'},  # broken JSON: not ours to explain
    {"AIRFLOW_CONN_ENGAGELAB_DEFAULT": "engagelab://k:s@api.test/https"},
    {"AIRFLOW_CONN_ENGAGELAB_DEFAULT": "engagelab://k:s@api.test/https?__extra__=%7B%7D"},
])
def test_refused_env_extra_stays_out_of_other_cases(environ):
    assert refused_env_extra("engagelab_default", environ) is None


UTC = timezone.utc


def test_window_non_empty_daily_interval():
    start = datetime(2026, 6, 1, tzinfo=UTC)
    assert run_window(UTC, data_interval_start=start, data_interval_end=start + timedelta(days=1)) == (
        date(2026, 6, 1), date(2026, 6, 1))


def test_window_weekly_interval():
    start = datetime(2026, 6, 1, tzinfo=UTC)
    assert run_window(UTC, data_interval_start=start, data_interval_end=start + timedelta(days=7)) == (
        date(2026, 6, 1), date(2026, 6, 7))


def test_window_empty_interval_is_the_day_before_logical_date():
    ld = datetime(2026, 6, 2, tzinfo=UTC)
    assert run_window(UTC, data_interval_start=ld, data_interval_end=ld, logical_date=ld) == (
        date(2026, 6, 1), date(2026, 6, 1))


def test_window_manual_run_uses_run_after():
    ra = datetime(2026, 6, 2, 15, 30, tzinfo=UTC)
    assert run_window(UTC, run_after=ra) == (date(2026, 6, 1), date(2026, 6, 1))
    with pytest.raises(EngageLabValidationError, match="start_time and end_time"):
        run_window(UTC)


def test_window_in_dag_timezone():
    sg = ZoneInfo("Asia/Singapore")
    # 2026-06-01T16:00Z..2026-06-02T16:00Z is the Singapore day 2026-06-02
    s = datetime(2026, 6, 1, 16, tzinfo=UTC)
    assert run_window(sg, data_interval_start=s, data_interval_end=s + timedelta(days=1)) == (
        date(2026, 6, 2), date(2026, 6, 2))
    # logical date 2026-06-01T20:00Z is already 2026-06-02 in Singapore -> previous day 06-01
    assert run_window(sg, logical_date=datetime(2026, 6, 1, 20, tzinfo=UTC)) == (
        date(2026, 6, 1), date(2026, 6, 1))


def test_lookback():
    assert apply_lookback(date(2026, 6, 10), date(2026, 6, 10), 3) == (date(2026, 6, 7), date(2026, 6, 10))
    for bad in (-1, 1.5, "2", True, 10**6):
        with pytest.raises(EngageLabValidationError, match="lookback_days"):
            apply_lookback(date(2026, 6, 10), date(2026, 6, 10), bad)
    with pytest.raises(EngageLabValidationError, match="before year 1"):
        apply_lookback(date(1, 1, 2), date(1, 1, 2), 5)
