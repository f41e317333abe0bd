"""Bad input: one table across the hooks, the operators, the sensor and the trigger.

Every row is one bad value (journey IDs, dates, ranges, time units, stats types, formats,
policies, output paths, lookback, connection fields and tuning extras), given where a user
gives it: to the sync or async hook, to an operator when the DAG is parsed or (templated)
when the task runs, to the sensor (parse time, poke time, deferrable first look), to the
trigger. Each must fail with a clear error that names the parameter (and shows the value
where it is not a secret), and the sandbox must have seen zero HTTP requests.

Rows added for the bugs this table found (fixed in f4c3017): an ID beyond the API's long, a
port out of range, credentials or a query in the host, unknown extras (sent as headers by
HttpHook), huge tuning numbers, lookbacks before year 1, an unknown output scheme.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pendulum
import pytest
from reliability_helpers import KEY, SECRET, UTC, conn_dict, leaks

try:  # Airflow >= 3.1
    from airflow.sdk.exceptions import AirflowNotFoundException
except ImportError:  # Airflow 3.0
    from airflow.exceptions import AirflowNotFoundException  # type: ignore[no-redef]

from airflow_provider_engagelab.core.readiness import error_from_payload
from airflow_provider_engagelab.exceptions import EngageLabError, EngageLabValidationError
from airflow_provider_engagelab.hooks.engagelab import EngageLabAsyncHook, EngageLabHook
from airflow_provider_engagelab.operators.engagelab import (
    EngageLabJourneyStatsOperator,
    EngageLabStatsOperator,
)
from airflow_provider_engagelab.sensors.engagelab import EngageLabStatsAvailableSensor
from airflow_provider_engagelab.triggers.engagelab import EngageLabStatsAvailableTrigger


class Reported(Exception):
    """A failure a call reports instead of raising (``test_connection`` returns its message)."""


@dataclass
class Env:
    sb: Any
    monkeypatch: pytest.MonkeyPatch
    tmp_path: Any

    def conn(self, **fields: Any) -> None:
        """Point ``engagelab_default`` at the sandbox with some fields replaced."""
        extra = fields.pop("extra", {"max_retries": 1, "max_retry_wait": 0.01})
        conn = {**conn_dict(self.sb), **fields}
        if extra is not None:
            conn["extra"] = extra
        self.monkeypatch.setenv("AIRFLOW_CONN_ENGAGELAB_DEFAULT", json.dumps(conn))

    @property
    def port(self) -> int:
        return self.sb.port


GOOD = {"journey_ids": [1, 2], "time_unit": "DAY", "start_time": "2026-05-01", "end_time": "2026-05-02"}


def hook_call(**bad: Any) -> Callable[[Env], Any]:
    def run(env: Env) -> Any:
        args = {**GOOD, **bad}
        stats_type = args.pop("stats_type", "journey")
        return EngageLabHook().get_stats(stats_type, **args)

    return run


def async_hook_call(**bad: Any) -> Callable[[Env], Any]:
    def run(env: Env) -> Any:
        args = {**GOOD, **bad}
        return asyncio.run(EngageLabAsyncHook().get_stats(args.pop("stats_type", "journey"), **args))

    return run


def with_conn(call: Callable[[Env], Any], **fields: Any) -> Callable[[Env], Any]:
    def run(env: Env) -> Any:
        env.conn(**{k: (v.format(port=env.port) if isinstance(v, str) else v) for k, v in fields.items()})
        return call(env)

    return run


def with_uri_conn(call: Callable[[Env], Any], query: str) -> Callable[[Env], Any]:
    """``engagelab_default`` in the URI form (scheme of the host in the path), with ``query``."""

    def run(env: Env) -> Any:
        uri = f"engagelab://{KEY}:{SECRET}@127.0.0.1:{env.port}/http?{query}"
        env.monkeypatch.setenv("AIRFLOW_CONN_ENGAGELAB_DEFAULT", uri)
        return call(env)

    return run


def call_test_connection(env: Env) -> Any:
    ok, message = EngageLabHook().test_connection()
    assert not ok
    raise Reported(message)


def op_parse(cls: type = EngageLabStatsOperator, **bad: Any) -> Callable[[Env], Any]:
    def run(env: Env) -> Any:
        kwargs = {"task_id": "t", "journey_ids": [1, 2], **bad}
        if cls is EngageLabStatsOperator:
            kwargs.setdefault("stats_type", "journey")
        return cls(**kwargs)

    return run


def op_run(
    rendered: dict[str, Any], context: dict[str, Any] | None = None, **given: Any
) -> Callable[[Env], Any]:
    """An operator built with templates (fine at parse time) whose rendered values are bad."""

    def run(env: Env) -> Any:
        kwargs = {"task_id": "t", "stats_type": "journey", "journey_ids": "{{ params.ids }}",
                  "start_time": "{{ ds }}", "end_time": "{{ ds }}", **given}
        op = EngageLabStatsOperator(**kwargs)
        values = {"journey_ids": [1, 2], "start_time": "2026-05-01", "end_time": "2026-05-01", **rendered}
        for name, value in values.items():  # what rendering the templates produced
            setattr(op, name, value)
        return op.execute(context or {})

    return run


def sensor_context(tz: str = "UTC") -> dict[str, Any]:
    ti = SimpleNamespace(get_first_reschedule_date=lambda ctx: None)
    return {"dag": SimpleNamespace(timezone=pendulum.timezone(tz)),
            "logical_date": datetime(2026, 5, 2, 6, tzinfo=UTC), "data_interval_start": None,
            "data_interval_end": None, "dag_run": None, "ti": ti}


def sensor_parse(**bad: Any) -> Callable[[Env], Any]:
    def run(env: Env) -> Any:
        kwargs = {"task_id": "wait", "journey_ids": [1, 2], "target_date": "2026-05-01", "deferrable": False,
                  "poke_interval": 0.01, "timeout": 5, **bad}
        return EngageLabStatsAvailableSensor(**kwargs)

    return run


def sensor_poke(rendered: dict[str, Any], deferrable: bool = False) -> Callable[[Env], Any]:
    def run(env: Env) -> Any:
        sensor = EngageLabStatsAvailableSensor(
            task_id="wait", journey_ids="{{ params.ids }}", target_date="{{ ds }}", deferrable=deferrable,
            poke_interval=0.01, timeout=5,
        )
        sensor.journey_ids, sensor.target_date = [1, 2], "2026-05-01"
        for name, value in rendered.items():
            setattr(sensor, name, value)
        return sensor.execute(sensor_context()) if deferrable else sensor.poke(sensor_context())

    return run


def trigger_new(**bad: Any) -> Callable[[Env], Any]:
    def run(env: Env) -> Any:
        kwargs = {"journey_ids": [1, 2], "target_date": "2026-05-01", "poke_interval": 0.01,
                  "timeout_at": (datetime.now(UTC) + timedelta(seconds=10)).isoformat(), **bad}
        return EngageLabStatsAvailableTrigger(**kwargs)

    return run


def trigger_run(env: Env) -> Any:
    trigger = trigger_new()(env)

    async def first_event() -> dict[str, Any]:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("no event")

    event = asyncio.run(asyncio.wait_for(first_event(), 30))
    assert event["status"] == "error", event
    raise error_from_payload(event["error"])


QUICK = {"max_retries": 1, "max_retry_wait": 0.01}
AirflowNotFound = AirflowNotFoundException
TOMORROW = date.today() + timedelta(days=2)
V = EngageLabValidationError


# (id, call, words the message must contain, expected exception class)
TABLE: list[Any] = [
    # ---------------------------------------------------------------- hook: IDs
    ("hook-ids-empty-list", hook_call(journey_ids=[]), ["journey_ids", "at least one"], V),
    ("hook-ids-not-digits", hook_call(journey_ids="1,x"), ["journey_ids", "'x'"], V),
    ("hook-ids-empty-item", hook_call(journey_ids="1,,2"), ["journey_ids", "''"], V),
    ("hook-ids-zero", hook_call(journey_ids=[0]), ["journey_ids", "0", "> 0"], V),
    ("hook-ids-negative", hook_call(journey_ids=[-3]), ["journey_ids", "-3"], V),
    ("hook-ids-bool", hook_call(journey_ids=[True]), ["journey_ids", "True", "boolean"], V),
    ("hook-ids-float", hook_call(journey_ids=[1.5]), ["journey_ids", "1.5"], V),
    ("hook-ids-none", hook_call(journey_ids=None), ["journey_ids", "None"], V),
    ("hook-ids-mapping", hook_call(journey_ids={"a": 1}), ["journey_ids"], V),
    ("hook-ids-beyond-a-long", hook_call(journey_ids=[2**63]), ["journey_ids", str(2**63)], V),
    # ---------------------------------------------------------------- hook: dates and ranges
    ("hook-start-not-a-date", hook_call(start_time="2026-02-30"), ["start_time", "2026-02-30"], V),
    ("hook-start-slashes", hook_call(start_time="2026/05/01"), ["start_time", "2026/05/01"], V),
    ("hook-start-none", hook_call(start_time=None), ["start_time", "None"], V),
    ("hook-end-int", hook_call(end_time=20260502), ["end_time", "20260502"], V),
    ("hook-end-before-start", hook_call(start_time="2026-05-03", end_time="2026-05-01"),
     ["end_time", "2026-05-01", "start_time=2026-05-03"], V),
    # ---------------------------------------------------------------- hook: time unit, stats type
    ("hook-unit-week", hook_call(time_unit="WEEK"), ["time_unit", "'WEEK'"], V),
    ("hook-unit-none", hook_call(time_unit=None), ["time_unit", "None"], V),
    ("hook-type-clicks", hook_call(stats_type="clicks"), ["stats_type", "'clicks'"], V),
    ("hook-type-none", hook_call(stats_type=None), ["stats_type"], V),
    ("async-hook-unit-minute", async_hook_call(time_unit="MINUTE"), ["time_unit", "'MINUTE'"], V),
    ("async-hook-ids-bad", async_hook_call(journey_ids="7;8"), ["journey_ids", "'7;8'"], V),
    # ---------------------------------------------------------------- connection fields
    ("conn-host-without-scheme", with_conn(hook_call(), host="127.0.0.1:{port}"), ["host", "https://"], V),
    ("conn-host-ftp", with_conn(hook_call(), host="ftp://127.0.0.1:{port}"), ["host", "ftp://"], V),
    ("conn-host-no-name", with_conn(hook_call(), host="https://"), ["host"], V),
    ("conn-login-empty", with_conn(hook_call(), login=""), ["login", "API Key"], V),
    ("conn-login-blank", with_conn(hook_call(), login="   "), ["login"], V),
    ("conn-password-empty", with_conn(hook_call(), password=""), ["password", "API Secret"], V),
    ("conn-password-missing", with_conn(hook_call(), password=None), ["password"], V),
    # Airflow 3.0/3.1 refuse to build such a Connection and call the conn_id "not defined"; the
    # hooks recognise the refused AIRFLOW_CONN_ variable and raise what 3.2+ raise.
    ("conn-extra-not-an-object", with_conn(hook_call(), extra=[1, 2]), ["extra", "JSON object"], V),
    ("conn-extra-json-text-not-an-object", with_conn(hook_call(), extra="[1, 2]"),
     ["extra", "JSON object"], V),
    ("conn-extra-not-an-object-via-async-hook", with_conn(async_hook_call(), extra=[1, 2]),
     ["extra", "JSON object"], V),
    ("conn-extra-not-an-object-in-uri", with_uri_conn(hook_call(), "__extra__=%5B1%2C2%5D"),
     ["extra", "JSON object"], V),
    # ... while a conn_id that is really not defined stays Airflow's own error
    ("conn-not-defined", lambda env: EngageLabHook("engagelab_nowhere").get_stats("journey", **GOOD),
     ["engagelab_nowhere"], AirflowNotFound),
    ("conn-timeout-zero", with_conn(hook_call(), extra={"timeout": 0}), ["timeout", "0"], V),
    ("conn-timeout-text", with_conn(hook_call(), extra={"timeout": "5s"}), ["timeout", "'5s'"], V),
    ("conn-timeout-nan", with_conn(hook_call(), extra={"timeout": "nan"}), ["timeout", "'nan'"], V),
    ("conn-timeout-bool", with_conn(hook_call(), extra={"timeout": True}), ["timeout", "True"], V),
    ("conn-max-retries-negative", with_conn(hook_call(), extra={"max_retries": -1}),
     ["max_retries", "-1"], V),
    ("conn-max-retries-fraction", with_conn(hook_call(), extra={"max_retries": 1.5}),
     ["max_retries", "1.5"], V),
    ("conn-max-retry-wait-negative", with_conn(hook_call(), extra={"max_retry_wait": -1}),
     ["max_retry_wait", "-1"], V),
    ("conn-concurrency-zero", with_conn(hook_call(), extra={"max_concurrent_requests": 0}),
     ["max_concurrent_requests", "0"], V),
    ("conn-rate-text", with_conn(hook_call(), extra={"requests_per_second": "fast"}),
     ["requests_per_second", "'fast'"], V),
    ("conn-bad-via-async-hook", with_conn(async_hook_call(), host="127.0.0.1:{port}"), ["host"], V),
    ("conn-bad-via-test-connection", with_conn(call_test_connection, host="127.0.0.1:{port}"),
     ["host", "https://"], Reported),
    ("conn-empty-secret-via-test-connection", with_conn(call_test_connection, password=""),
     ["password"], Reported),
    ("conn-host-port-out-of-range", with_conn(hook_call(), host="http://127.0.0.1:99999"),
     ["host", "99999"], V),
    ("conn-host-with-credentials", with_conn(hook_call(), host="http://user:pw@127.0.0.1:{port}"),
     ["host", "user:password"], V),
    ("conn-host-with-query", with_conn(hook_call(), host="http://127.0.0.1:{port}/?region=sg"),
     ["host", "?region=sg"], V),
    ("conn-extra-unknown-key", with_conn(hook_call(), extra={"max_retires": 3, **QUICK}),
     ["max_retires"], V),
    ("conn-extra-unknown-string-key", with_conn(hook_call(), extra={"X-Debug": "1", **QUICK}),
     ["X-Debug"], V),
    ("conn-timeout-huge", with_conn(hook_call(), extra={"timeout": 1e300, **QUICK}),
     ["timeout", "1e+300"], V),
    ("conn-max-retries-huge", with_conn(hook_call(), extra={"max_retries": 10**9}), ["max_retries"], V),
    # ---------------------------------------------------------------- operators, DAG parse time
    ("op-parse-stats-type", op_parse(stats_type="clicks"), ["stats_type", "'clicks'"], V),
    ("op-parse-format", op_parse(output_format="xml"), ["output_format", "'xml'"], V),
    ("op-parse-policy", op_parse(on_journey_error="ignore"), ["on_journey_error", "'ignore'"], V),
    ("op-parse-lookback-negative", op_parse(lookback_days=-1), ["lookback_days", "-1"], V),
    ("op-parse-lookback-text", op_parse(lookback_days="2"), ["lookback_days", "'2'"], V),
    ("op-parse-xcom-rows-zero", op_parse(max_xcom_rows=0), ["max_xcom_rows", "0"], V),
    ("op-parse-time-unit", op_parse(time_unit="week"), ["time_unit", "'week'"], V),
    ("op-parse-date", op_parse(start_time="2026-13-01", end_time="2026-13-02"),
     ["start_time", "2026-13-01"], V),
    ("op-parse-ids-list-literal", op_parse(journey_ids="[1, 'a']"), ["journey_ids"], V),
    ("op-parse-ids-broken-literal", op_parse(journey_ids="[1, 2"), ["journey_ids", "list literal"], V),
    ("op-parse-path-relative", op_parse(output_path="relative/dir"), ["output_path", "absolute"], V),
    ("op-parse-path-no-location", op_parse(output_path="s3://"), ["output_path", "'s3://'"], V),
    ("op-parse-path-blank", op_parse(output_path="  "), ["output_path"], V),
    ("op-parse-subclass-stats-type", op_parse(EngageLabJourneyStatsOperator, stats_type="message"),
     ["stats_type"], TypeError),
    ("op-partial-format", lambda env: EngageLabStatsOperator.partial(
        task_id="m", stats_type="journey", output_format="xml"), ["output_format", "'xml'"], V),
    ("op-parse-lookback-huge", op_parse(lookback_days=10**6), ["lookback_days", str(10**6)], V),
    ("op-parse-delta-no-path", op_parse(output_format="delta"), ["output_path=None", "delta"], V),
    ("op-parse-delta-scheme", op_parse(output_format="delta", output_path="gs://lake/x"),
     ["output_path", "gs://", "delta"], V),
    # ---------------------------------------------------------------- operators, run time (rendered)
    ("op-run-ids", op_run({"journey_ids": "1,abc"}), ["journey_ids", "'abc'"], V),
    ("op-run-ids-literal", op_run({"journey_ids": "[0, 1]"}), ["journey_ids", "0"], V),
    ("op-run-unit", op_run({"time_unit": "MINUTE"}), ["time_unit", "'MINUTE'"], V),
    ("op-run-date", op_run({"start_time": "2026-06-31", "end_time": "2026-07-01"}),
     ["start_time", "2026-06-31"], V),
    ("op-run-range", op_run({"start_time": "2026-05-03", "end_time": "2026-05-01"}), ["end_time"], V),
    ("op-run-only-start", op_run({"end_time": None}), ["end_time", "together"], V),
    ("op-run-no-window", op_run({"start_time": None, "end_time": None}), ["start_time", "end_time"], V),
    ("op-run-path", op_run({"output_path": "relative"}, output_path="{{ var.value.root }}"),
     ["output_path", "'relative'"], V),
    ("op-run-bad-conn", with_conn(op_run({}), host="127.0.0.1:{port}"), ["host"], V),
    ("op-run-delta-scheme", op_run({"output_path": "gs://lake/x"}, output_path="{{ var.value.root }}",
                                   output_format="delta"), ["output_path", "gs://", "delta"], V),
    pytest.param(
        "op-run-path-unknown-scheme",
        op_run({"output_path": "foo://bucket/x"}, output_path="{{ var.value.root }}"),
        ["output_path", "foo"], V,
        id="op-run-path-unknown-scheme",
    ),
    ("op-run-lookback-before-year-1",
     op_run({"start_time": "0001-01-02", "end_time": "0001-01-02"}, lookback_days=5),
     ["lookback_days", "year 1"], V),
    # ---------------------------------------------------------------- sensor and trigger
    ("sensor-parse-require", sensor_parse(require="most"), ["require", "'most'"], V),
    ("sensor-parse-ids", sensor_parse(journey_ids="abc"), ["journey_ids", "'abc'"], V),
    ("sensor-parse-date", sensor_parse(target_date="yesterday"), ["target_date", "'yesterday'"], V),
    ("sensor-parse-stats-type", sensor_parse(stats_type="clicks"), ["stats_type", "'clicks'"], V),
    ("sensor-parse-check-lambda-deferrable", sensor_parse(check=lambda rows, errors: True, deferrable=True),
     ["check", "deferrable"], V),
    ("sensor-poke-future-date", sensor_poke({"target_date": TOMORROW.isoformat()}),
     ["target_date", TOMORROW.isoformat(), "after today"], V),
    ("sensor-poke-ids", sensor_poke({"journey_ids": "1;2"}), ["journey_ids", "'1;2'"], V),
    ("sensor-poke-empty-secret", with_conn(sensor_poke({}), password=""), ["password"], V),
    ("sensor-deferrable-bad-host", with_conn(sensor_poke({}, deferrable=True), host="127.0.0.1:{port}"),
     ["host"], V),
    ("trigger-poke-interval", trigger_new(poke_interval=-1), ["poke_interval", "-1"], V),
    ("trigger-naive-deadline", trigger_new(timeout_at="2026-05-02T00:00:00"), ["timeout_at"], V),
    ("trigger-date", trigger_new(target_date="2026-13-01"), ["target_date", "2026-13-01"], V),
    ("trigger-run-empty-secret", with_conn(trigger_run, password=""), ["password"], V),
]


def _id(row: Any) -> str:  # pytest.param() sets are tuples too
    return row.id if hasattr(row, "marks") else row[0]


@pytest.mark.parametrize(("name", "call", "words", "cls"), TABLE, ids=[_id(r) for r in TABLE])
def test_bad_input_fails_clearly_before_any_request(sb, monkeypatch, tmp_path, name, call, words, cls):
    env = Env(sb, monkeypatch, tmp_path)
    with pytest.raises(cls) as err:
        call(env)
    message = str(err.value)
    for word in words:
        assert word in message, message
    if cls is V:
        assert isinstance(err.value, EngageLabError)
    assert leaks(message) == []
    assert sb.counters()["requests"] == 0, f"{name}: the sandbox saw a request"


def test_the_table_is_big_enough():
    assert len(TABLE) >= 30
