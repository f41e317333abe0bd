"""Detail rows: one renderer for the endpoint's JSON text and for the oracle's dicts.

Each stats type has one function that lists a row's values in API order
(:data:`~.tables.DETAIL_FIELDS`). The oracle zips them with the field names; the endpoint
formats them with a ``%`` template derived from the same field list (every value is a long,
a number written by ``repr`` or a plain ASCII string, so the text is exactly
``json.dumps(row, separators=(",", ":"))``, 5x cheaper than building the dict and dumping it).
The endpoint's body is assembled from cached JSON fragments, one per journey-day.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from airflow_provider_engagelab.testing.sandbox.data import (
    CACHED,
    Component,
    available_days,
    components,
    day_totals,
    hour_series,
)
from airflow_provider_engagelab.testing.sandbox.tables import (
    DATE_RE,
    DETAIL_FIELDS,
    ID_RE,
    MAX_LONG,
    NUMBER_FIELDS,
    STRING_FIELDS,
)

Values = tuple[Any, ...]


def _journey_values(comp: Component, label: str, t: tuple[int, ...]) -> Values:
    return (label, *t[:5])


def _message_values(comp: Any, label: str, t: tuple[int, ...]) -> Values:
    return (comp[0], comp[1], comp[2], label, *t[:9], round(t[9] / 100, 2))


def _webhook_values(comp: Any, label: str, t: tuple[int, ...]) -> Values:
    return (comp[0], comp[1], label, *t[:3])


#: Per stats type: a row's values in the order of ``DETAIL_FIELDS``.
VALUES: dict[str, Callable[[Component, str, tuple[int, ...]], Values]] = {
    "journey": _journey_values,
    "message": _message_values,
    "webhook": _webhook_values,
}


def _json_template(names: tuple[str, ...]) -> str:
    def spec(name: str) -> str:
        if name in STRING_FIELDS:
            return '"%s"'
        return "%r" if name in NUMBER_FIELDS else "%d"

    return "{" + ",".join(f'"{name}":{spec(name)}' for name in names) + "}"


#: Per stats type: the ``%`` template of a row's JSON text.
JSON_TEMPLATES: dict[str, str] = {kind: _json_template(names) for kind, names in DETAIL_FIELDS.items()}


def _dict_renderer(names: tuple[str, ...]) -> Callable[[Values], dict[str, Any]]:
    return lambda values: dict(zip(names, values, strict=True))


#: Per stats type: a row's values to its JSON text, and to its dict.
TO_JSON: dict[str, Callable[[Values], str]] = {kind: t.__mod__ for kind, t in JSON_TEMPLATES.items()}
TO_DICT: dict[str, Callable[[Values], dict[str, Any]]] = {
    kind: _dict_renderer(names) for kind, names in DETAIL_FIELDS.items()
}


@lru_cache(maxsize=4096)
def _day_str(day: int) -> str:
    return date.fromordinal(day).isoformat()


@lru_cache(maxsize=4096)
def _hour_strs(day: int) -> tuple[str, ...]:
    d = date.fromordinal(day).isoformat()
    return tuple(f"{d} {h:02d}" for h in range(24))


def day_detail(kind: str, jid: int, day_mode: bool, day: int, n: int, as_json: bool = False) -> list[Any]:
    """Detail rows of one journey for one day whose first ``n`` (1..24) hours are available.

    Dicts, or with ``as_json`` the JSON text of each row (what the endpoint sends). A DAY
    has one row per component; HOUR rows go hour by hour, the components within each hour.
    """
    render: Callable[[Values], Any] = (TO_JSON if as_json else TO_DICT)[kind]
    values = VALUES[kind]
    comps = components(kind, jid)
    if day_mode:
        label = _day_str(day)
        totals = day_totals(kind, jid, day, n)
        if len(comps) == 1:  # the journey's own row: the hot path of DAY answers
            return [render(values(comps[0], label, totals[0]))]
        return [render(values(c, label, t)) for c, t in zip(comps, totals, strict=True)]
    labels = _hour_strs(day)
    pairs = list(zip(comps, hour_series(kind, jid, day), strict=True))
    return [render(values(c, labels[h], s[h])) for h in range(n) for c, s in pairs]


@lru_cache(maxsize=65536)
def _day_fragment(kind: str, jid: int, day: int, n: int) -> str:
    """The DAY detail rows of one journey-day as JSON text (without the brackets)."""
    return ",".join(day_detail(kind, jid, True, day, n, as_json=True))


@lru_cache(maxsize=4096)
def _hour_fragment(kind: str, jid: int, day: int, n: int) -> str:
    """The HOUR detail rows of one journey-day as JSON text (without the brackets)."""
    return ",".join(day_detail(kind, jid, False, day, n, as_json=True))


def detail_rows(kind: str, jid: int, time_unit: str, first: int, last: int, limit: int) -> list[dict]:
    """Detail rows (fresh dicts) of one journey for days ``first..last`` (ordinals)."""
    day_mode = time_unit == "DAY"
    rows: list[dict[str, Any]] = []
    for day, n in available_days(first, last, limit):
        rows.extend(day_detail(kind, jid, day_mode, day, n))
    return rows


def detail_json(kind: str, jid: int, time_unit: str, first: int, last: int, limit: int) -> str:
    """The same rows as :func:`detail_rows`, as the JSON text of the ``detail`` array."""
    frag = _day_fragment if time_unit == "DAY" else _hour_fragment
    return "[" + ",".join(frag(kind, jid, d, n) for d, n in available_days(first, last, limit)) + "]"


def clear_caches() -> None:
    """Drop every cached series and fragment (used to measure cold timings)."""
    for fn in (*CACHED, _day_str, _hour_strs, _day_fragment, _hour_fragment):
        fn.cache_clear()


# --------------------------------------------------------------------------------------------
# Parameters, as the wire gives them and as the oracle takes them
# --------------------------------------------------------------------------------------------


def parse_journey_id(token: str) -> int | None:
    """Return the journey ID, or None when the token is malformed."""
    if not ID_RE.fullmatch(token):
        return None
    value = int(token)
    if value <= 0 or value > MAX_LONG:
        return None
    return value


def parse_wire_date(text: str) -> date | None:
    """A real ``yyyy-MM-dd`` date, else None."""
    if not DATE_RE.fullmatch(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def coerce_date(value: date | datetime | str, name: str) -> date:
    """A date from a ``date``, ``datetime`` or ``yyyy-MM-dd`` string (the oracle's input)."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        parsed = parse_wire_date(value.strip())
        if parsed is None:
            raise ValueError(f"{name}: expected yyyy-MM-dd, got {value!r}")
        return parsed
    raise TypeError(f"{name} must be a date, datetime or yyyy-MM-dd string")


def coerce_ids(journey_ids: Iterable[int | str] | str | int) -> list[int]:
    """Well-formed journey IDs in first-occurrence order, duplicates and malformed ones dropped."""
    if isinstance(journey_ids, int):
        journey_ids = [journey_ids]
    elif isinstance(journey_ids, str):
        journey_ids = journey_ids.split(",")
    out: list[int] = []
    seen: set[int] = set()
    for raw in journey_ids:
        jid = raw if isinstance(raw, int) and not isinstance(raw, bool) else None
        if jid is None:
            jid = parse_journey_id(str(raw).strip())
        elif not 0 < jid <= MAX_LONG:
            jid = None
        if jid is None or jid in seen:
            continue
        seen.add(jid)
        out.append(jid)
    return out
