"""Response parsing: one typed decoder for every answer, error-code mapping, journey errors.

A 2xx answer is decoded by msgspec straight into typed records, one ``msgspec.Struct`` per
detail row whose fields are the flat row's columns (``COLUMNS``); types are checked in C while
decoding. The entries' bookkeeping (requested, answered and malformed journeys), the units
and the time window are then checked once, here. A field the contract does not name does not
leave this path: the first answer that carries it teaches the decoder a record type with that
field (typed ``Any``, absent rows ``UNSET``), which decodes the next answers in one pass
(:attr:`ParsedResponse.extra_fields` says which such fields an answer had). When msgspec
refuses an answer, :mod:`.wording` turns its error path into a message naming the journey and
the field. Pure: no Airflow imports.
"""

from __future__ import annotations

import functools
import itertools
import re
import threading
from collections.abc import Callable
from datetime import date, timedelta
from operator import attrgetter
from typing import Any

import msgspec

from airflow_provider_engagelab.core.contract import CODE_MEANINGS, COLUMNS, DETAIL_FIELDS
from airflow_provider_engagelab.core.contract import INT as _INT
from airflow_provider_engagelab.core.contract import NUMBER as _NUM
from airflow_provider_engagelab.core.contract import STR as _STR
from airflow_provider_engagelab.core.planning import PlannedCall
from airflow_provider_engagelab.core.query import StatsType, TimeUnit
from airflow_provider_engagelab.core.records import JourneyError, ParsedResponse
from airflow_provider_engagelab.core.wording import bad_response, envelope_error, error_for, word_refusal
from airflow_provider_engagelab.exceptions import EngageLabResponseError

__all__ = [
    "CODE_MEANINGS", "COLUMNS", "DETAIL_FIELDS", "JourneyError", "ParsedResponse", "check_entries",
    "check_status", "collect_records", "detail_decoder", "error_for", "parse_response",
]

_KIND_TYPES: dict[str, Any] = {_INT: int, _STR: str, _NUM: int | float}

#: The most fields the contract does not name that one stats type's answers may add.
MAX_EXTRA_FIELDS = 32

_BOM = b"\xef\xbb\xbf"
_UNKNOWN_FIELD = re.compile(
    r"^Object contains unknown field `([^`]+)` - at `\$\.data\[\d+\]\.detail\[\d+\]`$"
)


@functools.lru_cache(maxsize=256)
def _record_type(stats_type: StatsType, time_unit: TimeUnit, extras: tuple[str, ...]) -> type[msgspec.Struct]:
    """The typed record of one detail row: ``COLUMNS`` then ``extras``.

    ``journey_id`` is set from the entry after decoding (a row may repeat it), ``time_unit``
    defaults to the call's unit; every field the contract names is required, with its JSON
    type (``int`` refuses booleans and floats; a ``number`` takes an int or a float). Any other
    field fails the decoding, unless it is one of ``extras`` (typed ``Any``, ``UNSET`` when a
    row lacks it).
    """
    fields: list[tuple[str, Any, Any]] = [
        ("journey_id", int | msgspec.UnsetType, msgspec.UNSET),
        ("time_unit", str, time_unit.value),
    ]
    fields += [(name, _KIND_TYPES[kind], msgspec.NODEFAULT) for name, kind in DETAIL_FIELDS[stats_type]]
    fields += [(name, Any, msgspec.UNSET) for name in extras]
    suffix = f"With{len(extras)}Extras" if extras else ""
    return msgspec.defstruct(
        f"{stats_type.value.title()}{time_unit.value.title()}Record{suffix}",
        fields,
        kw_only=True,
        forbid_unknown_fields=True,
        gc=False,
        module=__name__,
        namespace={"record_kind": (stats_type, time_unit), "extra_fields": extras},
    )


def _answer_decoder(record: type[msgspec.Struct]) -> msgspec.json.Decoder[Any]:
    """A decoder of a whole answer whose detail rows are ``record``s.

    Fields of the envelope and of the entries that the contract does not name are ignored;
    ``data`` may be absent (a refusal: ``{"code": 50217, "message": ...}``). A decoder is
    immutable and thread-safe (msgspec >= 0.16).
    """
    entry = msgspec.defstruct(
        f"{record.__name__}Entry",
        [
            ("journey_id", int),
            ("error_code", int, 0),
            ("time_unit", str | msgspec.UnsetType, msgspec.UNSET),
            ("detail", list[record] | None, None),  # type: ignore[valid-type]
        ],
        gc=False,
        module=__name__,
    )
    answer = msgspec.defstruct(
        f"{record.__name__}Answer",
        [("code", int), ("message", Any, ""), ("data", list[entry] | None, None)],  # type: ignore[valid-type]
        gc=False,
        module=__name__,
    )
    return msgspec.json.Decoder(answer)


