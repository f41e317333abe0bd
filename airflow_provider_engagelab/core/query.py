"""Validation of user input into a :class:`StatsQuery`, before any HTTP call."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from typing import Any

from airflow_provider_engagelab.exceptions import EngageLabValidationError

MAX_IDS_PER_CALL = 100
MAX_DAYS_PER_CALL = 31
#: Journey IDs are longs in the API.
MAX_JOURNEY_ID = 2**63 - 1

_ID_RE = re.compile(r"^[0-9]+$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class StatsType(str, Enum):
    """The three statistics endpoints."""

    JOURNEY = "journey"
    MESSAGE = "message"
    WEBHOOK = "webhook"

    @property
    def endpoint(self) -> str:
        """The API path of this statistics type."""
        return _ENDPOINTS[self]


_ENDPOINTS = {
    StatsType.JOURNEY: "/v1/stats/journey",
    StatsType.MESSAGE: "/v1/stats/journey/message",
    StatsType.WEBHOOK: "/v1/stats/journey/webhook",
}


class TimeUnit(str, Enum):
    """Bucket size of the statistics."""

    HOUR = "HOUR"
    DAY = "DAY"


@dataclass(frozen=True)
class StatsQuery:
    """A validated request for statistics, of any size (the planner splits it)."""

    stats_type: StatsType
    journey_ids: tuple[int, ...]
    time_unit: TimeUnit
    start: date
    end: date

    @property
    def days(self) -> int:
        """Number of calendar days in ``[start, end]``."""
        return (self.end - self.start).days + 1


def _reject(param: str, value: Any, rule: str) -> EngageLabValidationError:
    shown = repr(value)
    if len(shown) > 120:
        shown = shown[:117] + "..."
    return EngageLabValidationError(f"Invalid {param}={shown}: {rule}")


def _alternatives(choices: Sequence[str]) -> str:
    shown = [repr(c) for c in choices]
    if len(shown) == 2:
        return f"{shown[0]} or {shown[1]}"
    return "one of " + ", ".join(shown)


def parse_choice(value: Any, choices: Sequence[str], param: str, *, upper: bool = False) -> str:
    """One of ``choices``, given in any case and with surrounding blanks.

    The one parser of string options (``stats_type``, ``time_unit``, ``output_format``,
    ``on_journey_error``, ...): anything else fails naming the parameter and the choices.
    """
    if isinstance(value, str):
        text = value.strip().upper() if upper else value.strip().lower()
        if text in choices:
            return text
    raise _reject(param, value, f"must be {_alternatives(choices)}")


def parse_stats_type(value: Any, param: str = "stats_type") -> StatsType:
    """Accept ``journey``, ``message`` or ``webhook`` (case-insensitive)."""
    if isinstance(value, StatsType):
        return value
    return StatsType(parse_choice(value, [t.value for t in StatsType], param))


def parse_time_unit(value: Any, param: str = "time_unit") -> TimeUnit:
    """Accept ``HOUR`` or ``DAY`` in any case; the wire form is upper-case."""
    if isinstance(value, TimeUnit):
        return value
    return TimeUnit(parse_choice(value, [u.value for u in TimeUnit], param, upper=True))


def parse_date(value: Any, param: str) -> date:
    """Accept a ``date``, a ``datetime`` (its calendar date) or a ``yyyy-MM-dd`` string."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and _DATE_RE.match(value.strip()):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
        raise _reject(param, value, "is not a real calendar date")
    raise _reject(param, value, "must be a date, a datetime or a 'yyyy-MM-dd' string")


def parse_journey_ids(value: Any, param: str = "journey_ids") -> tuple[int, ...]:
    """Normalise journey IDs to a tuple of positive ints, duplicates removed, order kept.

    Accepts a list/tuple of ints or digit strings, a single int, a comma-separated string,
    or a string holding a list literal (``"[1, 2, 3]"``, what a Jinja template renders a list
    to). Rejects empty input, zero, negatives, booleans, floats and non-digits.
    """
    items: Iterable[Any]
    if isinstance(value, str) and value.strip()[:1] in ("[", "("):
        items = _list_literal(value, param)
    elif isinstance(value, str):
        items = [part.strip() for part in value.split(",")]
    elif isinstance(value, bool):
        raise _reject(param, value, "must be journey IDs (positive integers), not a boolean")
    elif isinstance(value, int):
        items = [value]
    elif isinstance(value, (list, tuple, set, frozenset)) or _is_sequence_like(value):
        items = list(value)
    else:
        raise _reject(param, value, "must be a list of positive integers or a comma-separated string")
    ids: list[int] = []
    seen: set[int] = set()
    for item in items:
        jid = _parse_one_id(item, param)
        if jid not in seen:
            seen.add(jid)
            ids.append(jid)
    if not ids:
        raise _reject(param, value, "at least one journey ID is required")
    return tuple(ids)


def _list_literal(value: str, param: str) -> list[Any]:
    try:
        parsed = ast.literal_eval(value.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        parsed = None
    if not isinstance(parsed, (list, tuple)):
        rule = "a rendered list must be a list literal of journey IDs such as '[1, 2, 3]'"
        raise _reject(param, value, rule)
    return list(parsed)


def _is_sequence_like(value: Any) -> bool:
    # XComArg results arrive as lazy sequences; accept any non-mapping iterable of IDs.
    return hasattr(value, "__iter__") and not hasattr(value, "keys") and not isinstance(value, bytes)


def _parse_one_id(item: Any, param: str) -> int:
    if isinstance(item, bool):
        raise _reject(param, item, "each journey ID must be a positive integer, not a boolean")
    if isinstance(item, int):
        jid = item
    elif isinstance(item, str) and _ID_RE.match(item.strip()):
        jid = int(item.strip())
    else:
        raise _reject(param, item, "each journey ID must be a positive integer (digits only)")
    if jid <= 0:
        raise _reject(param, item, "each journey ID must be a positive integer (> 0)")
    if jid > MAX_JOURNEY_ID:
        raise _reject(param, item, f"each journey ID must be at most {MAX_JOURNEY_ID} (the API's long)")
    return jid


def build_query(
    stats_type: Any,
    journey_ids: Any,
    time_unit: Any,
    start_time: Any,
    end_time: Any,
) -> StatsQuery:
    """Validate every parameter and return the query; raises before any HTTP call."""
    stype = parse_stats_type(stats_type)
    ids = parse_journey_ids(journey_ids)
    unit = parse_time_unit(time_unit)
    start = parse_date(start_time, "start_time")
    end = parse_date(end_time, "end_time")
    if end < start:
        raise _reject(
            "end_time", end.isoformat(), f"must be on or after start_time={start.isoformat()}"
        )
    return StatsQuery(stype, ids, unit, start, end)
