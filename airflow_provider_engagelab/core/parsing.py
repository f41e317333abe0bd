"""Response parsing: the envelope, error-code mapping, per-journey errors and flat rows."""

from __future__ import annotations

import functools
import itertools
import json
import math
import re
from dataclasses import dataclass
from datetime import date, timedelta
from operator import attrgetter
from typing import Any

import msgspec

from airflow_provider_engagelab.core.contract import CODE_CLASSES as _CODE_CLASSES
from airflow_provider_engagelab.core.contract import CODE_MEANINGS, COLUMNS, DETAIL_FIELDS
from airflow_provider_engagelab.core.contract import INT as _INT
from airflow_provider_engagelab.core.contract import NUMBER as _NUM
from airflow_provider_engagelab.core.contract import STR as _STR
from airflow_provider_engagelab.core.planning import PlannedCall
from airflow_provider_engagelab.core.query import StatsType, TimeUnit
from airflow_provider_engagelab.exceptions import (
    EngageLabAuthError,
    EngageLabBadRequestError,
    EngageLabError,
    EngageLabRateLimitError,
    EngageLabResponseError,
    EngageLabServerError,
)

__all__ = ["CODE_MEANINGS", "COLUMNS", "DETAIL_FIELDS", "JourneyError", "ParsedResponse", "parse_response"]

_KIND_TYPES: dict[str, Any] = {_INT: int, _STR: str, _NUM: int | float}


def _record_type(stats_type: StatsType, time_unit: TimeUnit) -> type[msgspec.Struct]:
    """The typed record one detail row decodes into on the fast path.

    Its fields are the flat row's columns (``COLUMNS`` order): ``journey_id`` (set from the
    entry after decoding), ``time_unit`` (the call's unit by default) and the detail fields with
    their JSON types. msgspec checks the types in C while decoding (``int`` refuses booleans and
    floats, a ``number`` takes an int or a float); a missing field, a wrong type, ``null`` or a
    field the contract does not name makes the whole body take the field-by-field path.
    """
    fields: list[tuple[str, Any, Any]] = [
        ("journey_id", int | msgspec.UnsetType, msgspec.UNSET),
        ("time_unit", str, time_unit.value),
    ]
    fields += [(name, _KIND_TYPES[kind], msgspec.NODEFAULT) for name, kind in DETAIL_FIELDS[stats_type]]
    return msgspec.defstruct(
        f"{stats_type.value.title()}{time_unit.value.title()}Record",
        fields,
        kw_only=True,
        forbid_unknown_fields=True,
        gc=False,
        module=__name__,
    )


def _envelope_decoder(record: type[msgspec.Struct]) -> msgspec.json.Decoder[Any]:
    """A decoder of a whole answer with a ``data`` list whose detail rows are ``record``s.

    Fields of the envelope and of the entries that the contract does not name are ignored, as
    on the field-by-field path; anything else (a refusal without ``data``, a wrong type) fails
    and is left to that path. A decoder is immutable and may be shared by threads.
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
        [("code", int), ("data", list[entry])],  # type: ignore[valid-type]
        gc=False,
        module=__name__,
    )
    return msgspec.json.Decoder(answer)


#: The typed record of each (stats type, time unit): what ``ParsedResponse.records`` holds.
RECORD_TYPES: dict[tuple[StatsType, TimeUnit], type[msgspec.Struct]] = {
    (stype, unit): _record_type(stype, unit) for stype in StatsType for unit in TimeUnit
}
_DECODERS = {key: _envelope_decoder(record) for key, record in RECORD_TYPES.items()}
_RECORD_IDENTITY = attrgetter("journey_id", "time_unit")
_RECORD_TIME = attrgetter("time")
_chain = itertools.chain.from_iterable

# The hook parses in several threads: msgspec's functions and its Encoder/Decoder methods are
# thread-safe since msgspec 0.16 (msgspec/msgspec#402); setup.cfg requires >= 0.18.
_msgspec_decode = msgspec.json.decode


def _loads(body: bytes) -> Any:
    """``json.loads``, through msgspec's faster decoder when it accepts the body.

    msgspec refuses what it does not take exactly like the standard library (NaN and Infinity
    literals, out-of-range numbers, lone surrogates, a UTF-8 BOM, other encodings...); those
    bodies go to ``json.loads``, so their outcome and messages stay those of the stdlib.
    """
    try:
        return _msgspec_decode(body)
    except (msgspec.DecodeError, ValueError):
        return json.loads(body)


@functools.lru_cache(maxsize=64)
def _bucket_times(unit: TimeUnit, start: date, end: date) -> frozenset[str]:
    """Every ``time`` of ``unit`` buckets from ``start`` to ``end``: the fast path's check.

    A subset of what ``_TIME_RE`` and the window check accept; other values take the slow path.
    """
    if not 0 <= (end - start).days <= 366:
        return frozenset()
    days = [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]
    if unit is TimeUnit.DAY:
        return frozenset(days)
    return frozenset(f"{day} {hour:02d}" for day in days for hour in range(24))


_TIME_RE = {
    TimeUnit.DAY: re.compile(r"^\d{4}-\d{2}-\d{2}$"),
    TimeUnit.HOUR: re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}$"),
}


@dataclass(frozen=True)
class JourneyError:
    """A journey the API could not report on, inside a successful call."""

    journey_id: int
    error_code: int

    @property
    def meaning(self) -> str:
        """What the code means."""
        return CODE_MEANINGS.get(self.error_code, "unknown error code")

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form for XCom and logs."""
        return {"journey_id": self.journey_id, "error_code": self.error_code, "meaning": self.meaning}


