"""The readiness rule (pure core): last HOUR bucket, require all/any, custom checks, errors."""

from __future__ import annotations

import json
import pickle
from datetime import date

import pytest

from airflow_provider_engagelab.core.parsing import JourneyError
from airflow_provider_engagelab.core.readiness import (
    check_reference,
    error_from_payload,
    error_to_payload,
    evaluate,
    hard_failure,
    last_bucket,
    load_check,
    parse_require,
)
from airflow_provider_engagelab.exceptions import (
    EngageLabAuthError,
    EngageLabBadRequestError,
    EngageLabError,
    EngageLabJourneyErrors,
    EngageLabJourneyNotFoundError,
    EngageLabResponseError,
    EngageLabServerError,
    EngageLabValidationError,
)
from tests.sensors.sensor_helpers import only_journey_7_complete

DAY = date(2026, 3, 10)


def hours(jid: int, last_hour: int, day: str = "2026-03-10") -> list[dict]:
    return [{"journey_id": jid, "time_unit": "HOUR", "time": f"{day} {h:02d}", "entry_count": 1}
            for h in range(last_hour + 1)]


def test_last_bucket_is_hour_23_of_the_day():
    assert last_bucket(DAY) == "2026-03-10 23"


def test_all_journeys_need_the_last_hour():
    rows = hours(7, 23) + hours(8, 22)
    r = evaluate(DAY, [7, 8], rows, [])
    assert not r.ready and r.ready_journeys == (7,) and r.pending_journeys == (8,)
    assert r.last_buckets == {7: "2026-03-10 23", 8: "2026-03-10 22"}
    assert evaluate(DAY, [7, 8], rows + hours(8, 23)[-1:], []).ready


def test_any_journey_is_enough_with_require_any():
    rows = hours(7, 23) + hours(8, 5)
    assert evaluate(DAY, [7, 8], rows, [], require="ANY").ready
    assert not evaluate(DAY, [7, 8], hours(7, 22) + hours(8, 5), [], require="any").ready


def test_a_journey_without_rows_is_pending_with_no_bucket():
    r = evaluate(DAY, [7, 8], hours(7, 23), [])
    assert not r.ready and r.last_buckets[8] is None
    assert r.as_dict()["last_bucket"] == {"7": "2026-03-10 23", "8": None}


def test_rows_of_other_days_or_journeys_do_not_count():
    rows = hours(7, 23, day="2026-03-09") + hours(99, 23)
    r = evaluate(DAY, [7], rows, [])
    assert not r.ready and r.last_buckets == {7: None}


def test_summary_is_json_safe_and_says_what_was_seen():
    r = evaluate(DAY, [7, 8], hours(7, 23) + hours(8, 20), [JourneyError(9, 55110)], require="all")
    summary = json.loads(json.dumps(r.as_dict()))
    assert summary == {
        "ready": False, "target_date": "2026-03-10", "stats_type": "journey", "require": "all",
        "check": "default: last HOUR bucket 2026-03-10 23", "ready_journeys": [7],
        "pending_journeys": [8], "last_bucket": {"7": "2026-03-10 23", "8": "2026-03-10 20"},
        "rows_seen": 45,
        "journey_errors": [{"journey_id": 9, "error_code": 55110,
                            "meaning": "too many requests: rate limit exceeded"}],
    }
    assert "8 (last bucket 2026-03-10 20)" in r.describe()


@pytest.mark.parametrize(
    ("errors", "cls", "code"),
    [
        ([JourneyError(8, 50202)], EngageLabJourneyNotFoundError, 50202),
        ([JourneyError(-1, 50221)], EngageLabBadRequestError, 50221),
        ([JourneyError(8, 50202), JourneyError(-1, 50221)], EngageLabJourneyErrors, None),
        ([JourneyError(8, 40050)], EngageLabAuthError, 40050),
        ([JourneyError(8, 12345)], EngageLabResponseError, 12345),  # unknown code: final
    ],
)
def test_errors_waiting_cannot_fix_fail_at_once(errors, cls, code):
    with pytest.raises(cls) as err:
        evaluate(DAY, [7, 8], hours(7, 23), errors, require="any")
    assert type(err.value) is cls and err.value.code == code
    assert "waiting cannot fix" in str(err.value) and "check journey_ids" in str(err.value)
    if cls is EngageLabJourneyErrors:
        assert [e["error_code"] for e in err.value.errors] == [50202, 50221]


