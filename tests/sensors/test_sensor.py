"""EngageLabStatsAvailableSensor in-process: poke, reschedule, defer, execute_complete, errors."""

from __future__ import annotations

import json
import logging
from datetime import date, datetime, timedelta, timezone
from types import SimpleNamespace
from urllib.parse import parse_qs, urlparse

import pendulum
import pytest

from airflow_provider_engagelab.exceptions import (
    EngageLabAuthError,
    EngageLabBadRequestError,
    EngageLabError,
    EngageLabJourneyErrors,
    EngageLabJourneyNotFoundError,
    EngageLabServerError,
    EngageLabValidationError,
)
from airflow_provider_engagelab.sensors.engagelab import EngageLabStatsAvailableSensor
from airflow_provider_engagelab.testing.sandbox import Fault
from airflow_provider_engagelab.triggers.engagelab import EngageLabStatsAvailableTrigger
from tests.sensors.sensor_helpers import KEY, SECRET, leaked, set_connection

try:  # Airflow >= 3.1
    from airflow.sdk.exceptions import AirflowRescheduleException, AirflowSensorTimeout, TaskDeferred
except ImportError:  # Airflow 3.0
    from airflow.exceptions import AirflowRescheduleException, AirflowSensorTimeout, TaskDeferred

BASE = "https://api.test"
URL = f"{BASE}/v1/stats/journey"
DAY = date(2026, 3, 10)
UTC = timezone.utc


def context(tz: str = "UTC", logical_date: datetime | None = datetime(2026, 3, 11, 6, tzinfo=UTC),
            **more):
    """A task context as Airflow 3 gives it to a sensor (only the keys the sensor reads)."""
    ti = SimpleNamespace(get_first_reschedule_date=lambda ctx: None)
    return {"dag": SimpleNamespace(timezone=pendulum.timezone(tz)), "logical_date": logical_date,
            "data_interval_start": None, "data_interval_end": None, "dag_run": None, "ti": ti,
            **more}


def sensor(**kwargs) -> EngageLabStatsAvailableSensor:
    kwargs.setdefault("task_id", "wait")
    kwargs.setdefault("journey_ids", [7, 8])
    kwargs.setdefault("target_date", DAY.isoformat())
    kwargs.setdefault("poke_interval", 0.01)
    kwargs.setdefault("timeout", 30)
    kwargs.setdefault("deferrable", False)
    s = EngageLabStatsAvailableSensor(**kwargs)
    s.hook.sleep = lambda seconds: None  # retries without real waiting
    return s


class FakeApi:
    """requests-mock answer: HOUR rows of DAY up to ``last_hour[journey]``, per-journey errors."""

    def __init__(self, last_hour: dict[int, int], errors: dict[int, int] | None = None):
        self.last_hour = last_hour
        self.errors = errors or {}

    def __call__(self, request, ctx):
        q = parse_qs(urlparse(request.url).query)
        assert q["time_unit"] == ["HOUR"] and q["start_time"] == q["end_time"]
        day = q["start_time"][0]
        data = []
        for jid in (int(x) for x in q["journey_id"][0].split(",")):
            if jid in self.errors:
                data.append({"journey_id": jid, "time_unit": "HOUR", "error_code": self.errors[jid]})
                continue
            detail = [{"time": f"{day} {h:02d}", "entry_count": h, "conversion_count": 0,
                       "completion_count": 0, "early_exit_count": 0, "in_progress_count": 0}
                      for h in range(self.last_hour.get(jid, -1) + 1)]
            data.append({"journey_id": jid, "time_unit": "HOUR", "error_code": 0, "detail": detail})
        return {"code": 0, "message": "success", "data": data}


@pytest.fixture
def api(monkeypatch, requests_mock):
    conn = {"conn_type": "engagelab", "host": BASE, "login": KEY, "password": SECRET,
            "extra": {"max_retries": 1}}
    monkeypatch.setenv("AIRFLOW_CONN_ENGAGELAB_DEFAULT", json.dumps(conn))
    fake = FakeApi({7: 20, 8: 20})
    requests_mock.get(URL, json=fake)
    return fake