class ParsedResponse:
    """Rows and per-journey errors of one successful call.

    The rows are held either as typed records (``records``: instances of the
    :data:`RECORD_TYPES` entry of the call, fields in ``COLUMNS`` order; what the fast path
    produces and what the sinks write without building dicts) or as flat dicts. ``rows`` gives
    flat dicts either way, keys in ``COLUMNS`` order followed by any field the contract does
    not name.

    :param rows: flat rows (the field-by-field path).
    :param errors: per-journey errors of the call.
    :param records: typed records (the fast path); ``rows`` is then built on first access.
    :param call: the request this answers (its journeys and window).
    :param ok_journeys: the journeys the call answered with ``error_code`` 0: the ones whose
        statistics over the call's window are complete in ``rows`` (possibly none of them).
    """

    __slots__ = ("_rows", "call", "errors", "ok_journeys", "records")

    def __init__(
        self,
        rows: list[dict[str, Any]] | None = None,
        errors: list[JourneyError] | None = None,
        *,
        records: list[msgspec.Struct] | None = None,
        call: PlannedCall | None = None,
        ok_journeys: frozenset[int] = frozenset(),
    ) -> None:
        self._rows = rows if rows is not None or records is not None else []
        self.errors: list[JourneyError] = errors if errors is not None else []
        self.records = records
        self.call = call
        self.ok_journeys = ok_journeys

    @property
    def rows(self) -> list[dict[str, Any]]:
        """Every row as a flat dict (built from ``records`` on first access)."""
        if self._rows is None:
            self._rows = msgspec.to_builtins(self.records)
        return self._rows

    @property
    def row_count(self) -> int:
        """Number of rows (without building dicts)."""
        return len(self.records) if self.records is not None else len(self.rows)

    def __repr__(self) -> str:
        return f"ParsedResponse(rows={self.row_count}, errors={self.errors!r})"


def error_for(
    code: int | None, message: str, status: int | None, *, retry_after: float | None = None
) -> EngageLabError:
    """Map an API ``code`` (or, without one, the HTTP status) to its exception."""
    cls: type[EngageLabError]
    if code is not None and code in _CODE_CLASSES:
        cls = _CODE_CLASSES[code]
    elif status == 401:
        cls = EngageLabAuthError
    elif status == 429:
        cls = EngageLabRateLimitError
    elif status is not None and status >= 500:
        cls = EngageLabServerError
    elif status is not None and 400 <= status < 500:
        cls = EngageLabBadRequestError
    else:
        cls = EngageLabResponseError
    meaning = CODE_MEANINGS.get(code) if code is not None else None
    text = message if not meaning or meaning.lower().startswith(message.lower().rstrip(".")) else (
        f"{message} ({meaning})"
    )
    err = cls(text or meaning or "request failed", code=code, status=status)
    err.retry_after = retry_after
    return err


