"""Secrets: the API secret and its Basic token never appear anywhere; requests go only to the host.

With recognisable credentials (``reliability_helpers.SECRET``, and a second, wrong one for
the 401 paths), every path a user can hit runs here: the sync hook, the async hook, each
operator (XCom and files), the sensor (poke, reschedule, deferrable through the trigger) and
the trigger on its own, on success and on failure (401, 500 with retries, bad JSON, dropped
connections, timeouts, refused connections), plus ``test_connection``. Captured: every log
record at DEBUG (``caplog``, urllib3 and aiohttp included), everything written to the
process's stdout/stderr (``capfd``), every exception (str, repr, args, attributes and the
whole chain, suppressed context included), every return value / XCom value and every
rendered template field. A real ``dag.test()`` run of all of them adds Airflow's own output,
its log files and every row of every table of its metadata database.

Also: the hooks connect only to the Connection's host and port, over the scheme it names (an
``https://`` host is never tried over plain HTTP), and never follow a redirect: a second
local server that a redirect points to sees no request at all.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pendulum
import pytest
from reliability_helpers import (
    CUTOFF,
    KEY,
    SECRET,
    TOKEN,
    UTC,
    RecordingServer,
    conn_dict,
    exception_texts,
    plain_text,
    redirecting_server,
    without_mask_echo,
)

from airflow_provider_engagelab.core.connection import resolve_connection
from airflow_provider_engagelab.core.readiness import error_from_payload
from airflow_provider_engagelab.exceptions import (
    EngageLabAuthError,
    EngageLabError,
    EngageLabJourneyErrors,
    EngageLabResponseError,
    EngageLabServerError,
    EngageLabTransportError,
    EngageLabValidationError,
)
from airflow_provider_engagelab.hooks.engagelab import EngageLabAsyncHook, EngageLabHook
from airflow_provider_engagelab.operators.engagelab import EngageLabStatsOperator
from airflow_provider_engagelab.sensors.engagelab import EngageLabStatsAvailableSensor
from airflow_provider_engagelab.testing.sandbox import Fault, Sandbox
from airflow_provider_engagelab.triggers.engagelab import EngageLabStatsAvailableTrigger

try:  # Airflow >= 3.1
    from airflow.sdk.exceptions import AirflowRescheduleException, TaskDeferred
except ImportError:  # Airflow 3.0
    from airflow.exceptions import AirflowRescheduleException, TaskDeferred  # type: ignore[no-redef]

WRONG = "Wr0ng-S3CRET-deadbeef-must-never-show"
WRONG_TOKEN = base64.b64encode(f"{KEY}:{WRONG}".encode()).decode()
NEEDLES = (SECRET, TOKEN, WRONG, WRONG_TOKEN)
DAY = "2026-05-01"
QUICK = {"max_retries": 2, "max_retry_wait": 0.02}


def find_leaks(texts: list[str], needles: tuple[str, ...] = NEEDLES) -> list[str]:
    """Every line of ``texts`` that shows one of the secrets or tokens."""
    return [line for text in texts for line in str(text).splitlines() if any(n in line for n in needles)]


# ============================================================================ scenarios
@dataclass
class Env:
    sb: Sandbox
    monkeypatch: pytest.MonkeyPatch
    tmp_path: Path
    host: str | None = None  # the Connection's host when it is not the sandbox

    def conn(self, secret: str = SECRET, host: str | None = None, **extra: Any) -> None:
        conn = conn_dict(host or self.host or self.sb, secret=secret, **{**QUICK, **extra})
        self.monkeypatch.setenv("AIRFLOW_CONN_ENGAGELAB_DEFAULT", json.dumps(conn))


def sensor_context() -> dict[str, Any]:
    ti = SimpleNamespace(get_first_reschedule_date=lambda ctx: None)
    return {"dag": SimpleNamespace(timezone=pendulum.timezone("UTC")),
            "logical_date": datetime(2026, 5, 2, 6, tzinfo=UTC), "data_interval_start": None,
            "data_interval_end": None, "dag_run": None, "ti": ti}


def sync_hook() -> EngageLabHook:
    hook = EngageLabHook()
    hook.sleep = lambda seconds: None
    return hook


def async_get(**kwargs: Any) -> Any:
    async def go() -> Any:
        hook = EngageLabAsyncHook()

        async def no_wait(seconds: float) -> None:
            return None

        hook.sleep = no_wait
        return await hook.get_stats("journey", [1, 2], "HOUR", DAY, DAY)

    return asyncio.run(go())


async def _events(trigger: EngageLabStatsAvailableTrigger) -> list[dict[str, Any]]:
    return [event.payload async for event in trigger.run()]


def run_trigger(trigger: EngageLabStatsAvailableTrigger) -> list[dict[str, Any]]:
    return asyncio.run(asyncio.wait_for(_events(trigger), 60))


def a_trigger(seconds: float = 10) -> EngageLabStatsAvailableTrigger:
    return EngageLabStatsAvailableTrigger(
        journey_ids=[1, 2], target_date=DAY, poke_interval=0.05,
        timeout_at=(datetime.now(UTC) + timedelta(seconds=seconds)).isoformat(),
    )


def operator(stats_type: str, env: Env, **kwargs: Any) -> EngageLabStatsOperator:
    from airflow.sdk import DAG

    with DAG("secrets", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
        op = EngageLabStatsOperator(
            task_id=f"fetch_{stats_type}", stats_type=stats_type, journey_ids="{{ params.ids }}",
            time_unit="{{ params.unit }}", start_time="{{ ds }}", end_time="{{ ds }}", **kwargs,
        )
    return op


def render_and_run(op: EngageLabStatsOperator) -> list[Any]:
    """Render the templates as Airflow would, run; return the rendered fields and the XCom value."""
    op.render_template_fields({"ds": DAY, "params": {"ids": [1, 2], "unit": "HOUR"}})
    rendered = {name: getattr(op, name) for name in op.template_fields}
    return [rendered, op.execute({})]


def deferrable_then_trigger(env: Env, in_trigger: list[Fault]) -> Any:
    """Look once on the worker (not ready), defer; the trigger sees ``in_trigger``; resume."""
    env.sb.configure(available_through=datetime(2026, 5, 1, 12, tzinfo=UTC))
    sensor = EngageLabStatsAvailableSensor(task_id="wait", journey_ids=[1, 2], target_date=DAY,
                                           deferrable=True, poke_interval=0.05, timeout=5)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(sensor_context())
    outputs: list[Any] = [repr(deferred.value), deferred.value.trigger.serialize()]
    env.sb.configure(available_through=CUTOFF)
    env.sb.inject(*in_trigger)
    events = run_trigger(deferred.value.trigger)
    outputs.append(events)
    outputs.append(sensor.execute_complete(sensor_context(), events[0]))
    return outputs


def expect_false(result: tuple[bool, str]) -> tuple[bool, str]:
    assert result[0] is False, result
    return result


def hook_get(e: Env | None = None, ids: tuple[int, ...] = (1,), unit: str = "DAY") -> Any:
    return sync_hook().get_stats("journey", list(ids), unit, DAY, DAY)


def poke(**kwargs: Any) -> Any:
    kwargs.setdefault("journey_ids", [1, 2])
    sensor = EngageLabStatsAvailableSensor(task_id="wait", target_date=DAY, deferrable=False, **kwargs)
    if kwargs.get("mode") == "reschedule":
        return sensor.execute(sensor_context())
    return sensor.poke(sensor_context())


def inject(*faults: Fault) -> Callable[[Env], None]:
    return lambda e: e.sb.inject(*faults)


def nothing(e: Env) -> None:
    return None


def wrong_secret(e: Env) -> None:
    e.conn(secret=WRONG)


def hangs(e: Env) -> None:
    e.conn(timeout=0.2)
    e.sb.inject(*[Fault("hang", seconds=1)] * 3)


def op_files(stats_type: str, **kwargs: Any) -> Callable[[Env], Any]:
    return lambda e: render_and_run(operator(stats_type, e, output_path=str(e.tmp_path / "o"), **kwargs))


#: name -> (setup(env), action(env) -> outputs, expected outcome: "ok" or an exception class)
SCENARIOS: dict[str, tuple[Callable[[Env], Any], Callable[[Env], Any], Any]] = {
    # ------------------------------------------------------------------ sync hook
    "hook-ok": (nothing, lambda e: hook_get(ids=(1, 2), unit="HOUR").rows, "ok"),
    "hook-stream-ok": (nothing, lambda e: list(sync_hook().iter_stats("message", [1], "DAY", DAY, DAY)),
                       "ok"),
    "hook-test-connection-ok": (nothing, lambda e: sync_hook().test_connection(), "ok"),
    "hook-401": (wrong_secret, hook_get, EngageLabAuthError),
    "hook-test-connection-401": (wrong_secret, lambda e: expect_false(sync_hook().test_connection()), "ok"),
    "hook-500-retried-then-ok": (inject(Fault("500")), lambda e: hook_get().rows, "ok"),
    "hook-500-budget": (inject(*[Fault("500")] * 3), hook_get, EngageLabServerError),
    "hook-truncated-json": (inject(*[Fault("truncated")] * 3), hook_get, EngageLabResponseError),
    "hook-html-proxy-page": (inject(*[Fault("html")] * 3), hook_get, EngageLabServerError),
    "hook-bad-field": (inject(Fault("bad_field", value="x")), hook_get, EngageLabResponseError),
    "hook-dropped": (inject(*[Fault("drop")] * 3), hook_get, EngageLabTransportError),
    "hook-read-timeout": (hangs, hook_get, EngageLabTransportError),
    "hook-refused": (lambda e: e.conn(host="http://127.0.0.1:9"), hook_get, EngageLabTransportError),
    # ------------------------------------------------------------------ async hook
    "async-ok": (nothing, lambda e: async_get().rows, "ok"),
    "async-401": (wrong_secret, lambda e: async_get(), EngageLabAuthError),
    "async-500-budget": (inject(*[Fault("500")] * 3), lambda e: async_get(), EngageLabServerError),
    "async-truncated-json": (inject(*[Fault("truncated")] * 3), lambda e: async_get(),
                             EngageLabResponseError),
    "async-dropped": (inject(*[Fault("drop")] * 6), lambda e: async_get(), EngageLabTransportError),
    "async-read-timeout": (hangs, lambda e: async_get(), EngageLabTransportError),
    # ------------------------------------------------------------------ operators
    "op-journey-xcom": (nothing, lambda e: render_and_run(operator("journey", e)), "ok"),
    "op-message-files": (nothing, op_files("message"), "ok"),
    "op-webhook-csv": (nothing, op_files("webhook", output_format="csv"), "ok"),
    "op-401": (wrong_secret, lambda e: render_and_run(operator("journey", e)), EngageLabAuthError),
    "op-500-budget": (inject(*[Fault("500")] * 3), op_files("message"), EngageLabServerError),
    "op-bad-json": (inject(*[Fault("empty")] * 3), lambda e: render_and_run(operator("webhook", e)),
                    EngageLabResponseError),
    "op-journey-errors": (lambda e: e.sb.configure(missing_journeys={2}),
                          lambda e: render_and_run(operator("journey", e)), EngageLabJourneyErrors),
    # ------------------------------------------------------------------ sensor
    "sensor-poke-ready": (nothing, lambda e: poke(), "ok"),
    "sensor-poke-500-is-not-yet": (inject(*[Fault("500")] * 3), lambda e: poke(), "ok"),
    "sensor-poke-401": (wrong_secret, lambda e: poke(journey_ids=[1]), EngageLabAuthError),
    "sensor-reschedule": (lambda e: e.sb.configure(available_through=datetime(2026, 5, 1, 12, tzinfo=UTC)),
                          lambda e: poke(journey_ids=[1], mode="reschedule", poke_interval=60),
                          AirflowRescheduleException),
    "sensor-deferrable-ok": (nothing, lambda e: deferrable_then_trigger(e, []), "ok"),
    "sensor-deferrable-retries-then-401": (
        nothing,
        lambda e: deferrable_then_trigger(
            e, [Fault("500"), Fault("truncated"), Fault("code_in_200", code=40050)]),
        EngageLabAuthError,
    ),
    # ------------------------------------------------------------------ trigger on its own
    "trigger-ok": (nothing, lambda e: run_trigger(a_trigger()), "ok"),
    "trigger-401": (wrong_secret, lambda e: run_trigger(a_trigger()), "ok"),
    "trigger-500-until-timeout": (lambda e: e.sb.configure(failure_rate=1.0),
                                  lambda e: run_trigger(a_trigger(seconds=0.5)), "ok"),
    "trigger-bad-json-until-timeout": (inject(*[Fault("truncated")] * 200),
                                       lambda e: run_trigger(a_trigger(seconds=0.5)), "ok"),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_no_secret_in_logs_errors_xcom_or_templates(sb, monkeypatch, tmp_path, caplog, capfd, name):
    setup, action, expected = SCENARIOS[name]
    env = Env(sb, monkeypatch, tmp_path)
    env.conn()
    caplog.set_level(logging.DEBUG)  # root at DEBUG: urllib3, aiohttp, Airflow, the provider
    setup(env)
    texts: list[str] = []
    outcome: Any = "ok"
    try:
        result = action(env)
        texts += [repr(result), json.dumps(result, default=str)]
    except BaseException as exc:  # noqa: BLE001 - every failure's text is inspected
        outcome = type(exc)
        texts += exception_texts(exc)
    out, err = capfd.readouterr()
    texts += [out, err, caplog.text]
    for record in caplog.records:
        texts += [record.getMessage(), repr(record.args), str(record.exc_text or "")]
    assert outcome is expected or (isinstance(expected, type) and issubclass(outcome, expected)), outcome
    assert sb.counters()["requests"] >= 1 or name == "hook-refused"  # the path really ran
    assert find_leaks(texts) == []


# ============================================================================ the header actually sent
@pytest.mark.parametrize(
    ("key", "secret"),
    [(KEY, SECRET), (KEY, "Rel-sécret-d1acr1t1c"), (KEY, "Rel-€uro-secret-x1"), (f" {KEY} ", SECRET)],
    ids=["ascii", "latin-1-secret", "non-latin-1-secret", "padded-login"],
)
def test_the_header_sent_is_the_masked_token_in_both_hooks(monkeypatch, key, secret):
    """What goes on the wire is exactly ``ResolvedConnection.basic_token``, the value given to the masker."""
    with RecordingServer() as server:
        conn = conn_dict(server.url, key=key, secret=secret, max_retries=0)
        monkeypatch.setenv("AIRFLOW_CONN_ENGAGELAB_DEFAULT", json.dumps(conn))
        token = resolve_connection(host=server.url, schema=None, port=None, login=key, password=secret,
                                   extra={}).basic_token
        try:
            EngageLabHook().get_stats("journey", [1], "DAY", DAY, DAY)
        except EngageLabResponseError:
            pass  # the server answers an empty data list: "no entry for requested journey(s) 1"
        try:
            asyncio.run(EngageLabAsyncHook().get_stats("journey", [1], "DAY", DAY, DAY))
        except EngageLabResponseError:
            pass
    sent = [r["headers"].get("Authorization") for r in server.requests]
    assert sent == [f"Basic {token}"] * 2


def test_a_non_latin1_secret_never_shows_in_errors(monkeypatch, caplog, capfd):
    """Until f4c3017 the sync hook raised a UnicodeEncodeError whose repr/args held the secret."""
    secret = "N0n-Lat1n-€-S3CRET-x"
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    with Sandbox(api_key=KEY, api_secret=secret, available_through=CUTOFF) as sandbox:
        monkeypatch.setenv("AIRFLOW_CONN_ENGAGELAB_DEFAULT", json.dumps(conn_dict(sandbox, secret=secret)))
        outcome = EngageLabHook().test_connection()
        texts.append(repr(outcome))
        assert outcome[0] is True, outcome  # the sync hook sends the UTF-8 token the API expects
        try:
            texts.append(repr(EngageLabHook().get_stats("journey", [1], "DAY", DAY, DAY).rows))
        except BaseException as exc:  # noqa: BLE001 - its text is what is checked
            texts += exception_texts(exc)
    texts += [*capfd.readouterr(), caplog.text]
    assert find_leaks(texts, (secret,)) == []


# ============================================================================ only the Connection's host
@pytest.fixture
def connections(monkeypatch) -> list[tuple[str, int]]:
    """Every (host, port) a hook opens a TCP connection to, sync (urllib3) and async (asyncio)."""
    import urllib3.util.connection as u3

    seen: list[tuple[str, int]] = []
    real_sync = u3.create_connection

    def sync_connect(address, *args, **kwargs):
        seen.append((address[0], int(address[1])))
        return real_sync(address, *args, **kwargs)

    monkeypatch.setattr(u3, "create_connection", sync_connect)
    real_async = asyncio.base_events.BaseEventLoop.create_connection

    async def async_connect(self, protocol_factory, host=None, port=None, **kwargs):
        sock = kwargs.get("sock")
        seen.append(tuple(sock.getpeername()[:2]) if sock is not None else (host, int(port)))
        return await real_async(self, protocol_factory, host, port, **kwargs)

    monkeypatch.setattr(asyncio.base_events.BaseEventLoop, "create_connection", async_connect)
    return seen


def test_requests_go_only_to_the_connections_host(sb, monkeypatch, tmp_path, connections):
    env = Env(sb, monkeypatch, tmp_path)
    env.conn()
    sb.inject(Fault("500"), Fault("drop"))  # retries reconnect: to the same host
    sync_hook().get_stats("journey", list(range(1, 251)), "DAY", "2026-03-01", "2026-05-10")  # 9 calls
    async_get()
    render_and_run(operator("message", env, output_path=str(tmp_path / "o")))
    EngageLabStatsAvailableSensor(task_id="w", journey_ids=[1], target_date=DAY, deferrable=False).poke(
        sensor_context())
    run_trigger(a_trigger())
    assert sync_hook().test_connection()[0] is True
    assert connections and set(connections) == {("127.0.0.1", sb.port)}
    assert sb.counters()["requests"] >= 15


@pytest.mark.parametrize("transport", ["sync", "async"])
def test_an_https_host_is_never_tried_over_plain_http(sb, monkeypatch, tmp_path, transport):
    """The sandbox speaks plain HTTP only: an https:// Connection to it fails; nothing is sent in clear."""
    env = Env(sb, monkeypatch, tmp_path)
    env.conn(host=f"https://127.0.0.1:{sb.port}", max_retries=1)
    with pytest.raises(EngageLabTransportError):
        if transport == "sync":
            sync_hook().get_stats("journey", [1], "DAY", DAY, DAY)
        else:
            async_get()
    assert sb.counters()["requests"] == 0  # no plain-HTTP request ever reached it