# ---------------------------------------------------------------------------- poke, requests-mock
def test_poke_is_false_then_true_as_the_last_hour_appears(api, requests_mock):
    s = sensor()
    assert s.poke(context()) is False
    api.last_hour = {7: 23, 8: 22}
    assert s.poke(context()) is False
    api.last_hour = {7: 23, 8: 23}
    done = s.poke(context())
    assert done and done.xcom_value["ready_journeys"] == [7, 8]
    assert done.xcom_value["last_bucket"] == {"7": "2026-03-10 23", "8": "2026-03-10 23"}
    q = parse_qs(urlparse(requests_mock.request_history[-1].url).query)
    assert q == {"journey_id": ["7,8"], "time_unit": ["HOUR"], "start_time": ["2026-03-10"],
                 "end_time": ["2026-03-10"]}


def test_require_any(api):
    api.last_hour = {7: 23, 8: 3}
    assert not sensor().poke(context())
    done = sensor(require="any").poke(context())
    assert done and done.xcom_value["ready_journeys"] == [7]
    assert done.xcom_value["pending_journeys"] == [8]


def test_custom_check_in_poke_mode_may_be_any_callable(api):
    seen = []
    s = sensor(check=lambda rows, errors: seen.append(len(rows)) or len(rows) >= 40)
    api.last_hour = {7: 10, 8: 10}
    assert not s.poke(context())
    api.last_hour = {7: 20, 8: 20}  # no hour 23 yet, but the check decides
    done = s.poke(context())
    assert done and seen == [22, 42] and done.xcom_value["pending_journeys"] == [7, 8]


def test_custom_check_by_reference(api):
    api.last_hour = {7: 23, 8: 1}
    s = sensor(check="tests.sensors.sensor_helpers:only_journey_7_complete")
    done = s.poke(context())
    assert done and done.xcom_value["check"] == "tests.sensors.sensor_helpers:only_journey_7_complete"


def test_default_target_date_is_the_day_before_the_run_in_the_dag_time_zone(api, requests_mock):
    # 2026-03-10T20:00Z is already 2026-03-11 04:00 in Singapore
    run = datetime(2026, 3, 10, 20, tzinfo=UTC)
    sensor(target_date=None).poke(context(tz="Asia/Singapore", logical_date=run))
    sensor(target_date=None).poke(context(tz="UTC", logical_date=run))
    days = [parse_qs(urlparse(r.url).query)["start_time"][0] for r in requests_mock.request_history]
    assert days == ["2026-03-10", "2026-03-09"]


def test_default_target_date_of_a_daily_data_interval(api, requests_mock):
    ctx = context(logical_date=None, data_interval_start=datetime(2026, 3, 10, tzinfo=UTC),
                  data_interval_end=datetime(2026, 3, 11, tzinfo=UTC))
    sensor(target_date=None).poke(ctx)
    assert parse_qs(urlparse(requests_mock.last_request.url).query)["start_time"] == ["2026-03-10"]


def test_a_future_day_is_an_error_not_a_wait(api, requests_mock):
    tz = "Pacific/Kiritimati"  # UTC+14: its today can be UTC's tomorrow
    today = datetime.now(pendulum.timezone(tz)).date()
    with pytest.raises(EngageLabValidationError, match="target_date=.*after today"):
        sensor(target_date=today + timedelta(days=1)).poke(context(tz=tz))
    assert requests_mock.call_count == 0
    api.last_hour = {}
    assert sensor(target_date=today).poke(context(tz=tz)) is False  # today itself: wait


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"target_date": "2026-02-30"}, "target_date"),
        ({"target_date": "yesterday"}, "target_date"),
        ({"journey_ids": "7,x"}, "journey_ids"),
        ({"journey_ids": []}, "journey_ids"),
    ],
)
def test_bad_parameters_fail_before_any_request(api, requests_mock, kwargs, param):
    with pytest.raises(EngageLabValidationError, match=param):
        sensor(**kwargs).execute(context())
    assert requests_mock.call_count == 0


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [({"journey_ids": "7,-8"}, "journey_ids"), ({"journey_ids": "[7, 'x']"}, "journey_ids"),
     ({"target_date": "2026-3-10"}, "target_date"), ({"stats_type": "visits"}, "stats_type"),
     ({"require": "most"}, "require"),
     ({"check": 42}, "check"), ({"check": lambda r, e: True, "deferrable": True}, "check")],
)
def test_bad_settings_fail_when_the_dag_is_parsed(kwargs, param):
    with pytest.raises(EngageLabValidationError, match=param):
        sensor(**kwargs)