@functools.lru_cache(maxsize=256)
def _decoder(
    stats_type: StatsType, time_unit: TimeUnit, extras: tuple[str, ...]
) -> msgspec.json.Decoder[Any]:
    return _answer_decoder(_record_type(stats_type, time_unit, extras))


@functools.lru_cache(maxsize=256)
def detail_decoder(
    stats_type: StatsType, time_unit: TimeUnit, extras: tuple[str, ...]
) -> msgspec.json.Decoder[Any]:
    """A decoder of one entry's ``detail`` list alone: the same records as a whole answer's."""
    return msgspec.json.Decoder(list[_record_type(stats_type, time_unit, extras)])  # type: ignore[misc]


#: The typed record of each (stats type, time unit) for answers in the contract's shape.
#: Every record type (with extras too) has the class attributes ``record_kind`` (its stats type
#: and unit) and ``extra_fields``.
RECORD_TYPES: dict[tuple[StatsType, TimeUnit], type[msgspec.Struct]] = {
    (stype, unit): _record_type(stype, unit, ()) for stype in StatsType for unit in TimeUnit
}

#: The extra fields last seen per (stats type, time unit): the next answer tries them first.
_known_extras: dict[tuple[StatsType, TimeUnit], tuple[str, ...]] = {}
_known_lock = threading.Lock()

_RECORD_IDENTITY = attrgetter("journey_id", "time_unit")
_RECORD_TIME = attrgetter("time")
_chain = itertools.chain.from_iterable


@functools.lru_cache(maxsize=64)
def _bucket_times(unit: TimeUnit, start: date, end: date) -> frozenset[str]:
    """Every ``time`` of ``unit`` buckets from ``start`` to ``end`` (what a row may carry)."""
    if not 0 <= (end - start).days <= 366:
        return frozenset()
    days = [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]
    if unit is TimeUnit.DAY:
        return frozenset(days)
    return frozenset(f"{day} {hour:02d}" for day in days for hour in range(24))


def parse_response(
    call: PlannedCall,
    status: int,
    body: bytes | memoryview,
    *,
    retry_after: float | None = None,
) -> ParsedResponse:
    """Turn one HTTP answer into typed records and journey errors, or raise the mapped error.

    :param call: the request this answers (for the checks that rows belong to it).
    :param status: the HTTP status code.
    :param body: the raw response body: bytes, or a read-only view of it (the sync hook maps
        its body file); no record keeps a reference to it.
    :param retry_after: the parsed ``Retry-After`` header, if any.
    """
    body = check_status(call, status, body, retry_after=retry_after)
    answer, extras = _decode(call, status, body)
    if answer.code != 0:
        raise error_for(answer.code, str(answer.message or ""), status, retry_after=retry_after)
    return _collect(call, status, answer, extras)


def check_status(
    call: PlannedCall, status: int, body: bytes | memoryview, *, retry_after: float | None = None
) -> bytes | memoryview:
    """Raise the mapped error of a non-2xx answer; the body of a 2xx one, without a UTF-8 BOM."""
    if 300 <= status < 400:
        raise EngageLabResponseError(
            f"unexpected HTTP {status} redirect from {call.endpoint}: redirects are not followed, "
            "so the credentials never go to another host; check the connection's host",
            status=status,
        )
    if not 200 <= status < 300:
        code, message = envelope_error(call, status, bytes(body))
        raise error_for(code, message, status, retry_after=retry_after)
    if bytes(body[: len(_BOM)]) == _BOM:
        body = body[len(_BOM):]
    return body


def _decode(call: PlannedCall, status: int, body: bytes | memoryview) -> tuple[Any, tuple[str, ...]]:
    """Decode a 2xx body with the record type of its fields; learn new fields on the way."""
    extras = known_extras(call)
    while True:
        try:
            answer = _decoder(call.stats_type, call.time_unit, extras).decode(body)
        except msgspec.ValidationError as exc:
            learned = learn_extra(call, status, extras, exc)
            if learned is None:
                raise word_refusal(call, status, bytes(body), exc) from None
            extras = learned
            continue
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            raise word_refusal(call, status, bytes(body), exc) from None
        remember_extras(call, extras)
        return answer, extras


def known_extras(call: PlannedCall) -> tuple[str, ...]:
    """The fields the contract does not name that answers of this call's kind had so far."""
    return _known_extras.get((call.stats_type, call.time_unit), ())


def remember_extras(call: PlannedCall, extras: tuple[str, ...]) -> None:
    """Let the next answers of this kind try ``extras`` first."""
    if extras:
        key = (call.stats_type, call.time_unit)
        with _known_lock:
            if len(extras) > len(_known_extras.get(key, ())):
                _known_extras[key] = extras


def learn_extra(
    call: PlannedCall, status: int, extras: tuple[str, ...], exc: msgspec.ValidationError
) -> tuple[str, ...] | None:
    """``extras`` plus the unknown detail field ``exc`` names, or ``None`` for another refusal."""
    found = _UNKNOWN_FIELD.match(str(exc))
    if found is None:
        return None
    if len(extras) >= MAX_EXTRA_FIELDS:
        raise bad_response(
            call, status, f"more than {MAX_EXTRA_FIELDS} detail fields the contract does not name "
            f"({', '.join(extras[:5])}, ...)",
        ) from None
    return (*extras, found.group(1))