# ============================================================================ redirects
REDIRECT_CALLS: dict[str, Callable[[Env], Any]] = {
    "sync-hook": lambda e: sync_hook().get_stats("journey", [1], "DAY", DAY, DAY),
    # HttpHook honours allow_redirects/max_redirects extras in its run(); ours must not follow anyway
    "sync-hook-allow-redirects-extra": lambda e: (
        e.conn(allow_redirects=True, max_redirects=5),
        sync_hook().get_stats("journey", [1], "DAY", DAY, DAY),
    ),
    "async-hook": lambda e: async_get(),
    "test-connection": lambda e: expect_false(sync_hook().test_connection()),
    "operator": lambda e: render_and_run(operator("journey", e)),
    "sensor": lambda e: EngageLabStatsAvailableSensor(
        task_id="w", journey_ids=[1], target_date=DAY, deferrable=False).poke(sensor_context()),
    "trigger": lambda e: trigger_error(),
}


def trigger_error() -> Any:
    """Run the trigger; raise the error its (single) event reports."""
    [event] = run_trigger(a_trigger())
    assert event["status"] == "error", event
    raise error_from_payload(event["error"])


@pytest.mark.parametrize("status", [301, 302, 307, 308])
@pytest.mark.parametrize("caller", list(REDIRECT_CALLS))
def test_a_redirect_to_another_host_is_not_followed(monkeypatch, tmp_path, caplog, status, caller):
    caplog.set_level(logging.DEBUG)
    with RecordingServer() as elsewhere, redirecting_server(elsewhere.url, status) as api:
        env = Env(None, monkeypatch, tmp_path, host=api.url)  # type: ignore[arg-type]
        env.conn()
        try:
            result = REDIRECT_CALLS[caller](env)
            text = json.dumps(result, default=str)
        except EngageLabValidationError as exc:  # the extra that would allow redirects is refused
            assert caller == "sync-hook-allow-redirects-extra" and "allow_redirects" in str(exc), exc
            assert api.requests == []
            text = str(exc)
        except EngageLabError as exc:
            assert isinstance(exc, EngageLabResponseError)
            text = str(exc)
        if api.requests:
            assert "redirect" in text and str(status) in text
            assert api.requests[0]["headers"]["Authorization"] == f"Basic {TOKEN}"
    assert elsewhere.requests == []  # not one request, so no credentials either
    assert find_leaks([text, caplog.text]) == []