def _snippet(body: bytes) -> str:
    text = body[:200].decode("utf-8", "replace")
    return " ".join(text.split()) or "<empty body>"


def parse_response(
    call: PlannedCall,
    status: int,
    body: bytes,
    *,
    retry_after: float | None = None,
) -> ParsedResponse:
    """Turn one HTTP answer into rows and journey errors, or raise the mapped error.

    :param call: the request this answers (for the checks that rows belong to it).
    :param status: the HTTP status code.
    :param body: the raw response body.
    :param retry_after: the parsed ``Retry-After`` header, if any.
    """
    if 300 <= status < 400:
        raise EngageLabResponseError(
            f"unexpected HTTP {status} redirect from {call.endpoint}: redirects are not followed, "
            "so the credentials never go to another host; check the connection's host",
            status=status,
        )
    if 200 <= status < 300 and body:
        fast = _parse_fast(call, body)
        if fast is not None:
            return fast
    try:
        payload = _loads(body) if body else None
    except (ValueError, UnicodeDecodeError):
        payload = None
    if not isinstance(payload, dict) or not isinstance(payload.get("code"), int):
        if status in (401, 429) or status >= 500 or 400 <= status < 500:
            raise error_for(None, f"non-JSON error response: {_snippet(body)}", status,
                            retry_after=retry_after)
        # A 200 (or other 2xx/3xx) without a valid envelope: truncated or replaced by a
        # proxy on the way. A retry can help.
        raise EngageLabResponseError(
            f"invalid response from {call.endpoint}: expected a JSON envelope with an integer "
            f"'code', got: {_snippet(body)}",
            status=status,
            retryable=True,
        )
    code = payload["code"]
    message = str(payload.get("message") or "")
    if code != 0 or status >= 400:
        if code == 0:
            code = None  # an HTTP error with a success code: trust the HTTP status
        raise error_for(code, message, status, retry_after=retry_after)
    if not 200 <= status < 300:
        raise EngageLabResponseError(f"unexpected HTTP {status} from {call.endpoint}", status=status)
    return _parse_data(call, payload.get("data"), status)


def _parse_fast(call: PlannedCall, body: bytes) -> ParsedResponse | None:
    """The typed fast path of :func:`parse_response` for a 2xx answer, or ``None``.

    msgspec decodes the body straight into typed records (types checked in C); the window of
    every ``time`` and the identity of every entry are checked here at C level. Anything
    unusual (a refusal, a type or field the contract does not allow, a time outside the
    window, a journey not asked for, a detail row naming its own journey or unit) returns
    ``None``: the field-by-field path then decides, with its messages. Both paths give the
    same rows for the bodies this one accepts.
    """
    try:
        answer = _DECODERS[call.stats_type, call.time_unit].decode(body)
    except (msgspec.DecodeError, ValueError):
        return None
    if answer.code != 0:
        return None
    unit = call.time_unit.value
    requested = set(call.journey_ids)
    answered: set[int] = set()
    malformed = 0
    errors: list[JourneyError] = []
    good: list[Any] = []
    for entry in answer.data:
        jid = entry.journey_id
        if jid == -1:
            malformed += 1
        elif jid not in requested or jid in answered:
            return None
        else:
            answered.add(jid)
        if entry.error_code != 0:
            errors.append(JourneyError(jid, entry.error_code))
        elif entry.detail is None or (entry.time_unit is not msgspec.UNSET and entry.time_unit != unit):
            return None
        else:
            good.append(entry)
    if sum(1 for j in call.journey_ids if j not in answered) > malformed:
        return None
    records = list(_chain(entry.detail for entry in good))
    if not _bucket_times(call.time_unit, call.start, call.end).issuperset(map(_RECORD_TIME, records)):
        return None
    if set(map(_RECORD_IDENTITY, records)) - {(msgspec.UNSET, unit)}:
        return None  # a detail row carrying journey_id or another time_unit
    for entry in good:
        jid = entry.journey_id
        for record in entry.detail:
            record.journey_id = jid
    ok = frozenset(entry.journey_id for entry in good) - {-1}
    return ParsedResponse(records=records, errors=errors, call=call, ok_journeys=ok)


