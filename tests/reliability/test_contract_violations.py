"""Answers that break the contract: a clear EngageLabError, retried only where a retry can help.

Each sandbox fault below replaces or corrupts a real answer. Through the sync hook, the async
hook (the trigger's transport) and the operator (file output), each must raise the
``EngageLabError`` subclass for what went wrong, with a message that says what (never a raw
``JSONDecodeError``/``KeyError``/``TypeError`` from inside a library, never a silent partial
result), and must be retried only when a later attempt could get a good answer. Counted at
the sandbox: a retryable fault injected once costs exactly one extra request and then the
rows are the oracle's; a non-retryable one is asked exactly once and nothing is written.
"""

from __future__ import annotations

import asyncio
import math

import pytest
from reliability_helpers import exception_texts, leaks, set_conn, sort_rows

from airflow_provider_engagelab.exceptions import (
    EngageLabAuthError,
    EngageLabBadRequestError,
    EngageLabError,
    EngageLabJourneyNotFoundError,
    EngageLabRateLimitError,
    EngageLabResponseError,
    EngageLabServerError,
)
from airflow_provider_engagelab.hooks.engagelab import EngageLabAsyncHook, EngageLabHook
from airflow_provider_engagelab.operators.engagelab import EngageLabStatsOperator
from airflow_provider_engagelab.testing.sandbox import Fault

IDS = [1, 2]
START, END = "2026-05-01", "2026-05-02"
MAX_RETRIES = 2

# (id, fault, stats type, expected class, retryable, words the message must contain)
CASES = [
    ("html-502-from-a-proxy", Fault("html"), "journey", EngageLabServerError, True,
     ["HTTP 502", "non-JSON", "502 Bad Gateway"]),
    ("empty-200", Fault("empty"), "journey", EngageLabResponseError, True, ["<empty body>"]),
    ("truncated-json", Fault("truncated"), "message", EngageLabResponseError, True,
     ["expected a JSON envelope"]),
    ("200-with-code-50217", Fault("code_in_200"), "journey", EngageLabBadRequestError, False,
     ["code 50217", "Invalid time range"]),
    ("200-with-code-40050", Fault("code_in_200", code=40050), "journey", EngageLabAuthError, False,
     ["code 40050", "authorization invalid"]),
    ("200-with-code-50202", Fault("code_in_200", code=50202), "webhook", EngageLabJourneyNotFoundError, False,
     ["code 50202"]),
    ("200-with-code-55110", Fault("code_in_200", code=55110), "journey", EngageLabRateLimitError, True,
     ["code 55110"]),
    ("200-with-code-minus-1", Fault("code_in_200", code=-1), "journey", EngageLabServerError, True,
     ["code -1"]),
    ("200-with-unknown-code", Fault("code_in_200", code=77777), "journey", EngageLabError, False,
     ["code 77777"]),
    ("missing-journey", Fault("missing_journey"), "journey", EngageLabResponseError, False,
     ["no entry for requested journey(s) 2"]),
    ("detail-field-missing", Fault("bad_field"), "journey", EngageLabResponseError, False,
     ["'entry_count'", "missing"]),
    ("count-as-string", Fault("bad_field", value="12"), "message", EngageLabResponseError, False,
     ["'entry_count'", "must be int", "'12'"]),
    ("count-as-bool", Fault("bad_field", value=True), "journey", EngageLabResponseError, False,
     ["'entry_count'", "must be int"]),
    ("count-as-null", Fault("bad_field", value=None), "webhook", EngageLabResponseError, False,
     ["'entry_count'"]),
    ("revenue-as-string", Fault("bad_field", field="revenue_amount", value="488.50"), "message",
     EngageLabResponseError, False, ["'revenue_amount'", "must be number"]),
    ("component-name-missing", Fault("bad_field", field="component_name"), "webhook",
     EngageLabResponseError, False, ["'component_name'"]),
    ("time-bad-format", Fault("bad_field", field="time", value="2026/05/01"), "journey",
     EngageLabResponseError, False, ["'2026/05/01'", "DAY bucket"]),
    ("time-outside-window", Fault("bad_field", field="time", value="2027-01-01"), "journey",
     EngageLabResponseError, False, ["'2027-01-01'", "2026-05-01..2026-05-02"]),
    ("journey-id-as-string", Fault("bad_field", field="journey_id", value="1"), "journey",
     EngageLabResponseError, False, ["journey_id='1'"]),
    ("journey-not-requested", Fault("bad_field", field="journey_id", value=999), "journey",
     EngageLabResponseError, False, ["journey 999 was not requested"]),
    ("error-code-null", Fault("bad_field", field="error_code", value=None), "journey",
     EngageLabResponseError, False, ["error_code=None"]),
    ("wrong-time-unit", Fault("bad_field", field="time_unit", value="HOUR"), "journey",
     EngageLabResponseError, False, ["time_unit 'HOUR'", "asked DAY"]),
    ("detail-not-a-list", Fault("bad_field", field="detail", value={"time": "2026-05-01"}), "journey",
     EngageLabResponseError, False, ["'detail'", "list"]),
    ("detail-null-for-a-successful-journey", Fault("bad_field", field="detail", value=None), "journey",
     EngageLabResponseError, False, ["journey 1", "'detail'", "None"]),
    ("detail-missing-for-a-successful-journey", Fault("bad_field", field="detail"), "journey",
     EngageLabResponseError, False, ["journey 1", "'detail'"]),
    ("revenue-nan", Fault("bad_field", field="revenue_amount", value=math.nan), "message",
     EngageLabResponseError, False, ["'revenue_amount'", "nan"]),
    ("revenue-infinity", Fault("bad_field", field="revenue_amount", value=math.inf), "message",
     EngageLabResponseError, False, ["'revenue_amount'", "inf"]),
]


