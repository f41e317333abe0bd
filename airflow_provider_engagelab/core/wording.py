"""Errors of answers: the API code mapping, and messages for what the decoder refuses.

msgspec reports where a body breaks the contract as a path (``$.data[0].detail[2].entry_count``);
this module reads the value at that path from a lenient decoding of the same body and words
one message naming the journey and the field. It never produces rows: the typed decoder in
:mod:`.parsing` is the only way to them. Pure: no Airflow imports.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import msgspec

from airflow_provider_engagelab.core.contract import CODE_CLASSES, CODE_MEANINGS, COLUMN_KINDS
from airflow_provider_engagelab.core.planning import PlannedCall
from airflow_provider_engagelab.exceptions import (
    EngageLabAuthError,
    EngageLabBadRequestError,
    EngageLabError,
    EngageLabRateLimitError,
    EngageLabResponseError,
    EngageLabServerError,
)

_PATH = re.compile(r" - at `\$(.*)`$")
_STEP = re.compile(r"\.(\w+)|\[(\d+)\]")
_MISSING = re.compile(r"^Object missing required field `([^`]+)`")


def error_for(
    code: int | None, message: str, status: int | None, *, retry_after: float | None = None
) -> EngageLabError:
    """Map an API ``code`` (or, without one, the HTTP status) to its exception."""
    cls: type[EngageLabError]
    if code is not None and code in CODE_CLASSES:
        cls = CODE_CLASSES[code]
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


def bad_response(call: PlannedCall, status: int, what: str) -> EngageLabResponseError:
    """An answer that breaks the contract in a way a retry cannot fix."""
    return EngageLabResponseError(f"invalid response for {call.describe()}: {what}", status=status)


def snippet(body: bytes) -> str:
    """The start of a body, on one line, for a message."""
    text = body[:200].decode("utf-8", "replace")
    return " ".join(text.split()) or "<empty body>"


def _lenient(body: bytes) -> Any:
    """The body as Python values (the standard library takes NaN literals too), or ``None``."""
    try:
        return msgspec.json.decode(body)
    except (msgspec.DecodeError, ValueError):
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return None


def envelope_error(call: PlannedCall, status: int, body: bytes) -> tuple[int | None, str]:
    """The API code and message of a non-2xx answer (``None`` and a snippet without one)."""
    payload = _lenient(body) if body else None
    if not isinstance(payload, dict) or not isinstance(payload.get("code"), int):
        return None, f"non-JSON error response: {snippet(body)}"
    code = payload["code"]
    return (code or None), str(payload.get("message") or "")


def _not_an_envelope(call: PlannedCall, status: int, body: bytes) -> EngageLabResponseError:
    # A 200 without a valid envelope: truncated or replaced by a proxy on the way. A retry can help.
    return EngageLabResponseError(
        f"invalid response from {call.endpoint}: expected a JSON envelope with an integer "
        f"'code', got: {snippet(body)}",
        status=status,
        retryable=True,
    )


def word_refusal(call: PlannedCall, status: int, body: bytes, exc: Exception) -> EngageLabError:
    """The error for a 2xx body that the typed decoder refused with ``exc``."""
    payload = _lenient(body) if body else None
    if not isinstance(payload, dict) or not isinstance(payload.get("code"), int):
        return _not_an_envelope(call, status, body)
    if payload["code"] != 0:
        return error_for(payload["code"], str(payload.get("message") or ""), status)
    if not isinstance(exc, msgspec.ValidationError):  # JSON the stdlib takes: NaN, Infinity
        return _non_finite(call, status, payload) or bad_response(call, status, str(exc))
    found = _PATH.search(str(exc))
    steps = [m.group(1) or int(m.group(2)) for m in _STEP.finditer(found.group(1))] if found else []
    return bad_response(call, status, _what(call, payload, steps, str(exc)))


def _non_finite(call: PlannedCall, status: int, payload: dict[str, Any]) -> EngageLabError | None:
    for entry in payload.get("data") or []:
        for row in (entry.get("detail") or []) if isinstance(entry, dict) else []:
            for name, value in row.items() if isinstance(row, dict) else []:
                if isinstance(value, float) and not math.isfinite(value):
                    return bad_response(call, status, _field(call, entry.get("journey_id"), name, row))
    return None


def _field(call: PlannedCall, jid: Any, name: str, row: dict[str, Any]) -> str:
    kind = COLUMN_KINDS[call.stats_type].get(name, "a known field")
    got = "missing" if name not in row else f"{row[name]!r} ({type(row[name]).__name__})"
    return f"journey {jid}: detail field {name!r} must be {kind}, got {got}"


def _what(call: PlannedCall, payload: dict[str, Any], steps: list[Any], message: str) -> str:
    """Word the refusal at ``steps`` (``["data", 0, "detail", 2, "entry_count"]``)."""
    if steps[:1] != ["data"]:
        return message
    data = payload.get("data")
    if len(steps) == 1:
        return "'data' is not a list"
    entry = data[steps[1]] if isinstance(data, list) and len(data) > steps[1] else None
    if not isinstance(entry, dict):
        return "an entry of 'data' is not an object"
    jid = entry.get("journey_id")
    if len(steps) == 2:  # a required field of the entry is missing
        return f"entry with journey_id={jid!r} error_code={entry.get('error_code', 0)!r}"
    key = steps[2]
    if key in ("journey_id", "error_code"):
        return f"entry with journey_id={jid!r} error_code={entry.get('error_code', 0)!r}"
    if key == "time_unit":
        return f"journey {jid} has time_unit {entry.get('time_unit')!r}, asked {call.time_unit.value}"
    if key != "detail":
        return message
    detail = entry.get("detail")
    if len(steps) == 3:
        return f"journey {jid}: 'detail' must be a list, got {detail!r}"
    row = detail[steps[3]] if isinstance(detail, list) and len(detail) > steps[3] else None
    if not isinstance(row, dict):
        return f"journey {jid}: a detail row is not an object"
    if len(steps) == 4:
        missing = _MISSING.match(message)
        return _field(call, jid, missing.group(1), row) if missing else f"journey {jid}: {message}"
    name = steps[4]
    if name in ("journey_id", "time_unit"):
        own = jid if name == "journey_id" else call.time_unit.value
        return f"journey {jid}: a detail row has {name}={row.get(name)!r}, its entry {own!r}"
    return _field(call, jid, name, row)
