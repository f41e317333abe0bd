"""Scripted faults (:class:`Fault`): what one API request gets instead of, or on top of, its answer."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from airflow_provider_engagelab.testing.sandbox.api import Answer, error, rate_limited
from airflow_provider_engagelab.testing.sandbox.tables import HTML_502, MESSAGES

#: Fault kinds understood by :meth:`Sandbox.inject`.
FAULT_KINDS = frozenset(
    {
        "500",
        "429",
        "drop",
        "html",
        "empty",
        "truncated",
        "code_in_200",
        "missing_journey",
        "bad_field",
        "hang",
    }
)


class _Remove:
    """Sentinel: the ``bad_field`` fault removes the field instead of replacing its value."""

    _instance: _Remove | None = None

    def __new__(cls) -> _Remove:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "REMOVE"

    def __reduce__(self) -> str:
        return "REMOVE"


#: Default ``Fault.value``: remove the field.
REMOVE = _Remove()


@dataclass(frozen=True)
class Fault:
    """One scripted fault, consumed by exactly one API request (first in, first out).

    ``kind`` is one of :data:`FAULT_KINDS`:

    ``"500"``
        HTTP ``status`` (default 500) with ``{"code": -1, "message": "Internal server error"}``.
    ``"429"``
        HTTP 429 with code 55110; a ``Retry-After: <retry_after>`` header only when
        ``retry_after`` is given.
    ``"drop"``
        The connection is closed without any response.
    ``"html"``
        HTTP 502 with a ``text/html`` proxy error page.
    ``"empty"``
        HTTP 200 with an empty body.
    ``"truncated"``
        HTTP 200 whose body is the first half of the normal answer (cut JSON).
    ``"code_in_200"``
        HTTP 200 with ``{"code": <code>, "message": ...}`` (``code`` default 50217).
    ``"missing_journey"``
        The normal answer minus its last ``data`` entry (the last requested journey).
    ``"bad_field"``
        The normal answer with ``field`` (default ``"entry_count"``) of the first detail row
        removed (``value`` left at :data:`REMOVE`) or replaced by ``value`` (e.g. ``"12"``
        or ``None`` for a wrong type). ``journey_id``, ``time_unit``, ``error_code`` and
        ``detail`` target the first ``data`` entry instead.
    ``"hang"``
        Sleep ``seconds`` (default: the ``hang_seconds`` setting), then answer normally.

    Scripted faults apply before rate limiting and authentication; the normal-answer kinds
    (``truncated``, ``missing_journey``, ``bad_field``, ``hang``) then modify whatever the
    request would otherwise get (a ``missing_journey``/``bad_field`` fault on an error answer
    changes nothing). Over ``POST /_admin/inject`` a fault is a JSON string (the kind) or an
    object with the same field names, e.g. ``{"kind": "429", "retry_after": 300}``.
    """

    kind: str
    retry_after: int | None = None
    code: int | None = None
    status: int | None = None
    seconds: float | None = None
    field: str | None = None
    value: Any = REMOVE

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(
                f"unknown fault kind {self.kind!r}; expected one of {sorted(FAULT_KINDS)}"
            )
        if self.retry_after is not None and (
            not isinstance(self.retry_after, int) or self.retry_after < 0
        ):
            raise ValueError("retry_after must be a non-negative integer")
        if self.seconds is not None and self.seconds < 0:
            raise ValueError("seconds must be >= 0")

    @classmethod
    def coerce(cls, obj: Fault | str | Mapping[str, Any]) -> Fault:
        """Build a fault from a :class:`Fault`, a kind string or a mapping of its fields."""
        if isinstance(obj, Fault):
            return obj
        if isinstance(obj, str):
            return cls(obj)
        if isinstance(obj, Mapping):
            known = {f.name for f in fields(cls)}
            unknown = set(obj) - known
            if unknown:
                raise ValueError(f"unknown fault field(s): {sorted(unknown)}")
            if "kind" not in obj:
                raise ValueError("a fault needs a 'kind'")
            return cls(**dict(obj))
        raise TypeError(f"cannot make a Fault from {type(obj).__name__}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly representation (fields left at their defaults omitted)."""
        out: dict[str, Any] = {"kind": self.kind}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name != "kind" and v is not None and v is not REMOVE:
                out[f.name] = v
        return out


#: What :func:`immediate_answer` returns for a ``drop`` fault: close without answering.
DROP = "drop"


def immediate_answer(fault: Fault) -> Answer | str | None:
    """The answer a fault sends instead of the normal one, :data:`DROP`, or ``None``.

    ``None``: the request goes on (after a ``hang`` fault's sleep, see :func:`hang_seconds`),
    and :func:`apply_fault` may change its answer.
    """
    kind = fault.kind
    if kind == "500":
        return error(fault.status or 500, -1)
    if kind == "429":
        return rate_limited(fault.retry_after)
    if kind == "drop":
        return DROP
    if kind == "html":
        return Answer(502, HTML_502, "text/html")
    if kind == "empty":
        return Answer(200, b"")
    if kind == "code_in_200":
        code = fault.code if fault.code is not None else 50217
        return Answer(200, {"code": code, "message": MESSAGES.get(code, "error")})
    return None


def hang_seconds(fault: Fault, default: float) -> float:
    """How long a ``hang`` fault sleeps before the request goes on (0 for other kinds)."""
    if fault.kind != "hang":
        return 0.0
    return fault.seconds if fault.seconds is not None else default


def apply_fault(ans: Answer, fault: Fault) -> Answer:
    """The normal answer ``ans`` as a ``truncated``, ``missing_journey`` or ``bad_field`` fault changes it."""
    kind = fault.kind
    if kind == "truncated":
        body = ans.body()
        return Answer(200, body[: len(body) // 2], ans.content_type)
    if kind not in ("missing_journey", "bad_field"):
        return ans
    payload = ans.payload
    if isinstance(payload, bytes) and ans.status == 200:
        try:
            payload = ans.payload = json.loads(payload)
        except ValueError:
            return ans
    ok = (
        ans.status == 200
        and isinstance(payload, dict)
        and payload.get("code") == 0
        and isinstance(payload.get("data"), list)
    )
    if not ok:
        return ans
    data = payload["data"]
    if kind == "missing_journey" and data:
        data.pop()
    elif kind == "bad_field" and data:
        name = fault.field or "entry_count"
        target: dict[str, Any] | None = None
        if name in ("journey_id", "time_unit", "error_code", "detail"):
            target = data[0]
        else:
            target = next((e["detail"][0] for e in data if e.get("detail")), None)
        if target is not None:
            if fault.value is REMOVE:
                target.pop(name, None)
            else:
                target[name] = fault.value
    return ans