# ============================================================================ real Airflow, all captured
SECRETS_DAG = """
import pendulum
from airflow.sdk import DAG

from airflow_provider_engagelab.operators.engagelab import (
    EngageLabJourneyStatsOperator,
    EngageLabMessageStatsOperator,
    EngageLabWebhookStatsOperator,
)
from airflow_provider_engagelab.sensors.engagelab import EngageLabStatsAvailableSensor

ROOT = {root!r}

with DAG("rel_secrets", schedule="@daily", start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False,
         params={{"ids": [1, 2]}}):
    EngageLabJourneyStatsOperator(task_id="journey_xcom", journey_ids="{{{{ params.ids }}}}")
    EngageLabMessageStatsOperator(task_id="message_files", journey_ids=[1, 2], time_unit="HOUR",
                                  output_path=ROOT + "/{{{{ ds_nodash }}}}")
    EngageLabWebhookStatsOperator(task_id="webhook_csv", journey_ids="1,2", output_path=ROOT,
                                  output_format="csv")
    EngageLabJourneyStatsOperator(task_id="wrong_secret", journey_ids=[1], engagelab_conn_id="el_wrong")
    EngageLabJourneyStatsOperator(task_id="server_errors", journey_ids=[1], engagelab_conn_id="el_flaky")
    EngageLabJourneyStatsOperator(task_id="bad_json", journey_ids=[1], engagelab_conn_id="el_bad_json")
    EngageLabStatsAvailableSensor(task_id="poke_ready", journey_ids=[1, 2], deferrable=False)
    EngageLabStatsAvailableSensor(task_id="reschedule_wrong_secret", journey_ids=[1], mode="reschedule",
                                  deferrable=False, engagelab_conn_id="el_wrong")
    EngageLabStatsAvailableSensor(task_id="deferred_then_401", journey_ids=[1, 2], deferrable=True,
                                  poke_interval=0.2, timeout=60, engagelab_conn_id="el_trigger")
"""


