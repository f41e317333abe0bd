"""core.answer: a large answer decoded batch by batch gives what parse_response gives whole.

The bodies are the sandbox's own answers (computed in this process); ``batch_bytes`` is tiny so
that every entry is a batch of its own, or moderate so that batches hold several entries.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from airflow_provider_engagelab.core import parsing
from airflow_provider_engagelab.core.answer import read_answer
from airflow_provider_engagelab.core.parsing import parse_response
from airflow_provider_engagelab.core.planning import plan_calls
from airflow_provider_engagelab.core.query import build_query
from airflow_provider_engagelab.exceptions import EngageLabError
from airflow_provider_engagelab.testing.sandbox import Sandbox
from airflow_provider_engagelab.testing.sandbox.api import stats_answer

IDS = [3, 5, 8, 13, 21]
FIRST, LAST = "2026-05-01", "2026-05-02"


@pytest.fixture(autouse=True)
def _forget_learned_fields(monkeypatch):
    monkeypatch.setattr(parsing, "_known_extras", {})


def _call(stats: str = "message", unit: str = "HOUR", ids: list[int] = IDS):
    return plan_calls(build_query(stats, ids, unit, FIRST, LAST))[0]


def _body(stats: str = "message", unit: str = "HOUR", ids: list[int] = IDS) -> bytes:
    config = Sandbox(available_through="2030-01-01").config
    query = f"journey_id={','.join(map(str, ids))}&time_unit={unit}&start_time={FIRST}&end_time={LAST}"
    return stats_answer(stats, query, config).body()


def _batched(call: Any, body: bytes, batch_bytes: int = 1, **kwargs: Any) -> list[Any]:
    """Every batch of ``body`` read in batches (raises what the batches raise)."""
    with read_answer(call, 200, body, batch_bytes=batch_bytes, **kwargs) as answer:
        out = []
        for parsed in answer.batches():
            out.append((parsed.rows, list(parsed.errors), parsed.ok_journeys, parsed.extra_fields))
        return out


def _edit(body: bytes, edit: Any) -> bytes:
    payload = json.loads(body)
    edit(payload)
    return json.dumps(payload).encode()


@pytest.mark.parametrize("stats", ["journey", "message", "webhook"])
@pytest.mark.parametrize("unit", ["DAY", "HOUR"])
@pytest.mark.parametrize("per_batch", [0, 2])
def test_batches_hold_the_rows_of_the_whole_answer_in_order(stats, unit, per_batch):
    call, body = _call(stats, unit), _body(stats, unit)
    whole = parse_response(call, 200, body)
    batches = _batched(call, body, batch_bytes=max(1, len(body) * per_batch // len(IDS)))
    if per_batch:  # whole entries, several per batch
        assert 1 < len(batches) < len(IDS)
    else:  # one entry per batch
        assert len(batches) == len(IDS)
    assert [row for rows, *_ in batches for row in rows] == whole.rows
    assert frozenset().union(*(ok for *_, ok, _ in batches)) == whole.ok_journeys
    assert [len(errors) for _, errors, *_ in batches] == [0] * len(batches)


def test_journey_errors_come_with_the_first_batch_and_failed_journeys_have_no_batch():
    body = _edit(_body(), lambda p: p["data"][1].update(error_code=50202, detail=None))
    call = _call()
    batches = _batched(call, body)
    assert [(e.journey_id, e.error_code) for e in batches[0][1]] == [(IDS[1], 50202)]
    assert all(not errors for _, errors, *_ in batches[1:])
    assert [set(ok) for *_, ok, _ in batches] == [{j} for j in IDS if j != IDS[1]]
    assert [r for rows, *_ in batches for r in rows] == parse_response(call, 200, body).rows


def test_an_answer_whose_journeys_all_failed_is_one_empty_batch_with_the_errors():
    body = _edit(_body(), lambda p: [e.update(error_code=50202, detail=None) for e in p["data"]])
    (batch,) = _batched(_call(), body)
    assert batch[0] == [] and len(batch[1]) == len(IDS) and batch[2] == frozenset()


def test_a_field_the_contract_does_not_name_is_learned_in_the_batch_that_has_it():
    def add(payload: dict) -> None:
        payload["data"][2]["detail"][0]["ctr"] = 0.5

    call, body = _call(), _edit(_body(), add)
    whole = parse_response(call, 200, body)
    parsing._known_extras.clear()
    batches = _batched(call, body)
    assert [r for rows, *_ in batches for r in rows] == whole.rows
    assert [extra for *_, extra in batches] == [(), (), ("ctr",), (), ()]


def test_a_bom_is_skipped():
    call, body = _call(), _body()
    assert [r for rows, *_ in _batched(call, b"\xef\xbb\xbf" + body) for r in rows] == (
        parse_response(call, 200, body).rows
    )


def _last_entry(edit: Any) -> Any:
    return lambda payload: edit(payload["data"][-1])


BROKEN = {
    "wrong type": _last_entry(lambda e: e["detail"][3].update(entry_count="12")),
    "missing field": _last_entry(lambda e: e["detail"][3].pop("send_count")),
    "null field": _last_entry(lambda e: e["detail"][0].update(revenue_amount=None)),
    "time outside the window": _last_entry(lambda e: e["detail"][5].update(time="2026-05-09 01")),
    "detail not a list": _last_entry(lambda e: e.update(detail="none")),
    "detail null": _last_entry(lambda e: e.update(detail=None)),
    "row of another journey": _last_entry(lambda e: e["detail"][1].update(journey_id=99)),
    "row of another unit": _last_entry(lambda e: e["detail"][1].update(time_unit="DAY")),
    "entry of another unit": _last_entry(lambda e: e.update(time_unit="DAY")),
    "journey missing": lambda p: p["data"].pop(),
    "journey not asked": _last_entry(lambda e: e.update(journey_id=7)),
    "journey twice": lambda p: p["data"].append(p["data"][0]),
    "code in a 200": lambda p: p.update(code=55110, message="Too many requests"),
    "refusal in a 200": lambda p: p.update(code=50217, message="Invalid time range."),
    "data not a list": lambda p: p.update(data={"a": 1}),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_answer_raises_what_the_whole_decoder_raises(name):
    call, body = _call(), _edit(_body(), BROKEN[name])
    with pytest.raises(EngageLabError) as whole:
        parse_response(call, 200, body)
    with pytest.raises(EngageLabError) as batched:
        _batched(call, body)
    assert type(batched.value) is type(whole.value)
    assert str(batched.value) == str(whole.value)
    assert batched.value.retryable == whole.value.retryable


@pytest.mark.parametrize("cut", [0.5, 0.999])
def test_a_truncated_body_is_a_retryable_error_before_any_batch(cut):
    call, body = _call(), _body()
    closed: list[bool] = []
    with pytest.raises(EngageLabError) as raised:
        read_answer(call, 200, body[: int(len(body) * cut)], batch_bytes=1,
                    on_close=lambda: closed.append(True))
    assert raised.value.retryable and "expected a JSON envelope" in str(raised.value)
    assert closed == [True]  # the buffer is freed when the answer cannot be read


def test_a_non_finite_number_is_refused_as_the_whole_decoder_refuses_it():
    call, body = _call(), _body().replace(b'"revenue_amount":0.0', b'"revenue_amount":NaN', 1)
    with pytest.raises(EngageLabError) as whole:
        parse_response(call, 200, body)
    with pytest.raises(EngageLabError) as batched:
        _batched(call, body)
    assert str(batched.value) == str(whole.value) and not batched.value.retryable


def test_bytes_that_are_not_utf8_are_a_response_error_not_a_unicode_error():
    call, body = _call(), _body().replace(b'"EMAIL_1"', b'"EMAIL\xff1"', 1)
    with pytest.raises(EngageLabError) as whole:
        parse_response(call, 200, body)
    assert whole.value.retryable  # as any body that is not the API's JSON
    with pytest.raises(EngageLabError, match=f"the rows of journey {IDS[-1]} are not valid JSON text"):
        _batched(call, body)  # found in the last batch: the earlier ones were handed out


def test_small_answers_are_decoded_whole_and_free_their_buffer_at_once():
    call, body = _call(), _body()
    closed: list[bool] = []
    dropped: list[bool] = []
    answer = read_answer(call, 200, body, batch_bytes=len(body), on_close=lambda: closed.append(True),
                         drop_pages=lambda: dropped.append(True))
    assert closed == [True] and dropped == []
    (parsed,) = list(answer.batches())
    assert parsed.rows == parse_response(call, 200, body).rows
    answer.close()
    assert closed == [True]


def test_large_answers_drop_their_pages_after_each_pass_and_free_the_buffer_on_close():
    call, body = _call(), _body()
    closed: list[bool] = []
    dropped: list[bool] = []
    answer = read_answer(call, 200, body, batch_bytes=1, on_close=lambda: closed.append(True),
                         drop_pages=lambda: dropped.append(True))
    assert dropped == [True] and closed == []  # the envelope pass
    batches = answer.batches()
    next(batches)
    assert dropped == [True, True]
    answer.close()  # before the last batch: the rest is dropped, never decoded
    assert closed == [True]
    with pytest.raises(RuntimeError):
        answer.batches()


def test_a_view_of_the_buffer_decodes_like_bytes():
    call, body = _call(), _body()
    view = memoryview(bytearray(body))
    batches = _batched(call, view)  # type: ignore[arg-type]
    assert [r for rows, *_ in batches for r in rows] == parse_response(call, 200, body).rows
    del batches
    view.release()  # nothing kept a reference to the buffer


def test_records_of_a_batch_are_the_typed_records():
    call, body = _call(), _body()
    with read_answer(call, 200, body, batch_bytes=1) as answer:
        parsed = next(answer.batches())
        assert isinstance(parsed.records[0], msgspec.Struct)
        assert parsed.records[0].journey_id == IDS[0]