PLAIN = [c for c in CASES if not hasattr(c, "marks")]  # pytest.param() sets are tuples too
RETRYABLE = [c for c in PLAIN if c[4]]


def _ids(case) -> str:
    return case.id if hasattr(case, "marks") else case[0]


def _assert_clear(exc: BaseException, cls: type, words: list[str]) -> None:
    assert isinstance(exc, cls) and isinstance(exc, EngageLabError), f"{type(exc).__name__}: {exc}"
    text = str(exc)
    for word in words:
        assert word in text, text
    # the cause is in the message, not in a library traceback chained to it
    assert exc.__cause__ is None and (exc.__context__ is None or exc.__suppress_context__)
    assert "Traceback" not in text and len(text) < 800


async def _async_fetch(stats_type: str):
    hook = EngageLabAsyncHook()

    async def no_wait(seconds: float) -> None:
        return None

    hook.sleep = no_wait
    return await hook.get_stats(stats_type, IDS, "DAY", START, END)


def _fetch(transport: str, stats_type: str, tmp_path):
    if transport == "sync":
        hook = EngageLabHook()
        hook.sleep = lambda seconds: None
        return hook.get_stats(stats_type, IDS, "DAY", START, END).rows
    if transport == "async":
        return asyncio.run(_async_fetch(stats_type)).rows
    op = EngageLabStatsOperator(task_id="t", stats_type=stats_type, journey_ids=IDS, start_time=START,
                                end_time=END, output_path=str(tmp_path / "out"))
    op.execute({})
    return None


@pytest.mark.parametrize("transport", ["sync", "async", "operator"])
@pytest.mark.parametrize(("name", "fault", "stats_type", "cls", "retryable", "words"), CASES,
                         ids=[_ids(c) for c in CASES])
def test_a_persistent_violation_is_a_clear_error(sb, monkeypatch, tmp_path, transport, name, fault,
                                                 stats_type, cls, retryable, words):
    """The violation on every attempt: a clear error after the budget (retryable) or at once."""
    set_conn(monkeypatch, sb, max_retries=MAX_RETRIES, max_retry_wait=0.01)
    sb.inject(*[fault] * (MAX_RETRIES + 1))
    with pytest.raises(EngageLabError) as err:
        _fetch(transport, stats_type, tmp_path)
    _assert_clear(err.value, cls, words)
    attempts = MAX_RETRIES + 1 if retryable else 1
    assert sb.counters()["requests"] == attempts
    assert err.value.retryable is retryable
    if retryable:
        assert f"gave up after {attempts} attempts" in str(err.value)
    assert not (tmp_path / "out").exists()  # nothing written, not even part of it
    assert not any(leaks(text) for text in exception_texts(err.value))


@pytest.mark.parametrize("transport", ["sync", "async"])
@pytest.mark.parametrize(("name", "fault", "stats_type", "cls", "retryable", "words"), RETRYABLE,
                         ids=[c[0] for c in RETRYABLE])
def test_a_transient_violation_is_retried_to_the_right_rows(sb, monkeypatch, tmp_path, transport, name,
                                                            fault, stats_type, cls, retryable, words):
    """Once only: one more request, then exactly the oracle's rows."""
    set_conn(monkeypatch, sb, max_retries=MAX_RETRIES, max_retry_wait=0.01)
    sb.inject(fault)
    rows = _fetch(transport, stats_type, tmp_path)
    assert sb.counters()["requests"] == 2
    assert sort_rows(rows) == sort_rows(sb.expected_rows(stats_type, IDS, "DAY", START, END))