def dump_database(path: Path) -> str:
    """Every row of every table of a SQLite database, as text."""
    lines = []
    with sqlite3.connect(path) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in db.execute(f'SELECT * FROM "{table}"'):
                lines.append(f"{table}: " + " | ".join(
                    v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in row))
    return "\n".join(lines)


@pytest.mark.e2e
def test_no_secret_anywhere_in_a_real_airflow_run(sb, airflow_runner, airflow_home, tmp_path):
    """One dag.test() with every path: stdout/stderr, log files, XComs and the whole metadata DB."""
    with Sandbox(api_key=KEY, api_secret=SECRET, available_through=CUTOFF, failure_rate=1.0) as flaky, \
            Sandbox(api_key=KEY, api_secret=SECRET, available_through=CUTOFF) as bad_json, \
            Sandbox(api_key=KEY, api_secret=SECRET,
                    available_through=datetime(2026, 6, 1, 12, tzinfo=UTC)) as trigger_sb:
        bad_json.inject(*[Fault("truncated")] * 3)
        # the worker's first look is fine but not ready; in the trigger: 500, bad JSON, then 401
        trigger_sb.inject(Fault("hang", seconds=0), Fault("500"), Fault("truncated"),
                          Fault("code_in_200", code=40050))
        env = {
            "AIRFLOW_CONN_ENGAGELAB_DEFAULT": json.dumps(conn_dict(sb, **QUICK)),
            "AIRFLOW_CONN_EL_WRONG": json.dumps(conn_dict(sb, secret=WRONG, **QUICK)),
            "AIRFLOW_CONN_EL_FLAKY": json.dumps(conn_dict(flaky, **QUICK)),
            "AIRFLOW_CONN_EL_BAD_JSON": json.dumps(conn_dict(bad_json, **QUICK)),
            "AIRFLOW_CONN_EL_TRIGGER": json.dumps(conn_dict(trigger_sb, **QUICK)),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "DEBUG",
        }
        airflow_runner.add_dag_source("rel_secrets.py", SECRETS_DAG.format(root=str(tmp_path / "out")))
        result = airflow_runner.run("rel_secrets", logical_date="2026-06-02T00:00:00+00:00", env=env,
                                    check=False)
    states = {task: state for (task, _), state in result.task_states.items()}
    assert states == {
        "journey_xcom": "success", "message_files": "success", "webhook_csv": "success",
        "poke_ready": "success", "wrong_secret": "failed", "server_errors": "failed", "bad_json": "failed",
        "reschedule_wrong_secret": "failed", "deferred_then_401": "failed",
    }, result.log[-5000:]
    log = result.log
    for evidence in ("authorization invalid", "gave up after 3 attempts", "Internal server error",
                     "expected a JSON envelope", "Deferring"):
        assert evidence in log, evidence  # the failing paths really ran, and were logged
    assert trigger_sb.counters()["pending_faults"] == 0  # the trigger went through all of them
    logs = airflow_home / "logs"
    log_files = [p.read_text(errors="replace") for p in logs.rglob("*") if p.is_file()]
    database = dump_database(airflow_home / "airflow.db")
    assert "rel_secrets" in database and "rendered_task_instance_fields: rel_secrets" in database
    # dag.test() only: Airflow's in-process test supervisor (InProcessSupervisorComms.send) logs
    # every message of the task at DEBUG, including the MaskSecret(value=...) messages that
    # *register* the secret and token with the masker. That is Airflow's test harness echoing
    # the registration (a real worker's supervisor does not log it), not a provider leak: only
    # those exact lines are left out.
    assert "[debug" in log  # DEBUG was on
    log = without_mask_echo(log)
    xcoms = json.dumps({str(k): v for k, v in result.xcoms.items()}, default=str)
    texts = [log, plain_text(log), xcoms, database, *log_files, *map(plain_text, log_files)]
    assert find_leaks(texts) == []