def test_transient_per_journey_errors_mean_not_yet():
    errors = [JourneyError(8, 55110), JourneyError(8, -1)]
    assert hard_failure(errors) is None
    r = evaluate(DAY, [7, 8], hours(7, 23), errors)
    assert not r.ready and r.pending_journeys == (8,) and len(r.waiting_errors) == 2


def test_custom_check_decides_and_sees_rows_and_errors():
    seen = {}

    def check(rows, errors):
        seen["rows"], seen["errors"] = len(rows), errors
        return True

    err = JourneyError(8, -1)
    r = evaluate(DAY, [7, 8], hours(7, 3), [err], check=check)
    assert r.ready and seen == {"rows": 4, "errors": [err]}
    assert r.pending_journeys == (7, 8)  # still reported: what the default rule would see
    assert r.as_dict()["check"].endswith("check")
    assert not evaluate(DAY, [7], hours(7, 23), [], check=lambda rows, errors: False).ready


def test_hard_failures_come_before_the_custom_check():
    with pytest.raises(EngageLabJourneyNotFoundError):
        evaluate(DAY, [7, 8], [], [JourneyError(8, 50202)], check=lambda rows, errors: True)


def test_require_is_validated():
    assert parse_require(" All ") == "all"
    for bad in ("most", "", None, 1):
        with pytest.raises(EngageLabValidationError, match="require"):
            parse_require(bad)


def test_check_reference_of_importable_functions_and_strings():
    ref = check_reference(only_journey_7_complete, importable=True)
    assert ref == "tests.sensors.sensor_helpers:only_journey_7_complete"
    assert load_check(ref) is only_journey_7_complete
    assert check_reference("os.path.exists", importable=True) == "os.path:exists"
    assert check_reference("os.path:exists", importable=True) == "os.path:exists"
    assert load_check("os.path:exists") is __import__("os").path.exists
    assert check_reference(None, importable=True) is None


@pytest.mark.parametrize("bad", [lambda rows, errors: True, "not a path", "os.", 42])
def test_checks_the_triggerer_cannot_import_are_refused_for_deferrable(bad):
    with pytest.raises(EngageLabValidationError, match="check"):
        check_reference(bad, importable=True)


def test_nested_and_dag_file_functions_are_refused_for_deferrable_but_fine_in_process():
    def nested(rows, errors):
        return True

    assert check_reference(nested, importable=False) is None
    with pytest.raises(EngageLabValidationError, match="lambda, a nested function or a method"):
        check_reference(nested, importable=True)
    nested.__module__ = "unusual_prefix_0123abcd_my_dag"  # how Airflow names a parsed DAG file
    nested.__qualname__ = "nested"
    with pytest.raises(EngageLabValidationError, match="defined in a DAG file"):
        check_reference(nested, importable=True)


def test_load_check_reports_what_is_missing():
    with pytest.raises(EngageLabValidationError, match="cannot import"):
        load_check("no_such_module_xyz:check")
    with pytest.raises(EngageLabValidationError, match="cannot import"):
        load_check("os.path:no_such_function")
    with pytest.raises(EngageLabValidationError, match="not callable"):
        load_check("os:sep")


@pytest.mark.parametrize(
    "exc",
    [
        EngageLabJourneyNotFoundError("journey 8 does not exist", code=50202),
        EngageLabAuthError("authorization invalid", code=40050, status=401),
        EngageLabBadRequestError("Invalid time range.", code=50217, status=400),
        EngageLabServerError("boom", code=-1, status=500),
        EngageLabValidationError("Invalid target_date='x': bad"),
        EngageLabJourneyErrors("two errors", errors=[{"journey_id": 8, "error_code": 50202,
                                                      "meaning": "m"}]),
    ],
)
def test_errors_survive_the_trip_through_a_trigger_event(exc):
    payload = json.loads(json.dumps(error_to_payload(exc)))
    back = error_from_payload(payload)
    assert type(back) is type(exc) and str(back) == str(exc)
    assert (back.code, back.status) == (exc.code, exc.status)
    if isinstance(exc, EngageLabJourneyErrors):
        assert back.errors == exc.errors
    pickle.loads(pickle.dumps(back))


def test_foreign_errors_keep_their_type_name():
    back = error_from_payload(error_to_payload(ZeroDivisionError("division by zero")))
    assert type(back) is EngageLabError and str(back) == "ZeroDivisionError: division by zero"
    assert type(error_from_payload({"error_class": "os"})) is EngageLabError
