"""EngageLabAsyncHook over real HTTP (the local sandbox): same answers and rules as the sync hook."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import socket
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone

import pytest

from airflow_provider_engagelab.exceptions import (
    EngageLabAuthError,
    EngageLabBadRequestError,
    EngageLabJourneyNotFoundError,
    EngageLabRateLimitError,
    EngageLabServerError,
    EngageLabTransportError,
    EngageLabValidationError,
)
from airflow_provider_engagelab.hooks.engagelab import EngageLabAsyncHook, EngageLabHook
from airflow_provider_engagelab.testing.sandbox import Fault, Sandbox

SECRET = "async-S3cret-7d41-never-log-me"
KEY = "async-key"
TOKEN = base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
# Data through the end of 2026-03-10 UTC: fixed, so the tests do not depend on today's date.
CUTOFF = datetime(2026, 3, 11, tzinfo=timezone.utc)
DAY = date(2026, 3, 10)


def _set_conn(monkeypatch: pytest.MonkeyPatch, sb: Sandbox, **extra: object) -> None:
    conn = sb.airflow_connection(**{"max_retries": 2, "max_retry_wait": 1, **extra})
    monkeypatch.setenv("AIRFLOW_CONN_ENGAGELAB_DEFAULT", json.dumps(conn))


@pytest.fixture
def engagelab_sandbox_settings() -> dict[str, object]:
    """The plugin's sandbox with this module's credentials and a fixed cutoff."""
    return {"api_key": KEY, "api_secret": SECRET, "available_through": CUTOFF}


@pytest.fixture
def sb(engagelab_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    _set_conn(monkeypatch, engagelab_sandbox)
    return engagelab_sandbox


@pytest.fixture
def hook(sb: Sandbox) -> EngageLabAsyncHook:
    h = EngageLabAsyncHook()
    h.waits = []  # type: ignore[attr-defined]

    async def fake_sleep(seconds: float) -> None:  # record the waits, do not spend them
        h.waits.append(seconds)  # type: ignore[attr-defined]

    h.sleep = fake_sleep
    return h


async def test_rows_equal_the_sandbox_oracle_and_the_sync_hook(sb, hook):
    ids = list(range(1, 251))  # 3 batches of <= 100 IDs
    start, end = DAY - timedelta(days=40), DAY  # 2 windows of <= 31 days
    result = await hook.get_stats("message", ids, "day", start.isoformat(), end)
    assert result.calls == 6 and result.requests == 6 and result.errors == []
    order = ("journey_id", "time", "component_id")  # the oracle's order; the hooks keep plan order
    expected = sb.expected_rows("message", ids, "DAY", start, end)
    assert sorted(result.rows, key=lambda r: [r[k] for k in order]) == expected
    assert result.rows == EngageLabHook().get_stats("message", ids, "DAY", start, end).rows


async def test_concurrency_is_bounded_by_the_connection_and_used(sb, hook, monkeypatch):
    _set_conn(monkeypatch, sb, max_concurrent_requests=3)
    sb.configure(latency=0.05)
    result = await hook.get_stats("journey", list(range(1, 1001)), "DAY", DAY, DAY)  # 10 calls
    assert result.calls == 10
    assert sb.counters()["max_in_flight"] == 3
    # plan order, whatever order the answers came back in
    assert [r["journey_id"] for r in result.rows] == list(range(1, 1001))


async def test_one_call_at_a_time_when_the_connection_says_so(sb, hook, monkeypatch):
    _set_conn(monkeypatch, sb, max_concurrent_requests=1)
    sb.configure(latency=0.02)
    await hook.get_stats("journey", list(range(1, 401)), "DAY", DAY, DAY)
    assert sb.counters()["max_in_flight"] == 1


@pytest.mark.parametrize("fault", [Fault("500"), Fault("429", retry_after=1), Fault("truncated"),
                                   Fault("html"), Fault("empty")])
async def test_transient_failures_are_retried(sb, hook, fault):
    sb.inject(fault)
    result = await hook.get_stats("journey", [7], "HOUR", DAY, DAY)
    assert result.requests == 2 and len(result.rows) == 24
    assert len(hook.waits) == 1 and sb.counters()["requests"] == 2


async def test_dropped_connection_is_sent_again(sb, hook):
    # aiohttp itself re-sends an idempotent GET once when the server closes the connection
    # without answering; tenacity covers it when that happens again.
    sb.inject(Fault("drop"), Fault("drop"))
    result = await hook.get_stats("journey", [7], "HOUR", DAY, DAY)
    assert len(result.rows) == 24 and sb.counters()["requests"] >= 3


async def test_retry_after_is_honoured_up_to_the_cap(sb, hook, monkeypatch):
    _set_conn(monkeypatch, sb, max_retry_wait=4)
    sb.inject(Fault("429", retry_after=3), Fault("429", retry_after=300))
    await hook.get_stats("journey", [7], "DAY", DAY, DAY)
    assert 3 <= hook.waits[0] <= 4 and hook.waits[1] == 4


async def test_retry_budget_exhausted(sb, hook):
    sb.inject(*[Fault("500")] * 3)
    with pytest.raises(EngageLabServerError) as err:
        await hook.get_stats("journey", [7], "DAY", DAY, DAY)
    assert "gave up after 3 attempts" in str(err.value) and err.value.retryable
    assert sb.counters()["requests"] == 3


async def test_rate_limit_budget_exhausted_names_the_remedy(sb, hook):
    sb.inject(*[Fault("429")] * 3)
    with pytest.raises(EngageLabRateLimitError, match="requests_per_second"):
        await hook.get_stats("journey", [7], "DAY", DAY, DAY)


async def test_bad_credentials_fail_at_once_without_leaking(sb, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    conn = {**sb.airflow_connection(), "password": SECRET + "-wrong"}
    monkeypatch.setenv("AIRFLOW_CONN_ENGAGELAB_DEFAULT", json.dumps(conn))
    with pytest.raises(EngageLabAuthError) as err:
        await EngageLabAsyncHook().get_stats("journey", [7], "DAY", DAY, DAY)
    assert err.value.code == 40050 and err.value.status == 401
    assert sb.counters()["requests"] == 1
    for text in (str(err.value), repr(err.value), caplog.text):
        assert SECRET not in text and TOKEN not in text


async def test_non_retryable_api_errors_are_not_retried(sb, hook):
    sb.configure(missing_journeys={99}, missing_journey_mode="whole_call")
    with pytest.raises(EngageLabJourneyNotFoundError):
        await hook.get_stats("journey", [7, 99], "DAY", DAY, DAY)
    sb.inject(Fault("code_in_200", code=50217))
    with pytest.raises(EngageLabBadRequestError):
        await hook.get_stats("journey", [7], "DAY", DAY, DAY)
    assert sb.counters()["requests"] == 2 and hook.waits == []


async def test_per_journey_errors_come_back_with_the_rows(sb, hook):
    sb.configure(missing_journeys={99})
    result = await hook.get_stats("journey", [7, 99], "DAY", DAY, DAY)
    assert [(e.journey_id, e.error_code) for e in result.errors] == [(99, 50202)]
    assert {r["journey_id"] for r in result.rows} == {7}


async def test_first_failure_cancels_the_rest(sb, hook, monkeypatch):
    _set_conn(monkeypatch, sb, max_concurrent_requests=2, max_retries=0)
    sb.inject(Fault("500"))
    with pytest.raises(EngageLabServerError):
        await hook.get_stats("journey", list(range(1, 2001)), "DAY", DAY, DAY)  # 20 calls
    await asyncio.sleep(0.1)
    assert sb.counters()["requests"] < 20


async def test_validation_happens_before_any_request(sb, hook):
    for args, name in [
        (("journey", [1], "WEEK", DAY, DAY), "time_unit"),
        (("journey", [1], "DAY", DAY, DAY - timedelta(days=1)), "end_time"),
        (("journey", "1,x", "DAY", DAY, DAY), "journey_ids"),
        (("visits", [1], "DAY", DAY, DAY), "stats_type"),
        (("journey", [1], "DAY", "2026-02-30", DAY), "start_time"),
    ]:
        with pytest.raises(EngageLabValidationError, match=name):
            await hook.get_stats(*args)
    assert sb.counters()["requests"] == 0


async def test_bad_connection_settings_fail_before_any_request(sb, monkeypatch):
    _set_conn(monkeypatch, sb, max_concurrent_requests=0)
    with pytest.raises(EngageLabValidationError, match="max_concurrent_requests"):
        await EngageLabAsyncHook().get_stats("journey", [1], "DAY", DAY, DAY)
    assert sb.counters()["requests"] == 0


async def test_pacing_uses_the_core_pacer(sb, hook, monkeypatch):
    _set_conn(monkeypatch, sb, requests_per_second=10, max_concurrent_requests=1)
    await hook.get_stats("journey", list(range(1, 501)), "DAY", DAY, DAY)  # 5 calls
    # the calls did not take real time, so each later start was told to wait its slot
    assert len(hook.waits) >= 4 and all(0 < w <= 0.5 for w in hook.waits)


async def test_read_timeout_is_a_retryable_transport_error(sb, hook, monkeypatch):
    _set_conn(monkeypatch, sb, timeout=0.2, max_retries=1)
    sb.inject(Fault("hang", seconds=2), Fault("hang", seconds=2))
    with pytest.raises(EngageLabTransportError, match="timed out after 0.2s") as err:
        await hook.get_stats("journey", [7], "DAY", DAY, DAY)
    assert err.value.retryable and "gave up after 2 attempts" in str(err.value)


async def test_connection_refused_is_a_transport_error(monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conn = {"conn_type": "engagelab", "host": f"http://127.0.0.1:{port}", "login": KEY,
            "password": SECRET, "extra": {"max_retries": 0}}
    monkeypatch.setenv("AIRFLOW_CONN_ENGAGELAB_DEFAULT", json.dumps(conn))
    with pytest.raises(EngageLabTransportError, match="connection failed") as err:
        await EngageLabAsyncHook().get_stats("journey", [7], "DAY", DAY, DAY)
    assert SECRET not in str(err.value) and TOKEN not in str(err.value)


async def test_secret_and_token_are_registered_with_the_masker(hook):
    from airflow.providers.common.compat.sdk import redact

    await hook.aresolved()
    assert SECRET not in redact(f"x {SECRET} y") and TOKEN not in redact(f"Basic {TOKEN}")


async def test_connection_lookup_without_aget_connection(sb, monkeypatch):
    """Airflow 3.0's BaseHook has no aget_connection: common.compat runs the sync lookup in a thread."""
    from airflow.providers.common.compat.sdk import BaseHook

    monkeypatch.delattr(BaseHook, "aget_connection", raising=False)
    assert not hasattr(EngageLabAsyncHook(), "aget_connection")
    result = await EngageLabAsyncHook().get_stats("journey", [7], "DAY", DAY, DAY)
    assert len(result.rows) == 1


def test_convenience_methods_hit_their_endpoints(sb, hook):
    async def all_three():
        await hook.get_journey_stats([7], "DAY", DAY, DAY)
        await hook.get_message_stats([7], "DAY", DAY, DAY)
        await hook.get_webhook_stats([7], "DAY", DAY, DAY)

    asyncio.run(all_three())
    assert sb.counters()["by_endpoint"] == {
        "/v1/stats/journey": 1, "/v1/stats/journey/message": 1, "/v1/stats/journey/webhook": 1}


def test_dag_parse_does_not_load_the_async_hook():
    """The sensor's module (what a DAG file imports) loads the async hook only on demand.

    (aiohttp itself is imported anyway by providers-http's HttpHook module.)
    """
    code = (
        "import sys\n"
        "import airflow_provider_engagelab.hooks.engagelab\n"
        "import airflow_provider_engagelab.sensors.engagelab\n"
        "import airflow_provider_engagelab.triggers.engagelab\n"
        "assert 'airflow_provider_engagelab.hooks._async' not in sys.modules\n"
        "from airflow_provider_engagelab.hooks.engagelab import EngageLabAsyncHook\n"
        "assert EngageLabAsyncHook.__module__ == 'airflow_provider_engagelab.hooks._async'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
