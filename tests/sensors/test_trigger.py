"""EngageLabStatsAvailableTrigger with asyncio against the sandbox: events, deadline, serialize()."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone

import pytest

from airflow_provider_engagelab.core.readiness import error_from_payload
from airflow_provider_engagelab.exceptions import (
    EngageLabAuthError,
    EngageLabJourneyNotFoundError,
    EngageLabValidationError,
)
from airflow_provider_engagelab.triggers.engagelab import EngageLabStatsAvailableTrigger
from tests.sensors.sensor_helpers import SECRET, leaked

#: The module of the custom checks, as a reference the trigger imports.
HELPERS = "tests.sensors.sensor_helpers"

UTC = timezone.utc
FULL_DAY = datetime(2026, 3, 11, tzinfo=UTC)  # 2026-03-10 available through hour 23
PART_DAY = datetime(2026, 3, 10, 21, tzinfo=UTC)  # through hour 20


def trigger(**kwargs) -> EngageLabStatsAvailableTrigger:
    kwargs.setdefault("journey_ids", [101, 102])
    kwargs.setdefault("target_date", "2026-03-10")
    kwargs.setdefault("poke_interval", 0.05)
    kwargs.setdefault("timeout_at", (datetime.now(UTC) + timedelta(seconds=30)).isoformat())
    return EngageLabStatsAvailableTrigger(**kwargs)


async def events(t: EngageLabStatsAvailableTrigger, timeout: float = 30) -> list[dict]:
    """All events the trigger yields (it must yield exactly one and stop)."""
    async def collect():
        return [e.payload async for e in t.run()]

    return await asyncio.wait_for(collect(), timeout)


async def test_ready_at_the_first_look(sandbox_conn):
    sandbox_conn.configure(available_through=FULL_DAY)
    [event] = await events(trigger())
    assert event["status"] == "success" and event["polls"] == 1
    assert event["summary"]["ready_journeys"] == [101, 102]
    assert event["summary"]["last_bucket"] == {"101": "2026-03-10 23", "102": "2026-03-10 23"}
    json.dumps(event)


async def test_success_once_the_cutoff_moves(sandbox_conn):
    sb = sandbox_conn
    sb.configure(available_through=PART_DAY)

    async def move_cutoff():
        while sb.counters()["requests"] < 3:
            await asyncio.sleep(0.01)
        sb.configure(available_through=FULL_DAY)

    mover = asyncio.create_task(move_cutoff())
    [event] = await events(trigger())
    await mover
    assert event["status"] == "success" and event["polls"] >= 4
    assert sb.counters()["requests"] == event["polls"]


async def test_timeout_event_reports_the_last_look(sandbox_conn):
    sandbox_conn.configure(available_through=PART_DAY)
    deadline = datetime.now(UTC) + timedelta(seconds=0.3)
    [event] = await events(trigger(timeout_at=deadline.isoformat()))
    assert event["status"] == "timeout" and event["polls"] >= 2
    assert event["summary"]["pending_journeys"] == [101, 102]
    assert event["summary"]["last_bucket"]["101"] == "2026-03-10 20"
    assert "were not ready by the sensor's deadline" in event["message"]
    assert "101 (last bucket 2026-03-10 20)" in event["message"]


async def test_a_deadline_already_past_still_gets_one_look(sandbox_conn):
    sandbox_conn.configure(available_through=FULL_DAY)
    past = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    [event] = await events(trigger(timeout_at=past))
    assert event["status"] == "success"
    sandbox_conn.configure(available_through=PART_DAY)
    [event] = await events(trigger(timeout_at=past))
    assert event["status"] == "timeout" and event["polls"] == 1


async def test_unknown_journey_is_an_error_event_at_once(sandbox_conn):
    sandbox_conn.configure(available_through=PART_DAY, missing_journeys={102})
    [event] = await events(trigger())
    assert event["status"] == "error" and event["polls"] == 1
    err = error_from_payload(event["error"])
    assert isinstance(err, EngageLabJourneyNotFoundError) and err.code == 50202 and "102" in str(err)


async def test_whole_call_unknown_journey_is_an_error_event(sandbox_conn):
    sandbox_conn.configure(missing_journeys={102}, missing_journey_mode="whole_call")
    [event] = await events(trigger())
    assert event["status"] == "error"
    assert event["error"]["error_class"] == "EngageLabJourneyNotFoundError"
    assert event["error"]["http_status"] == 400


async def test_bad_credentials_are_an_error_event_without_the_secret(sandbox_conn, monkeypatch, capsys):
    conn = {**sandbox_conn.airflow_connection(), "password": "not-the-" + SECRET}
    monkeypatch.setenv("AIRFLOW_CONN_ENGAGELAB_DEFAULT", json.dumps(conn))
    [event] = await events(trigger())
    assert isinstance(error_from_payload(event["error"]), EngageLabAuthError)
    out = capsys.readouterr()
    for text in (json.dumps(event), out.out, out.err):
        assert SECRET not in text and not leaked(text)


async def test_transient_errors_are_retried_then_counted_as_not_yet(sandbox_conn):
    from airflow_provider_engagelab.testing.sandbox import Fault

    sb = sandbox_conn
    sb.configure(available_through=FULL_DAY)
    sb.inject(*[Fault("500")] * 3, *[Fault("429", retry_after=0)] * 3)  # two looks fail
    [event] = await events(trigger(), timeout=60)
    assert event["status"] == "success" and event["polls"] == 3
    assert sb.counters()["requests"] == 7


async def test_transient_errors_until_the_deadline_end_in_timeout(sandbox_conn):
    from airflow_provider_engagelab.testing.sandbox import Fault

    sandbox_conn.inject(*[Fault("500")] * 100)
    deadline = datetime.now(UTC) + timedelta(seconds=0.5)
    [event] = await events(trigger(timeout_at=deadline.isoformat(), poke_interval=0.01))
    assert event["status"] == "timeout" and event["summary"] is None
    assert "Internal server error" in event["last_error"]


async def test_a_look_that_hangs_past_the_deadline_is_cut(sandbox_conn, monkeypatch):
    import airflow_provider_engagelab.triggers.engagelab as mod
    from airflow_provider_engagelab.testing.sandbox import Fault

    monkeypatch.setattr(mod, "LAST_LOOK_GRACE", 0.2)
    sandbox_conn.inject(Fault("hang", seconds=5))
    deadline = datetime.now(UTC) + timedelta(seconds=0.2)
    [event] = await events(trigger(timeout_at=deadline.isoformat()), timeout=4)
    assert event["status"] == "timeout" and "no answer within" in event["last_error"]


async def test_custom_check_by_reference_runs_in_the_trigger(sandbox_conn):
    sandbox_conn.configure(available_through=FULL_DAY)
    [event] = await events(trigger(journey_ids=[7, 8], check=f"{HELPERS}:only_journey_7_complete"))
    assert event["status"] == "success"
    assert event["summary"]["check"] == f"{HELPERS}:only_journey_7_complete"


async def test_a_custom_check_that_raises_is_an_error_event(sandbox_conn):
    sandbox_conn.configure(available_through=FULL_DAY)
    [event] = await events(trigger(check=f"{HELPERS}:always_fails"))
    assert event["status"] == "error" and event["error"]["error_class"] == "ZeroDivisionError"


async def test_a_check_that_cannot_be_imported_is_an_error_event(sandbox_conn):
    [event] = await events(trigger(check=f"{HELPERS}:no_such_check"))
    assert event["status"] == "error" and "cannot import" in event["error"]["message"]
    assert sandbox_conn.counters()["requests"] == 0


# ---------------------------------------------------------------------------- serialize()
def test_serialize_is_json_safe_and_round_trips():
    t = trigger(journey_ids="102, 101,102", require="ANY", poke_interval=5,
                timeout_at="2026-03-11T08:00:00+08:00", check=f"{HELPERS}.only_journey_7_complete")
    classpath, kwargs = t.serialize()
    assert classpath == "airflow_provider_engagelab.triggers.engagelab.EngageLabStatsAvailableTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs == {
        "journey_ids": [102, 101], "target_date": "2026-03-10", "stats_type": "journey",
        "engagelab_conn_id": "engagelab_default", "require": "any", "poke_interval": 5.0,
        "timeout_at": "2026-03-11T00:00:00+00:00", "check": f"{HELPERS}:only_journey_7_complete"}
    again = EngageLabStatsAvailableTrigger(**json.loads(json.dumps(kwargs)))
    assert again.serialize() == (classpath, kwargs)


def test_serialize_survives_airflow_serde():
    try:
        from airflow.sdk.serde import deserialize, serialize
    except ImportError:  # Airflow 3.0
        from airflow.serialization.serde import deserialize, serialize
    classpath, kwargs = trigger().serialize()
    assert deserialize(serialize(kwargs)) == kwargs


async def test_a_trigger_recreated_after_a_triggerer_restart_keeps_going(sandbox_conn):
    """The first trigger is cancelled mid-wait; one re-created from serialize() finishes."""
    sb = sandbox_conn
    sb.configure(available_through=PART_DAY)
    first = trigger(poke_interval=0.05)
    task = asyncio.ensure_future(events(first))
    while sb.counters()["requests"] < 2:
        await asyncio.sleep(0.01)
    task.cancel()  # the triggerer stops
    with pytest.raises(asyncio.CancelledError):
        await task
    classpath, kwargs = first.serialize()
    sb.configure(available_through=FULL_DAY)
    [event] = await events(EngageLabStatsAvailableTrigger(**json.loads(json.dumps(kwargs))))
    assert event["status"] == "success"
    assert kwargs["timeout_at"] == first.timeout_at  # the same absolute deadline, not a new one


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"journey_ids": "x"}, "journey_ids"),
        ({"target_date": "2026-13-01"}, "target_date"),
        ({"stats_type": "visits"}, "stats_type"),
        ({"require": "most"}, "require"),
        ({"poke_interval": -1}, "poke_interval"),
        ({"timeout_at": "2026-03-11T00:00:00"}, "timeout_at"),
        ({"timeout_at": "soon"}, "timeout_at"),
        ({"check": lambda rows, errors: True}, "check"),
    ],
)
def test_bad_kwargs_are_refused(kwargs, param):
    with pytest.raises(EngageLabValidationError, match=param):
        trigger(**kwargs)