def _bad(call: PlannedCall, status: int, what: str) -> EngageLabResponseError:
    return EngageLabResponseError(f"invalid response for {call.describe()}: {what}", status=status)


def _parse_data(call: PlannedCall, data: Any, status: int) -> ParsedResponse:
    if not isinstance(data, list):
        raise _bad(call, status, "'data' is not a list")
    result = ParsedResponse(call=call)
    ok: set[int] = set()
    requested = set(call.journey_ids)
    answered: set[int] = set()
    malformed = 0
    fields = DETAIL_FIELDS[call.stats_type]
    unit = call.time_unit.value
    time_re = _TIME_RE[call.time_unit]
    first, last = call.start.isoformat(), call.end.isoformat()
    for entry in data:
        if not isinstance(entry, dict):
            raise _bad(call, status, "an entry of 'data' is not an object")
        jid = entry.get("journey_id")
        error_code = entry.get("error_code", 0)
        if type(jid) is not int or type(error_code) is not int:
            raise _bad(call, status, f"entry with journey_id={jid!r} error_code={error_code!r}")
        if jid == -1:
            malformed += 1
        elif jid not in requested:
            raise _bad(call, status, f"journey {jid} was not requested")
        elif jid in answered:
            raise _bad(call, status, f"journey {jid} is answered twice")
        else:
            answered.add(jid)
        if error_code != 0:
            result.errors.append(JourneyError(jid, error_code))
            continue
        if jid != -1:
            ok.add(jid)
        entry_unit = entry.get("time_unit", unit)
        if entry_unit != unit:
            raise _bad(call, status, f"journey {jid} has time_unit {entry_unit!r}, asked {unit}")
        detail = entry.get("detail")
        if not isinstance(detail, list):
            # A successful journey without its rows would silently lose data.
            raise _bad(call, status, f"journey {jid}: 'detail' must be a list, got {detail!r}")
        append = result.rows.append
        for row in detail:
            append(_flatten(call, status, jid, unit, row, fields, time_re, first, last))
    missing = [j for j in call.journey_ids if j not in answered]
    if len(missing) > malformed:
        shown = ", ".join(str(j) for j in missing[:10])
        raise _bad(call, status, f"no entry for requested journey(s) {shown}")
    result.ok_journeys = frozenset(ok)
    return result


def _flatten(
    call: PlannedCall,
    status: int,
    jid: int,
    unit: str,
    row: Any,
    fields: tuple[tuple[str, str], ...],
    time_re: re.Pattern[str],
    first: str,
    last: str,
) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise _bad(call, status, f"journey {jid}: a detail row is not an object")
    for name, kind in fields:
        value = row.get(name)
        vtype = type(value)
        if kind == _INT:
            ok = vtype is int
        elif kind == _NUM:
            ok = vtype is int or (vtype is float and math.isfinite(value))  # type: ignore[arg-type]
        else:
            ok = vtype is str
        if not ok:
            got = "missing" if name not in row else f"{value!r} ({vtype.__name__})"
            raise _bad(call, status, f"journey {jid}: detail field {name!r} must be {kind}, got {got}")
    t = row["time"]
    if not time_re.match(t) or not first <= t[:10] <= last:
        raise _bad(call, status, f"journey {jid}: time {t!r} is not a {unit} bucket in {first}..{last}")
    flat: dict[str, Any] = {"journey_id": jid, "time_unit": unit}
    for name, _ in fields:
        flat[name] = row[name]
    if len(row) != len(fields):
        _add_extras(call, status, flat, row)
    return flat


_IDENTITY = frozenset({"journey_id", "time_unit"})


def _add_extras(call: PlannedCall, status: int, flat: dict[str, Any], row: dict[str, Any]) -> None:
    """Append the fields of ``row`` the contract does not name to ``flat`` (in row order).

    A detail row may repeat its entry's ``journey_id`` or ``time_unit``; a different value
    would make the row ambiguous, so the answer is refused.
    """
    for key, value in row.items():
        if key not in flat:
            flat[key] = value
        elif key in _IDENTITY and (type(value) is not type(flat[key]) or value != flat[key]):
            raise _bad(
                call, status,
                f"journey {flat['journey_id']}: a detail row has {key}={value!r}, its entry {flat[key]!r}",
            )