def test_templates_are_checked_when_the_task_runs(api, requests_mock):
    s = sensor(journey_ids="{{ params.ids }}", target_date="{{ ds }}")  # no error at parse time
    s.journey_ids, s.target_date = "7,x", "2026-03-10"  # what a bad template renders to
    with pytest.raises(EngageLabValidationError, match="journey_ids"):
        s.poke(context())
    assert requests_mock.call_count == 0


def test_templated_fields_render(api, requests_mock):
    from airflow.sdk import DAG

    with DAG("t", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
        s = sensor(journey_ids="{{ params.ids }}", target_date="{{ ds }}")
    assert set(s.template_fields) == {"journey_ids", "target_date"}
    s.render_template_fields({"ds": "2026-03-09", "params": {"ids": [8, 9]}})
    assert s.journey_ids == "[8, 9]"  # a rendered list literal, as the operators accept it
    api.last_hour = {8: 23, 9: 23}
    done = s.poke(context())
    assert done and done.xcom_value["target_date"] == "2026-03-09"
    assert done.xcom_value["ready_journeys"] == [8, 9]


# ---------------------------------------------------------------------------- hard errors
@pytest.mark.parametrize(
    ("answer", "cls"),
    [
        ({"status_code": 400, "json": {"code": 50202, "message": "Journey does not exist."}},
         EngageLabJourneyNotFoundError),
        ({"status_code": 401, "json": {"code": 40050, "message": "authorization invalid"}},
         EngageLabAuthError),
        ({"status_code": 400, "json": {"code": 40002, "message": "Invalid business parameter"}},
         EngageLabBadRequestError),
        ({"status_code": 200, "json": {"code": 50217, "message": "Invalid time range."}},
         EngageLabBadRequestError),
    ],
)
def test_whole_call_errors_fail_at_once_in_poke_mode(api, requests_mock, answer, cls):
    requests_mock.get(URL, **answer)
    with pytest.raises(cls):
        sensor(timeout=3600).execute(context())
    assert requests_mock.call_count == 1


@pytest.mark.parametrize(("code", "cls"), [(50202, EngageLabJourneyNotFoundError),
                                           (50221, EngageLabBadRequestError)])
def test_per_journey_errors_fail_at_once(api, requests_mock, code, cls):
    api.errors = {8: code}
    with pytest.raises(cls, match="waiting cannot fix") as err:
        sensor(timeout=3600, require="any").execute(context())
    assert err.value.code == code and requests_mock.call_count == 1


def test_several_kinds_of_journey_errors_are_listed_together(api):
    api.errors = {7: 50202, 8: 50221}
    with pytest.raises(EngageLabJourneyErrors) as err:
        sensor().poke(context())
    assert {e["journey_id"] for e in err.value.errors} == {7, 8}


# ---------------------------------------------------------------------------- sandbox
def test_poke_follows_the_sandbox_cutoff(sandbox_conn):
    sb = sandbox_conn
    sb.configure(available_through=datetime(2026, 3, 10, 23, tzinfo=UTC))  # hours 00..22
    s = sensor(journey_ids="101,102")
    assert s.poke(context()) is False
    sb.configure(available_through=datetime(2026, 3, 11, tzinfo=UTC))
    done = s.poke(context())
    assert done.xcom_value["ready_journeys"] == [101, 102] and done.xcom_value["rows_seen"] == 48


def test_missing_journey_in_the_sandbox_fails_at_once(sandbox_conn):
    sandbox_conn.configure(missing_journeys={102})
    with pytest.raises(EngageLabJourneyNotFoundError, match="102"):
        sensor(journey_ids="101,102", timeout=3600).execute(context())
    assert sandbox_conn.counters()["requests"] == 1


def test_transient_errors_are_not_yet_until_they_pass(sandbox_conn, capsys):
    sb = sandbox_conn
    sb.configure(available_through=datetime(2026, 3, 11, tzinfo=UTC))
    sb.inject(*[Fault("500")] * 3)  # one look: the first attempt and both retries fail
    s = sensor(journey_ids=[101])
    assert s.poke(context()) is False
    assert "not readable yet, counted as not ready" in capsys.readouterr().out
    assert s.poke(context())
    sb.inject(*[Fault("429")] * 3, Fault("drop"), Fault("drop"), Fault("drop"))
    summary = s.execute(context())  # poke mode: two "not yet" looks, then ready
    assert summary["ready"] is True and sb.counters()["requests"] >= 9


def test_poke_mode_times_out(sandbox_conn):
    sandbox_conn.configure(available_through=datetime(2026, 3, 10, 12, tzinfo=UTC))
    with pytest.raises(AirflowSensorTimeout):
        sensor(journey_ids=[101], timeout=0.2, poke_interval=0.05).execute(context())
    assert sandbox_conn.counters()["requests"] >= 2


def test_soft_fail_turns_a_transient_timeout_into_a_skip(sandbox_conn):
    try:
        from airflow.sdk.exceptions import AirflowSkipException
    except ImportError:
        from airflow.exceptions import AirflowSkipException
    sandbox_conn.configure(available_through=datetime(2026, 3, 10, 12, tzinfo=UTC))
    with pytest.raises(AirflowSkipException):
        sensor(journey_ids=[101], timeout=0.1, poke_interval=0.05, soft_fail=True).execute(context())


def test_reschedule_mode_frees_the_slot_until_ready(sandbox_conn):
    sb = sandbox_conn
    sb.configure(available_through=datetime(2026, 3, 10, 22, tzinfo=UTC))
    s = sensor(journey_ids=[101], mode="reschedule", poke_interval=60)
    before = datetime.now(UTC)
    with pytest.raises(AirflowRescheduleException) as err:
        s.execute(context())
    assert err.value.reschedule_date >= before + timedelta(seconds=59)
    sb.configure(available_through=datetime(2026, 3, 11, tzinfo=UTC))
    assert s.execute(context())["ready_journeys"] == [101]


def test_wrong_secret_fails_without_leaking(sandbox_conn, monkeypatch, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    conn = {**sandbox_conn.airflow_connection(), "password": SECRET + "x"}
    monkeypatch.setenv("AIRFLOW_CONN_ENGAGELAB_DEFAULT", json.dumps(conn))
    with pytest.raises(EngageLabAuthError) as err:
        sensor(journey_ids=[101]).execute(context())
    set_connection(monkeypatch, sandbox_conn)
    sandbox_conn.configure(available_through=datetime(2026, 3, 11, tzinfo=UTC))
    summary = sensor(journey_ids=[101]).execute(context())
    captured = capsys.readouterr()
    assert "authorization invalid" in captured.out + str(err.value)  # the logs were captured
    texts = [str(err.value), repr(err.value), caplog.text, json.dumps(summary), captured.out,
             captured.err]
    texts += [str(a) for rec in caplog.records for a in (rec.args or ())]
    assert not any(leaked(t) for t in texts)
    assert not any(SECRET in t for t in texts)


# ---------------------------------------------------------------------------- deferrable
def test_deferrable_defers_to_the_trigger_when_not_ready(sandbox_conn):
    sandbox_conn.configure(available_through=datetime(2026, 3, 10, 22, tzinfo=UTC))
    s = sensor(journey_ids="101,102", deferrable=True, poke_interval=30, timeout=600,
               require="any", engagelab_conn_id="engagelab_default")
    before = datetime.now(UTC)
    with pytest.raises(TaskDeferred) as err:
        s.execute(context())
    deferred = err.value
    assert deferred.method_name == "execute_complete"
    assert deferred.timeout == timedelta(seconds=600 + 120)
    assert isinstance(deferred.trigger, EngageLabStatsAvailableTrigger)
    classpath, kwargs = deferred.trigger.serialize()
    assert classpath == "airflow_provider_engagelab.triggers.engagelab.EngageLabStatsAvailableTrigger"
    deadline = datetime.fromisoformat(kwargs.pop("timeout_at"))
    assert before + timedelta(seconds=600) <= deadline <= datetime.now(UTC) + timedelta(seconds=600)
    assert kwargs == {"journey_ids": [101, 102], "target_date": "2026-03-10", "stats_type": "journey",
                      "engagelab_conn_id": "engagelab_default", "require": "any",
                      "poke_interval": 30.0, "check": None}
    assert sandbox_conn.counters()["requests"] == 1  # one look on the worker first


def test_deferrable_returns_at_once_when_already_ready(sandbox_conn):
    sandbox_conn.configure(available_through=datetime(2026, 3, 11, tzinfo=UTC))
    summary = sensor(journey_ids=[101], deferrable=True).execute(context())
    assert summary["ready"] is True


def test_deferrable_fails_on_the_worker_for_hard_errors(sandbox_conn):
    sandbox_conn.configure(missing_journeys={102})
    with pytest.raises(EngageLabJourneyNotFoundError):
        sensor(journey_ids="101,102", deferrable=True).execute(context())


def test_deferrable_passes_an_importable_check_by_reference(sandbox_conn):
    from tests.sensors.sensor_helpers import only_journey_7_complete

    sandbox_conn.configure(available_through=datetime(2026, 3, 10, 22, tzinfo=UTC))
    with pytest.raises(TaskDeferred) as err:
        sensor(journey_ids=[7], deferrable=True, check=only_journey_7_complete).execute(context())
    assert err.value.trigger.serialize()[1]["check"] == "tests.sensors.sensor_helpers:only_journey_7_complete"


# ---------------------------------------------------------------------------- execute_complete
def test_execute_complete_success_returns_the_summary():
    summary = {"ready": True, "ready_journeys": [7]}
    event = {"status": "success", "target_date": "2026-03-10", "summary": summary, "polls": 3}
    assert sensor().execute_complete(context(), event) == summary


@pytest.mark.parametrize(
    ("error", "cls"),
    [
        ({"error_class": "EngageLabJourneyNotFoundError", "message": "journey 8 does not exist",
          "code": 50202, "http_status": 400}, EngageLabJourneyNotFoundError),
        ({"error_class": "EngageLabAuthError", "message": "authorization invalid", "code": 40050,
          "http_status": 401}, EngageLabAuthError),
        ({"error_class": "EngageLabServerError", "message": "boom", "code": -1,
          "http_status": 500}, EngageLabServerError),
        ({"error_class": "ValueError", "message": "my check broke"}, EngageLabError),
    ],
)
def test_execute_complete_error_raises_the_right_class(error, cls):
    event = {"status": "error", "target_date": "2026-03-10", "error": error, "summary": None}
    with pytest.raises(cls) as err:
        sensor().execute_complete(context(), event)
    assert type(err.value) is cls and error["message"] in str(err.value)
    assert err.value.code == error.get("code")


def test_execute_complete_timeout_raises_sensor_timeout():
    event = {"status": "timeout", "target_date": "2026-03-10", "summary": None, "last_error": None,
             "message": "not ready by the deadline"}
    with pytest.raises(AirflowSensorTimeout, match="not ready by the deadline"):
        sensor().execute_complete(context(), event)


def test_execute_complete_unknown_event():
    with pytest.raises(EngageLabError, match="unexpected event"):
        sensor().execute_complete(context(), {"status": "weird"})
    with pytest.raises(EngageLabError, match="unexpected event"):
        sensor().execute_complete(context(), None)


def test_resume_after_timeout_with_soft_fail_skips():
    try:
        from airflow.sdk.exceptions import AirflowSkipException
    except ImportError:
        from airflow.exceptions import AirflowSkipException
    event = {"status": "timeout", "message": "late", "summary": None}
    with pytest.raises(AirflowSkipException):
        sensor(soft_fail=True).resume_execution("execute_complete", {"event": event}, context())