def _collect(call: PlannedCall, status: int, answer: Any, extras: tuple[str, ...]) -> ParsedResponse:
    """The checks of a decoded answer, once; its records, journey errors and journeys."""
    good, errors = check_entries(call, status, answer.data)
    return collect_records(call, status, [entry for _, entry in good], errors, extras)


def _no_detail(entry: Any) -> bool:
    return entry.detail is None


def check_entries(
    call: PlannedCall, status: int, data: list[Any] | None, no_detail: Callable[[Any], bool] = _no_detail
) -> tuple[list[tuple[int, Any]], list[JourneyError]]:
    """The bookkeeping of an answer's entries: every requested journey once, nothing else.

    :param data: the decoded entries (``journey_id``, ``error_code``, ``time_unit``, ``detail``).
    :param no_detail: whether an entry lacks its ``detail`` list.
    :return: the entries with ``error_code`` 0 (with their index in ``data``) and the journey errors.
    """
    if data is None:
        raise bad_response(call, status, "'data' is not a list")
    unit = call.time_unit.value
    requested = set(call.journey_ids)
    answered: set[int] = set()
    malformed = 0
    errors: list[JourneyError] = []
    good: list[tuple[int, Any]] = []
    for index, entry in enumerate(data):
        jid = entry.journey_id
        if jid == -1:
            malformed += 1
        elif jid not in requested:
            raise bad_response(call, status, f"journey {jid} was not requested")
        elif jid in answered:
            raise bad_response(call, status, f"journey {jid} is answered twice")
        else:
            answered.add(jid)
        if entry.error_code != 0:
            errors.append(JourneyError(jid, entry.error_code))
            continue
        if jid == -1:
            raise bad_response(call, status, "an entry with journey_id -1 (malformed) has error_code 0")
        if entry.time_unit is not msgspec.UNSET and entry.time_unit != unit:
            raise bad_response(call, status, f"journey {jid} has time_unit {entry.time_unit!r}, asked {unit}")
        if no_detail(entry):
            raise bad_response(call, status, f"journey {jid}: 'detail' must be a list, got None")
        good.append((index, entry))
    missing = [j for j in call.journey_ids if j not in answered]
    if len(missing) > malformed:
        shown = ", ".join(str(j) for j in missing[:10])
        raise bad_response(call, status, f"no entry for requested journey(s) {shown}")
    return good, errors


def collect_records(
    call: PlannedCall, status: int, good: list[Any], errors: list[JourneyError], extras: tuple[str, ...]
) -> ParsedResponse:
    """The checks of the detail rows of entries (``journey_id`` and ``detail`` each); their answer.

    Every row's time is a bucket of the call's window, a row's own ``journey_id`` and
    ``time_unit`` (when present) agree with its entry; rows get their entry's ``journey_id``.
    """
    unit = call.time_unit.value
    records = list(_chain(entry.detail for entry in good))
    if not _bucket_times(call.time_unit, call.start, call.end).issuperset(map(_RECORD_TIME, records)):
        _refuse_time(call, status, good)
    if set(map(_RECORD_IDENTITY, records)) - {(msgspec.UNSET, unit)}:
        _check_identity(call, status, good)
    for entry in good:
        jid = entry.journey_id
        for record in entry.detail:
            record.journey_id = jid
    present = tuple(
        name for name in extras
        if any(value is not msgspec.UNSET for value in map(attrgetter(name), records))
    )
    return ParsedResponse(
        records=records, errors=errors, call=call,
        ok_journeys=frozenset(entry.journey_id for entry in good), extra_fields=present,
    )


def _refuse_time(call: PlannedCall, status: int, good: list[Any]) -> None:
    times = _bucket_times(call.time_unit, call.start, call.end)
    for entry in good:
        for record in entry.detail:
            if record.time not in times:
                raise bad_response(
                    call, status,
                    f"journey {entry.journey_id}: time {record.time!r} is not a {call.time_unit.value} "
                    f"bucket in {call.start.isoformat()}..{call.end.isoformat()}",
                )


def _check_identity(call: PlannedCall, status: int, good: list[Any]) -> None:
    """A detail row may repeat its entry's ``journey_id`` and ``time_unit``, not contradict them."""
    unit = call.time_unit.value
    for entry in good:
        for record in entry.detail:
            for key, own in (("journey_id", entry.journey_id), ("time_unit", unit)):
                value = getattr(record, key)
                if value is not msgspec.UNSET and (type(value) is not type(own) or value != own):
                    raise bad_response(
                        call, status, f"journey {entry.journey_id}: a detail row has {key}={value!r}, "
                        f"its entry {own!r}",
                    )
