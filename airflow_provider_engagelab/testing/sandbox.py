"""A local EngageLab-compatible journey statistics API, for demos, end-to-end tests and benchmarks.

Standard library only; it imports neither Airflow nor the rest of this provider: it is an
independent model of the upstream contract (``shared/engagelab-ma-stats-api.md``), so a bug in
the provider's own validation or parsing cannot hide behind a shared helper.

Quick start::

    from airflow_provider_engagelab.testing.sandbox import Sandbox, Fault

    with Sandbox(rate_limit=20) as sb:            # binds 127.0.0.1 on a free port
        sb.url                                      # "http://127.0.0.1:<port>"
        sb.inject(Fault("500"), Fault("429", retry_after=300))
        rows = sb.expected_rows("journey", [1, 2], "DAY", "2026-06-01", "2026-06-07")

or from a shell (prints the URL alone on the first line, serves until SIGINT/SIGTERM)::

    python -m airflow_provider_engagelab.testing.sandbox --port 8080 --rate-limit 20

Endpoints (``GET``, HTTP Basic auth ``api_key:api_secret``)
    ``/v1/stats/journey``, ``/v1/stats/journey/message``, ``/v1/stats/journey/webhook`` with
    the required query parameters ``journey_id`` (comma-separated), ``time_unit``
    (``HOUR``/``DAY``, exact upper case), ``start_time`` and ``end_time`` (``yyyy-MM-dd``).

Interpretations of points the contract leaves open (all documented here on purpose)
    * Order of work for an API request: ``latency`` sleep, scripted fault (see
      :class:`Fault`), rate limit
      (429/55110), authentication (401/40050), path (404/40001), method (405/40001), random
      faults (``drop_rate``, ``failure_rate``, ``hang_rate``), then the parameters in this
      order: a missing, empty or repeated parameter -> 400/40001; a date that is not a real
      ``yyyy-MM-dd`` date -> 400/40002; ``time_unit`` not exactly ``HOUR``/``DAY`` ->
      400/50220; ``start_time > end_time`` or a window longer than 31 days -> 400/50217;
      more than 100 comma-separated IDs (counted as given, duplicates and malformed ones
      included) -> 400/50219.
    * "At most 31 days between start and end" is read as a window of at most 31 calendar days
      *inclusive*: ``2026-01-01..2026-01-31`` is accepted, ``2026-01-01..2026-02-01`` is
      50217.
    * A journey ID is well formed when it consists of ASCII digits only (no sign, no
      whitespace), is positive and fits a signed 64-bit long. A malformed ID is answered with
      ``{"journey_id": -1, "time_unit": ..., "error_code": 50221}`` at its position inside a
      code-0 envelope (no ``detail`` key). A repeated well-formed ID is answered once, at its
      first position.
    * Every positive ID exists except those in ``missing_journeys``. A missing journey is, by
      default (``missing_journey_mode="per_journey"``), answered with
      ``{"journey_id": id, "time_unit": ..., "error_code": 50202}``; with
      ``missing_journey_mode="whole_call"`` the whole call fails with HTTP 400
      ``{"code": 50202, "message": "Journey does not exist."}``.
    * Buckets are UTC. The data is available before the instant ``available_through``
      (default: ``None`` = *today 00:00 UTC, evaluated at each request*, i.e. through the end
      of yesterday). An HOUR bucket is returned only if its start is before the cutoff. A DAY
      bucket is returned if at least its first hour is available; its counts are then summed
      over the available hours only (a partial day), and ``in_progress_count`` (a level, not
      a flow) is the value of the day's last available hour. Buckets entirely after the
      cutoff produce no rows (the journey still answers with ``error_code`` 0 and an empty
      ``detail``). A plain date given as ``available_through`` means 00:00 UTC of that date;
      a naive datetime is taken as UTC.
    * Data is deterministic: every number derives from a 64-bit splitmix hash of integers
      (journey, component, day or hour index); Python's per-process hash seed is never
      involved. A day's totals come from the hash of (journey, component, day) and are split
      over its 24 hours by hashed hourly weights with exact integer allocation, each funnel
      stage capped by the previous stage's hourly values. So each DAY row equals the sum of
      its 24 HOUR rows for every flow count and for ``revenue_amount`` (hourly amounts are
      whole cents, so sums are exact), and a full DAY answer costs O(1) per journey-day
      without generating hours. Funnels hold per row:
      ``conversion + completion + early_exit <= entry`` (journey),
      ``revenue <= conversion <= click <= open <= impression <= delivery <= send <= plan
      <= entry`` (message), ``send + send_failure == entry`` (webhook). About 1 hour in 32 is
      all zero. Each journey has 1-3 message components (``component_id = journey_id * 100 +
      k``, names ``EMAIL_k``, ``APP_PUSH_k``, ``SMS_k``, ``WEBPUSH_k`` ...) and 1-2 webhook
      components (``component_id = journey_id * 100 + 50 + k``, names ``WEBHOOK_k``).
    * Rate limit: a token bucket of ``rate_limit`` requests/second (``None`` = unlimited) and
      burst ``rate_burst`` (default ``max(1, rate_limit)``), shared by all API requests. Over
      it: HTTP 429 ``{"code": 55110, ...}`` with ``Retry-After: <seconds until a token,
      rounded up, at least 1>`` when ``send_retry_after`` is true, or ``retry_after_override``
      verbatim when that is set.
    * The admin interface needs no credentials but only answers loopback clients (403
      otherwise), and is not counted in :meth:`Sandbox.counters`: ``GET /_admin/health``,
      ``GET /_admin/counters`` (``by_status`` keys become strings in JSON, ``log`` entries
      lists), ``GET /_admin/config``, ``POST /_admin/config`` (a JSON object of
      :class:`SandboxConfig` fields, e.g. ``{"available_through": "2026-06-02T00:00:00Z",
      "rate_limit": 5}``; answers the new config), ``POST /_admin/reset`` (zero the counters,
      drop queued faults, refill the rate bucket), ``POST /_admin/inject`` (a JSON list of
      faults, or ``{"faults": [...]}``; see :class:`Fault`).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hmac
import json
import math
import random
import re
import signal
import socket
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import date, datetime, timezone
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "ADMIN_PATHS",
    "DETAIL_FIELDS",
    "ENDPOINTS",
    "FAULT_KINDS",
    "REMOVE",
    "Fault",
    "Sandbox",
    "SandboxConfig",
    "main",
]

# --------------------------------------------------------------------------------------------
# Contract constants
# --------------------------------------------------------------------------------------------

#: API path -> stats type.
ENDPOINTS: dict[str, str] = {
    "/v1/stats/journey": "journey",
    "/v1/stats/journey/message": "message",
    "/v1/stats/journey/webhook": "webhook",
}
_PATH_BY_TYPE = {v: k for k, v in ENDPOINTS.items()}
UTC = timezone.utc

#: Admin paths (no auth, loopback only).
ADMIN_PATHS = (
    "/_admin/health",
    "/_admin/counters",
    "/_admin/config",
    "/_admin/reset",
    "/_admin/inject",
)

MAX_JOURNEY_IDS = 100
MAX_WINDOW_DAYS = 31
_MAX_LONG = (1 << 63) - 1

_MESSAGES: dict[int, str] = {
    0: "success",
    -1: "Internal server error",
    40001: "Invalid HTTP parameter",
    40002: "Invalid business parameter",
    40050: "authorization invalid",
    50034: "Project does not exist",
    50202: "Journey does not exist.",
    50217: "Invalid time range.",
    50219: "The number of JourneyIDs exceeds 100.",
    50220: "Invalid time_unit.",
    50221: "Invalid journey_id format.",
    55110: "Too many requests, please try again later.",
}

_JOURNEY_COUNTS = (
    "entry_count",
    "conversion_count",
    "completion_count",
    "early_exit_count",
    "in_progress_count",
)
_MESSAGE_COUNTS = (
    "entry_count",
    "plan_count",
    "send_count",
    "delivery_count",
    "impression_count",
    "open_count",
    "click_count",
    "conversion_count",
    "revenue_count",
)
_WEBHOOK_COUNTS = ("entry_count", "send_count", "send_failure_count")

#: Detail field names in API order, per stats type.
DETAIL_FIELDS: dict[str, tuple[str, ...]] = {
    "journey": ("time", *_JOURNEY_COUNTS),
    "message": (
        "component_id",
        "component_name",
        "channel",
        "time",
        *_MESSAGE_COUNTS,
        "revenue_amount",
    ),
    "webhook": ("component_id", "component_name", "time", *_WEBHOOK_COUNTS),
}

_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_ID_RE = re.compile(r"[0-9]+")

# --------------------------------------------------------------------------------------------
# Deterministic data model
# --------------------------------------------------------------------------------------------

_M64 = (1 << 64) - 1
_K1 = 0x9E3779B97F4A7C15
_K2 = 0xBF58476D1CE4E5B9
_K3 = 0x94D049BB133111EB
_K4 = 0xD6E8FEB86659FD93
_SALT = 0x2545F4914F6CDD1D

#: Relative traffic per UTC hour of day, in percent.
_SHAPE = (
    20, 14, 10, 8, 8, 10, 18, 35, 55, 70, 80, 85,
    88, 90, 88, 85, 82, 80, 78, 75, 70, 60, 45, 30,
)  # fmt: skip

_CHANNELS = (
    ("EMAIL", "Email"),
    ("APP_PUSH", "AppPush"),
    ("SMS", "SMS"),
    ("WEBPUSH", "WebPush"),
    ("WHATSAPP", "WhatsApp"),
)


def _mix(a: int, b: int = 0, c: int = 0, d: int = 0) -> int:
    """Return a 64-bit splitmix-style hash of four integers (stable across processes)."""
    z = (a * _K1 + b * _K2 + c * _K3 + d * _K4 + _SALT) & _M64
    z = ((z ^ (z >> 30)) * _K2) & _M64
    z = ((z ^ (z >> 27)) * _K3) & _M64
    return z ^ (z >> 31)


@lru_cache(maxsize=65536)
def _profile(
    jid: int,
) -> tuple[int, tuple[tuple[int, str, str, int], ...], tuple[tuple[int, str, int], ...]]:
    """Return (scale, message components, webhook components) of a journey.

    A message component is ``(component_id, component_name, channel, weight_percent)``, a
    webhook component ``(component_id, component_name, weight_percent)``.
    """
    scale = 4 + _mix(jid, 1) % 97
    n_msg = 1 + _mix(jid, 2) % 3
    msg = []
    for k in range(1, n_msg + 1):
        prefix, channel = _CHANNELS[_mix(jid, 3, k) % len(_CHANNELS)]
        msg.append((jid * 100 + k, f"{prefix}_{k}", channel, 40 + _mix(jid, 4, k) % 61))
    n_hook = 1 + _mix(jid, 5) % 2
    hooks = tuple(
        (jid * 100 + 50 + k, f"WEBHOOK_{k}", 30 + _mix(jid, 6, k) % 71)
        for k in range(1, n_hook + 1)
    )
    return scale, tuple(msg), hooks


_SHAPE_SUM = sum(_SHAPE)

# Roles, the fourth argument of _mix, keep the hash streams of different uses apart.
_ROLE_DAY = 7
_ROLE_HOUR = 8
_ROLE_LEVEL = 9
_ROLE_EXTRA = 10


def _weekday_factor(day: int) -> int:
    """Percent of a weekday's traffic (ordinal 1 = Monday, 0001-01-01)."""
    return 70 if (day + 6) % 7 >= 5 else 100


def _alloc(total: int, weights: list[int] | tuple[int, ...], wsum: int) -> list[int]:
    """Split ``total`` into integer parts proportional to ``weights`` (cumulative rounding).

    The parts add up to ``total`` exactly (``wsum`` must be ``sum(weights)`` and positive
    when ``total`` is); a zero weight gets 0; and when ``total <= wsum`` no part exceeds its
    weight, so the hourly values of one funnel stage can serve as the caps of the next.
    """
    if total == 0:
        return [0] * len(weights)
    out = []
    acc = prev = 0
    for w in weights:
        acc += w
        cur = total * acc // wsum
        out.append(cur - prev)
        prev = cur
    return out


@lru_cache(maxsize=16384)
def _hour_weights(jid: int, comp: int, day: int) -> tuple[tuple[int, ...], int]:
    """Relative volume of each UTC hour of a day (about 1 hour in 32 is zero) and their sum."""
    base = (day - 1) * 24
    ws = []
    for h in range(24):
        x = _mix(jid, comp, base + h, _ROLE_HOUR)
        ws.append(0 if x & 0x1F == 0 else _SHAPE[h] * (50 + (x >> 5) % 101))
    total = sum(ws)
    if total == 0:
        ws[12] = 1
        total = 1
    return tuple(ws), total


def _level(jid: int, scale: int, hour_index: int) -> int:
    """Users in progress at an hour (a level, not a flow)."""
    return 6 * scale + _mix(jid, 0, hour_index, _ROLE_LEVEL) % (2 * scale + 1)


@lru_cache(maxsize=131072)
def _journey_day(jid: int, day: int) -> tuple[int, int, int, int]:
    """Day totals (entry, conversion, completion, early_exit); ``day`` is a date ordinal."""
    scale = _profile(jid)[0]
    x = _mix(jid, 0, day, _ROLE_DAY)
    entry = scale * _SHAPE_SUM * _weekday_factor(day) * (60 + x % 81) // 1_000_000
    conv = entry * ((x >> 12) % 16) // 100
    early = entry * ((x >> 16) % 21) // 100
    completion = (entry - conv - early) * (30 + (x >> 21) % 51) // 100
    return entry, conv, completion, early


@lru_cache(maxsize=8192)
def _journey_hours(jid: int, day: int) -> tuple[tuple[int, int, int, int, int], ...]:
    """24 hourly tuples (entry, conversion, completion, early_exit, in_progress)."""
    scale = _profile(jid)[0]
    e, c, p, x = _journey_day(jid, day)
    ws, wsum = _hour_weights(jid, 0, day)
    eh = _alloc(e, ws, wsum)
    ch = _alloc(c, eh, e)
    rest = [a - b for a, b in zip(eh, ch, strict=True)]
    xh = _alloc(x, rest, e - c)
    rest = [a - b for a, b in zip(rest, xh, strict=True)]
    ph = _alloc(p, rest, e - c - x)
    base = (day - 1) * 24
    return tuple((eh[h], ch[h], ph[h], xh[h], _level(jid, scale, base + h)) for h in range(24))


@lru_cache(maxsize=65536)
def _message_day(jid: int, day: int) -> tuple[tuple[int, ...], ...]:
    """Per message component: day totals of the nine counts, then revenue in cents."""
    scale, comps, _ = _profile(jid)
    volume = scale * _SHAPE_SUM * _weekday_factor(day)
    out = []
    for comp_id, _name, _channel, weight in comps:
        x = _mix(jid, comp_id, day, _ROLE_DAY)
        y = _mix(x, 0, 0, _ROLE_EXTRA)
        entry = volume * weight * (60 + x % 81) // 100_000_000
        plan = entry - entry * ((x >> 12) % 6) // 100
        send = plan - plan * ((x >> 15) % 5) // 100
        delivery = send * (85 + (x >> 18) % 16) // 100
        impression = delivery * (40 + (x >> 22) % 61) // 100
        opened = impression * (30 + (x >> 28) % 61) // 100
        click = opened * (5 + (x >> 34) % 31) // 100
        conv = click * (5 + y % 46) // 100
        revenue = conv * (50 + (y >> 6) % 51) // 100
        price_cents = 500 + ((y >> 13) % 4096) * 5
        out.append(
            (
                entry,
                plan,
                send,
                delivery,
                impression,
                opened,
                click,
                conv,
                revenue,
                revenue * price_cents,
            )
        )
    return tuple(out)


@lru_cache(maxsize=8192)
def _message_hours(jid: int, day: int) -> tuple[tuple[tuple[int, ...], ...], ...]:
    """Per message component, 24 hourly tuples shaped like :func:`_message_day`'s."""
    comps = _profile(jid)[1]
    out = []
    for (comp_id, _name, _channel, _weight), tot in zip(comps, _message_day(jid, day), strict=True):
        ws, wsum = _hour_weights(jid, comp_id, day)
        cols = [_alloc(tot[0], ws, wsum)]
        for k in range(1, 9):
            cols.append(_alloc(tot[k], cols[-1], tot[k - 1]))
        price = tot[9] // tot[8] if tot[8] else 0
        cols.append([r * price for r in cols[8]])
        out.append(tuple(zip(*cols, strict=True)))
    return tuple(out)


@lru_cache(maxsize=65536)
def _webhook_day(jid: int, day: int) -> tuple[tuple[int, int, int], ...]:
    """Per webhook component: day totals (entry, send, send_failure)."""
    scale, _, hooks = _profile(jid)
    volume = scale * _SHAPE_SUM * _weekday_factor(day)
    out = []
    for comp_id, _name, weight in hooks:
        x = _mix(jid, comp_id, day, _ROLE_DAY)
        entry = volume * weight * (60 + x % 81) // 100_000_000
        if (x >> 12) & 0x3F == 0:  # a bad day for the webhook's target
            failure = entry * (20 + (x >> 18) % 61) // 100
        else:
            failure = entry * ((x >> 18) % 8) // 100
        out.append((entry, entry - failure, failure))
    return tuple(out)


@lru_cache(maxsize=8192)
def _webhook_hours(jid: int, day: int) -> tuple[tuple[tuple[int, int, int], ...], ...]:
    """Per webhook component, 24 hourly tuples (entry, send, send_failure)."""
    hooks = _profile(jid)[2]
    out = []
    for (comp_id, _name, _weight), (entry, _send, failure) in zip(
        hooks, _webhook_day(jid, day), strict=True
    ):
        ws, wsum = _hour_weights(jid, comp_id, day)
        eh = _alloc(entry, ws, wsum)
        fh = _alloc(failure, eh, entry)
        out.append(tuple((e, e - f, f) for e, f in zip(eh, fh, strict=True)))
    return tuple(out)


def _sum_cols(rows: tuple[tuple[int, ...], ...]) -> tuple[int, ...]:
    return tuple(sum(col) for col in zip(*rows, strict=True))


@lru_cache(maxsize=4096)
def _day_str(day: int) -> str:
    return date.fromordinal(day).isoformat()


@lru_cache(maxsize=4096)
def _hour_strs(day: int) -> tuple[str, ...]:
    d = date.fromordinal(day).isoformat()
    return tuple(f"{d} {h:02d}" for h in range(24))


def _journey_row(label: str, t: tuple[int, ...]) -> dict[str, Any]:
    return {
        "time": label,
        "entry_count": t[0],
        "conversion_count": t[1],
        "completion_count": t[2],
        "early_exit_count": t[3],
        "in_progress_count": t[4],
    }


def _message_row(comp: tuple[int, str, str, int], label: str, t: tuple[int, ...]) -> dict:
    return {
        "component_id": comp[0],
        "component_name": comp[1],
        "channel": comp[2],
        "time": label,
        "entry_count": t[0],
        "plan_count": t[1],
        "send_count": t[2],
        "delivery_count": t[3],
        "impression_count": t[4],
        "open_count": t[5],
        "click_count": t[6],
        "conversion_count": t[7],
        "revenue_count": t[8],
        "revenue_amount": round(t[9] / 100, 2),
    }


def _webhook_row(comp: tuple[int, str, int], label: str, t: tuple[int, ...]) -> dict:
    return {
        "component_id": comp[0],
        "component_name": comp[1],
        "time": label,
        "entry_count": t[0],
        "send_count": t[1],
        "send_failure_count": t[2],
    }


def _day_detail(kind: str, jid: int, day_mode: bool, day: int, n: int, as_json: bool = False) -> list[Any]:
    """Detail rows of one journey for one day whose first ``n`` (1..24) hours are available.

    Dicts, or with ``as_json`` the JSON text of each row (what the endpoint sends).
    """
    journey_row, message_row, webhook_row = _ROW_MAKERS[as_json]
    if kind == "journey":
        if not day_mode:
            labels = _hour_strs(day)
            return [journey_row(labels[h], t) for h, t in enumerate(_journey_hours(jid, day)[:n])]
        t: tuple[int, ...]
        if n == 24:
            t = (*_journey_day(jid, day), _level(jid, _profile(jid)[0], (day - 1) * 24 + 23))
        else:
            hours = _journey_hours(jid, day)[:n]
            t = (*_sum_cols(hours)[:4], hours[-1][4])
        return [journey_row(_day_str(day), t)]
    if kind == "message":
        comps = _profile(jid)[1]
        if day_mode:
            label = _day_str(day)
            if n == 24:
                totals = _message_day(jid, day)
            else:
                totals = tuple(_sum_cols(s[:n]) for s in _message_hours(jid, day))
            return [message_row(c, label, t) for c, t in zip(comps, totals, strict=True)]
        labels = _hour_strs(day)
        series = _message_hours(jid, day)
        return [
            message_row(c, labels[h], s[h])
            for h in range(n)
            for c, s in zip(comps, series, strict=True)
        ]
    hooks = _profile(jid)[2]
    if day_mode:
        label = _day_str(day)
        if n == 24:
            totals = _webhook_day(jid, day)
        else:
            totals = tuple(_sum_cols(s[:n]) for s in _webhook_hours(jid, day))
        return [webhook_row(c, label, t) for c, t in zip(hooks, totals, strict=True)]
    labels = _hour_strs(day)
    series = _webhook_hours(jid, day)
    return [
        webhook_row(c, labels[h], s[h])
        for h in range(n)
        for c, s in zip(hooks, series, strict=True)
    ]


# The JSON text of a row, formatted directly (5x cheaper than building a dict and calling
# json.dumps): the same text as json.dumps(<the dict row>, separators=(",", ":")), since every
# value is an int, a float written by repr() or a string quoted by json.dumps.
_JOURNEY_JSON = (
    '{"time":%s,"entry_count":%d,"conversion_count":%d,"completion_count":%d,'
    '"early_exit_count":%d,"in_progress_count":%d}'
)
_MESSAGE_JSON = (
    '{"component_id":%d,"component_name":%s,"channel":%s,"time":%s,"entry_count":%d,'
    '"plan_count":%d,"send_count":%d,"delivery_count":%d,"impression_count":%d,"open_count":%d,'
    '"click_count":%d,"conversion_count":%d,"revenue_count":%d,"revenue_amount":%r}'
)
_WEBHOOK_JSON = (
    '{"component_id":%d,"component_name":%s,"time":%s,"entry_count":%d,"send_count":%d,'
    '"send_failure_count":%d}'
)


@lru_cache(maxsize=8192)
def _quoted(text: str) -> str:
    return json.dumps(text)


def _journey_json(label: str, t: tuple[int, ...]) -> str:
    return _JOURNEY_JSON % (_quoted(label), *t[:5])


def _message_json(comp: tuple[int, str, str, int], label: str, t: tuple[int, ...]) -> str:
    return _MESSAGE_JSON % (
        comp[0], _quoted(comp[1]), _quoted(comp[2]), _quoted(label), *t[:9], round(t[9] / 100, 2)
    )


def _webhook_json(comp: tuple[int, str, int], label: str, t: tuple[int, ...]) -> str:
    return _WEBHOOK_JSON % (comp[0], _quoted(comp[1]), _quoted(label), *t[:3])


_ROW_MAKERS: dict[bool, tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]]] = {
    False: (_journey_row, _message_row, _webhook_row),
    True: (_journey_json, _message_json, _webhook_json),
}


@lru_cache(maxsize=65536)
def _day_fragment(kind: str, jid: int, day: int, n: int) -> str:
    """The DAY detail rows of one journey-day as JSON text (without the brackets)."""
    return ",".join(_day_detail(kind, jid, True, day, n, as_json=True))


@lru_cache(maxsize=4096)
def _hour_fragment(kind: str, jid: int, day: int, n: int) -> str:
    """The HOUR detail rows of one journey-day as JSON text (without the brackets)."""
    return ",".join(_day_detail(kind, jid, False, day, n, as_json=True))


def _available_days(first: int, last: int, limit: int) -> Iterator[tuple[int, int]]:
    """Yield ``(day, available_hours)`` for the days of ``first..last`` with data."""
    for day in range(first, last + 1):
        n = limit - (day - 1) * 24
        if n <= 0:
            return
        yield day, (24 if n > 24 else n)


def _detail(kind: str, jid: int, time_unit: str, first: int, last: int, limit: int) -> list[dict]:
    """Detail rows (fresh dicts) of one journey for days ``first..last`` (ordinals)."""
    day_mode = time_unit == "DAY"
    rows: list[dict[str, Any]] = []
    for day, n in _available_days(first, last, limit):
        rows.extend(_day_detail(kind, jid, day_mode, day, n))
    return rows


def _detail_json(kind: str, jid: int, time_unit: str, first: int, last: int, limit: int) -> str:
    """The same rows as :func:`_detail`, as the JSON text of the ``detail`` array."""
    frag = _day_fragment if time_unit == "DAY" else _hour_fragment
    return (
        "[" + ",".join(frag(kind, jid, d, n) for d, n in _available_days(first, last, limit)) + "]"
    )


def _clear_caches() -> None:
    """Drop every cached series and fragment (used to measure cold timings)."""
    for fn in (
        _profile,
        _hour_weights,
        _journey_day,
        _journey_hours,
        _message_day,
        _message_hours,
        _webhook_day,
        _webhook_hours,
        _day_str,
        _hour_strs,
        _day_fragment,
        _hour_fragment,
    ):
        fn.cache_clear()


_EPOCH = datetime(1, 1, 1, tzinfo=UTC)
_HOUR_US = 3_600_000_000


def _hour_limit(cutoff: datetime) -> int:
    """Number of hour buckets (indexed from 0001-01-01 00:00 UTC) that start before cutoff."""
    delta = cutoff - _EPOCH
    micros = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
    return max(0, -(-micros // _HOUR_US))


def _parse_journey_id(token: str) -> int | None:
    """Return the journey ID, or None when the token is malformed."""
    if not _ID_RE.fullmatch(token):
        return None
    value = int(token)
    if value <= 0 or value > _MAX_LONG:
        return None
    return value


def _parse_wire_date(text: str) -> date | None:
    if not _DATE_RE.fullmatch(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


# --------------------------------------------------------------------------------------------
# Faults and configuration
# --------------------------------------------------------------------------------------------

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


@dataclass(frozen=True)
class SandboxConfig:
    """The sandbox's run-time settings; change them with :meth:`Sandbox.configure`."""

    api_key: str = "sandbox-key"
    api_secret: str = "sandbox-secret"
    #: Data exists before this instant; ``None`` = today 00:00 UTC at request time.
    available_through: datetime | None = None
    #: IDs that do not exist (every other positive ID does).
    missing_journeys: frozenset[int] = frozenset()
    #: ``"per_journey"`` (error_code 50202 in a code-0 envelope) or ``"whole_call"`` (HTTP 400).
    missing_journey_mode: str = "per_journey"
    #: Requests per second; ``None`` = unlimited.
    rate_limit: float | None = None
    #: Bucket size; ``None`` = ``max(1, rate_limit)``.
    rate_burst: float | None = None
    #: Send ``Retry-After`` with rate-limit 429s.
    send_retry_after: bool = True
    #: Fixed ``Retry-After`` value for rate-limit 429s instead of the computed one.
    retry_after_override: int | None = None
    #: Seconds slept before answering every API request.
    latency: float = 0.0
    #: Probability of an HTTP 500 (code -1).
    failure_rate: float = 0.0
    #: Probability of closing the connection without a response.
    drop_rate: float = 0.0
    #: Probability of sleeping ``hang_seconds`` before answering.
    hang_rate: float = 0.0
    hang_seconds: float = 30.0
    #: Seed of the ``random.Random`` that drives the random faults.
    seed: int = 0
    #: How many ``(path, query)`` entries the request log keeps.
    log_size: int = 10000

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly representation."""
        out = asdict(self)
        out["available_through"] = (
            self.available_through.isoformat() if self.available_through else None
        )
        out["missing_journeys"] = sorted(self.missing_journeys)
        return out


_CONFIG_FIELDS = frozenset(f.name for f in fields(SandboxConfig))


def _to_cutoff(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if text[-1:] in ("Z", "z"):  # Python 3.10's fromisoformat does not take "Z"
            text = text[:-1] + "+00:00"
        try:
            value = datetime.fromisoformat(text)
        except ValueError as exc:
            raise ValueError(f"available_through: not an ISO datetime: {value!r}") from exc
    elif isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day, tzinfo=UTC)
    if not isinstance(value, datetime):
        raise TypeError("available_through must be a datetime, date, ISO string or None")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _to_id_set(value: Any) -> frozenset[int]:
    if value is None:
        return frozenset()
    if isinstance(value, str):
        value = [p for p in value.split(",") if p.strip()]
    if isinstance(value, int):
        value = [value]
    return frozenset(int(v) for v in value)


def _to_rate(name: str, value: Any, low: float, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number")
    value = float(value)
    if value < low or (high is not None and value > high) or math.isnan(value):
        bound = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be {bound}")
    return value


def _coerce_config(base: SandboxConfig, changes: Mapping[str, Any]) -> SandboxConfig:
    unknown = set(changes) - _CONFIG_FIELDS
    if unknown:
        raise TypeError(
            f"unknown sandbox setting(s): {sorted(unknown)}; known: {sorted(_CONFIG_FIELDS)}"
        )
    out: dict[str, Any] = {}
    for name, value in changes.items():
        if name in ("api_key", "api_secret"):
            if not isinstance(value, str):
                raise TypeError(f"{name} must be a string")
        elif name == "available_through":
            value = _to_cutoff(value)
        elif name == "missing_journeys":
            value = _to_id_set(value)
        elif name == "missing_journey_mode":
            if value not in ("per_journey", "whole_call"):
                raise ValueError("missing_journey_mode must be 'per_journey' or 'whole_call'")
        elif name == "rate_limit":
            if value is not None:
                value = _to_rate(name, value, 0.0)
                if value <= 0:
                    raise ValueError("rate_limit must be > 0 (or None for unlimited)")
        elif name == "rate_burst":
            if value is not None:
                value = _to_rate(name, value, 1.0)
        elif name == "send_retry_after":
            if not isinstance(value, bool):
                raise TypeError("send_retry_after must be a bool")
        elif name == "retry_after_override":
            if value is not None:
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ValueError("retry_after_override must be a non-negative int or None")
        elif name in ("latency", "hang_seconds"):
            value = _to_rate(name, value, 0.0)
        elif name in ("failure_rate", "drop_rate", "hang_rate"):
            value = _to_rate(name, value, 0.0, 1.0)
        elif name in ("seed", "log_size"):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int")
            if name == "log_size" and value < 0:
                raise ValueError("log_size must be >= 0")
        out[name] = value
    return replace(base, **out)


def _today_midnight_utc() -> datetime:
    now = datetime.now(UTC)
    return datetime(now.year, now.month, now.day, tzinfo=UTC)


def _coerce_date(value: date | datetime | str, name: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        parsed = _parse_wire_date(value.strip())
        if parsed is None:
            raise ValueError(f"{name}: expected yyyy-MM-dd, got {value!r}")
        return parsed
    raise TypeError(f"{name} must be a date, datetime or yyyy-MM-dd string")


def _coerce_ids(journey_ids: Iterable[int | str] | str | int) -> list[int]:
    if isinstance(journey_ids, int):
        journey_ids = [journey_ids]
    elif isinstance(journey_ids, str):
        journey_ids = journey_ids.split(",")
    out: list[int] = []
    seen: set[int] = set()
    for raw in journey_ids:
        jid = raw if isinstance(raw, int) and not isinstance(raw, bool) else None
        if jid is None:
            jid = _parse_journey_id(str(raw).strip())
        elif not 0 < jid <= _MAX_LONG:
            jid = None
        if jid is None or jid in seen:
            continue
        seen.add(jid)
        out.append(jid)
    return out


# --------------------------------------------------------------------------------------------
# Server
# --------------------------------------------------------------------------------------------


@dataclass
class _Answer:
    status: int
    payload: Any = None  # a JSON-able object, or bytes sent verbatim
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> bytes:
        if isinstance(self.payload, bytes):
            return self.payload
        return json.dumps(self.payload, separators=(",", ":")).encode()


def _error(status: int, code: int, message: str | None = None) -> _Answer:
    return _Answer(status, {"code": code, "message": message or _MESSAGES[code]})


_HTML_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)


class _TokenBucket:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: float | None = None
        self._stamp = 0.0

    def reset(self) -> None:
        with self._lock:
            self._tokens = None

    def take(self, rate: float, burst: float) -> float:
        """Take a token; return 0.0 on success, else the seconds until one is available."""
        with self._lock:
            now = time.monotonic()
            if self._tokens is None:
                self._tokens = burst
            else:
                self._tokens = min(burst, self._tokens + (now - self._stamp) * rate)
            self._stamp = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return 0.0
            return (1.0 - self._tokens) / rate


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):  # client went away: not our problem
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "EngageLabSandbox/1.0"
    sys_version = ""
    timeout = 120  # idle keep-alive connections are closed after this many seconds
    server: _Server
    sandbox_in_flight = False

    def log_message(self, format: str, *args: Any) -> None:
        return

    def setup(self) -> None:
        super().setup()
        self.server.sandbox._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.sandbox._track(self.connection, False)

    def _dispatch(self) -> None:
        try:
            self.server.sandbox._handle(self)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _dispatch


def _is_loopback(host: str) -> bool:
    try:
        addr = ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(addr, "ipv4_mapped", None)
    return addr.is_loopback or bool(mapped and mapped.is_loopback)


class Sandbox:
    """A local EngageLab journey statistics API on a background thread.

    Use it as a context manager (``with Sandbox(...) as sb:``) or call :meth:`start` and
    :meth:`stop`. Keyword ``config`` arguments are :class:`SandboxConfig` fields.
    """

    def __init__(
        self,
        api_key: str = "sandbox-key",
        api_secret: str = "sandbox-secret",
        port: int = 0,
        host: str = "127.0.0.1",
        **config: Any,
    ) -> None:
        self._lock = threading.Lock()
        self._config = _coerce_config(
            SandboxConfig(), {"api_key": api_key, "api_secret": api_secret, **config}
        )
        self._host = host
        self._requested_port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._faults: deque[Fault] = deque()
        self._rng = random.Random(self._config.seed)
        self._bucket = _TokenBucket()
        self._reset_counters_locked()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Sandbox:
        """Bind and serve on a daemon thread; returns ``self``."""
        if self._server is not None:
            raise RuntimeError("sandbox already running")
        self._stopping.clear()
        server = _Server((self._host, self._requested_port), self)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"engagelab-sandbox-{server.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake sleeping handlers and close every open connection."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the server is serving."""
        return self._server is not None

    @property
    def host(self) -> str:
        """The bound host."""
        return self._host

    @property
    def port(self) -> int:
        """The bound port (the real one when constructed with ``port=0``)."""
        if self._server is None:
            raise RuntimeError("sandbox is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (no trailing slash)."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    @property
    def api_key(self) -> str:
        """The API key (Basic auth user name)."""
        return self._config.api_key

    @property
    def api_secret(self) -> str:
        """The API secret (Basic auth password)."""
        return self._config.api_secret

    @property
    def auth(self) -> tuple[str, str]:
        """``(api_key, api_secret)``, e.g. for ``requests.get(..., auth=sb.auth)``."""
        return self._config.api_key, self._config.api_secret

    @property
    def config(self) -> SandboxConfig:
        """The current settings (an immutable snapshot)."""
        return self._config

    def airflow_connection(self, conn_type: str = "engagelab") -> dict[str, Any]:
        """A connection dict for ``AIRFLOW_CONN_<ID>=json.dumps(...)`` pointing at this sandbox."""
        return {
            "conn_type": conn_type,
            "host": self.url,
            "login": self._config.api_key,
            "password": self._config.api_secret,
        }

    # -- control -----------------------------------------------------------------------------

    def configure(self, **changes: Any) -> SandboxConfig:
        """Change settings at run time (any :class:`SandboxConfig` field); returns the result.

        Changing ``rate_limit`` or ``rate_burst`` refills the token bucket; giving ``seed``
        re-seeds the random fault generator; ``available_through=None`` restores the moving
        default (today 00:00 UTC).
        """
        with self._lock:
            new = _coerce_config(self._config, changes)
            self._config = new
            if "seed" in changes:
                self._rng = random.Random(new.seed)
            if "log_size" in changes:
                self._log = deque(self._log, maxlen=new.log_size)  # type: ignore[has-type]
        if "rate_limit" in changes or "rate_burst" in changes:
            self._bucket.reset()
        return new

    def inject(self, *faults: Fault | str | Mapping[str, Any]) -> None:
        """Queue scripted faults; each API request consumes the oldest one."""
        parsed = [Fault.coerce(f) for f in faults]
        with self._lock:
            self._faults.extend(parsed)

    def clear_faults(self) -> None:
        """Drop scripted faults not consumed yet."""
        with self._lock:
            self._faults.clear()

    def pending_faults(self) -> list[Fault]:
        """Scripted faults not consumed yet, oldest first."""
        with self._lock:
            return list(self._faults)

    def counters(self) -> dict[str, Any]:
        """A snapshot of the request counters (admin requests excluded).

        Keys: ``requests`` (API requests received), ``by_endpoint`` (path -> count; unknown
        paths under ``"other"``), ``by_status`` (HTTP status -> responses sent), ``faults``
        (fault kind -> injected, scripted and random), ``rate_limited`` (429s from the rate
        limiter), ``max_in_flight`` and ``in_flight`` (concurrent API requests), ``log``
        (list of ``(path, raw_query)``, oldest first, bounded by ``log_size``) and
        ``pending_faults`` (scripted faults not consumed yet).
        """
        with self._lock:
            return {
                "requests": self._requests,
                "by_endpoint": dict(self._by_endpoint),
                "by_status": dict(self._by_status),
                "faults": dict(self._fault_counts),
                "rate_limited": self._rate_limited,
                "max_in_flight": self._max_in_flight,
                "in_flight": self._in_flight,
                "log": list(self._log),
                "pending_faults": len(self._faults),
            }

    def reset_counters(self) -> None:
        """Zero every counter and empty the request log."""
        with self._lock:
            self._reset_counters_locked()

    def _reset_counters_locked(self) -> None:
        self._requests = 0
        self._by_endpoint: Counter[str] = Counter()
        self._by_status: Counter[int] = Counter()
        self._fault_counts: Counter[str] = Counter()
        self._rate_limited = 0
        self._in_flight = getattr(self, "_in_flight", 0)
        self._max_in_flight = self._in_flight
        self._log = deque(maxlen=self._config.log_size)

    # -- oracle ------------------------------------------------------------------------------

    def expected_rows(
        self,
        stats_type: str,
        journey_ids: Iterable[int | str] | str | int,
        time_unit: str,
        start_date: date | datetime | str,
        end_date: date | datetime | str,
    ) -> list[dict[str, Any]]:
        """The flat rows a correct client must produce for this query, under current settings.

        One dict per journey x bucket (x component): ``journey_id``, ``time_unit``, then the
        detail fields in API order with API types; ordered by journey (first occurrence in
        ``journey_ids``), then time, then ``component_id``. Missing journeys and malformed IDs
        contribute no rows; the cutoff applies. Any number of IDs and any range length.
        """
        if stats_type not in _PATH_BY_TYPE:
            raise ValueError(f"stats_type must be one of {sorted(_PATH_BY_TYPE)}")
        tu = time_unit.upper()
        if tu not in ("HOUR", "DAY"):
            raise ValueError("time_unit must be HOUR or DAY")
        first = _coerce_date(start_date, "start_date").toordinal()
        last = _coerce_date(end_date, "end_date").toordinal()
        if last < first:
            raise ValueError("end_date is before start_date")
        cfg = self._config
        limit = _hour_limit(cfg.available_through or _today_midnight_utc())
        rows: list[dict[str, Any]] = []
        for jid in _coerce_ids(journey_ids):
            if jid in cfg.missing_journeys:
                continue
            for d in _detail(stats_type, jid, tu, first, last, limit):
                rows.append({"journey_id": jid, "time_unit": tu, **d})
        return rows

    # -- request handling --------------------------------------------------------------------

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)

    def _handle(self, h: _Handler) -> None:
        length = h.headers.get("Content-Length")
        raw_body = b""
        if length:
            try:
                raw_body = h.rfile.read(int(length))
            except ValueError:
                h.close_connection = True
        split = urlsplit(h.path)
        path = split.path
        if path == "/_admin" or path.startswith("/_admin/"):
            self._send(h, self._admin(h, path, raw_body), count=False)
            return
        with self._lock:
            self._requests += 1
            self._by_endpoint[path if path in ENDPOINTS else "other"] += 1
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            self._log.append((path, split.query))
            fault = self._faults.popleft() if self._faults else None
            if fault is not None:
                self._fault_counts[fault.kind] += 1
            cfg = self._config
        h.sandbox_in_flight = True
        try:
            self._serve_api(h, path, split.query, cfg, fault)
        finally:
            self._leave(h)

    def _leave(self, h: _Handler) -> None:
        """Mark a request as no longer in flight (once), before the client can see the end."""
        if h.sandbox_in_flight:
            h.sandbox_in_flight = False
            with self._lock:
                self._in_flight -= 1

    def _serve_api(
        self, h: _Handler, path: str, query: str, cfg: SandboxConfig, fault: Fault | None
    ) -> None:
        self._sleep(cfg.latency)
        if fault is not None:
            kind = fault.kind
            if kind == "500":
                self._send(h, _error(fault.status or 500, -1))
                return
            if kind == "429":
                limited = _error(429, 55110)
                if fault.retry_after is not None:
                    limited.headers["Retry-After"] = str(fault.retry_after)
                self._send(h, limited)
                return
            if kind == "drop":
                self._drop(h)
                return
            if kind == "html":
                self._send(h, _Answer(502, _HTML_502, "text/html"))
                return
            if kind == "empty":
                self._send(h, _Answer(200, b""))
                return
            if kind == "code_in_200":
                code = fault.code if fault.code is not None else 50217
                self._send(h, _Answer(200, {"code": code, "message": _MESSAGES.get(code, "error")}))
                return
            if kind == "hang":
                self._sleep(fault.seconds if fault.seconds is not None else cfg.hang_seconds)
        ans = self._api_answer(h, path, query, cfg)
        if ans is None:
            self._drop(h)
            return
        if fault is not None:
            ans = self._apply_fault(ans, fault)
        self._send(h, ans)

    def _api_answer(self, h: _Handler, path: str, query: str, cfg: SandboxConfig) -> _Answer | None:
        if cfg.rate_limit is not None:
            burst = cfg.rate_burst if cfg.rate_burst is not None else max(1.0, cfg.rate_limit)
            wait = self._bucket.take(cfg.rate_limit, burst)
            if wait > 0:
                with self._lock:
                    self._rate_limited += 1
                ans = _error(429, 55110)
                if cfg.send_retry_after:
                    seconds = (
                        cfg.retry_after_override
                        if cfg.retry_after_override is not None
                        else max(1, math.ceil(wait))
                    )
                    ans.headers["Retry-After"] = str(seconds)
                return ans
        if not self._authorized(h.headers.get("Authorization"), cfg):
            ans = _error(401, 40050)
            ans.headers["WWW-Authenticate"] = 'Basic realm="EngageLab"'
            return ans
        kind = ENDPOINTS.get(path)
        if kind is None:
            return _error(404, 40001, "Not Found")
        if h.command != "GET":
            ans = _error(405, 40001, "Method Not Allowed")
            ans.headers["Allow"] = "GET"
            return ans
        if cfg.drop_rate or cfg.failure_rate or cfg.hang_rate:
            with self._lock:
                r = self._rng.random()
            if r < cfg.drop_rate:
                self._count_fault("drop")
                return None
            r -= cfg.drop_rate
            if r < cfg.failure_rate:
                self._count_fault("500")
                return _error(500, -1)
            r -= cfg.failure_rate
            if r < cfg.hang_rate:
                self._count_fault("hang")
                self._sleep(cfg.hang_seconds)
        return self._stats_answer(kind, query, cfg)

    @staticmethod
    def _authorized(header: str | None, cfg: SandboxConfig) -> bool:
        if not header:
            return False
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "basic" or not token:
            return False
        try:
            decoded = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        expected = f"{cfg.api_key}:{cfg.api_secret}".encode()
        return hmac.compare_digest(decoded, expected)

    def _stats_answer(self, kind: str, query: str, cfg: SandboxConfig) -> _Answer:
        params = parse_qs(query, keep_blank_values=True)
        values: dict[str, str] = {}
        for name in ("journey_id", "time_unit", "start_time", "end_time"):
            got = params.get(name)
            if not got or len(got) != 1 or got[0] == "":
                return _error(400, 40001)
            values[name] = got[0]
        start = _parse_wire_date(values["start_time"])
        end = _parse_wire_date(values["end_time"])
        if start is None or end is None:
            return _error(400, 40002)
        tu = values["time_unit"]
        if tu not in ("HOUR", "DAY"):
            return _error(400, 50220)
        first, last = start.toordinal(), end.toordinal()
        if first > last or last - first + 1 > MAX_WINDOW_DAYS:
            return _error(400, 50217)
        tokens = values["journey_id"].split(",")
        if len(tokens) > MAX_JOURNEY_IDS:
            return _error(400, 50219)
        limit = _hour_limit(cfg.available_through or _today_midnight_utc())
        # The body is assembled from cached JSON fragments (one per journey-day): the hot
        # path of benchmarks. _detail() builds the same rows as dicts for expected_rows().
        entries: list[str] = []
        seen: set[int] = set()
        for token in tokens:
            jid = _parse_journey_id(token)
            if jid is None:
                entries.append(f'{{"journey_id":-1,"time_unit":"{tu}","error_code":50221}}')
                continue
            if jid in seen:
                continue
            seen.add(jid)
            if jid in cfg.missing_journeys:
                if cfg.missing_journey_mode == "whole_call":
                    return _error(400, 50202)
                entries.append(f'{{"journey_id":{jid},"time_unit":"{tu}","error_code":50202}}')
                continue
            detail = _detail_json(kind, jid, tu, first, last, limit)
            entries.append(
                f'{{"journey_id":{jid},"time_unit":"{tu}","error_code":0,"detail":{detail}}}'
            )
        body = '{"code":0,"message":"success","data":[' + ",".join(entries) + "]}"
        return _Answer(200, body.encode())

    @staticmethod
    def _apply_fault(ans: _Answer, fault: Fault) -> _Answer:
        kind = fault.kind
        if kind == "truncated":
            body = ans.body()
            return _Answer(200, body[: len(body) // 2], ans.content_type)
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

    def _count_fault(self, kind: str) -> None:
        with self._lock:
            self._fault_counts[kind] += 1

    def _drop(self, h: _Handler) -> None:
        self._leave(h)
        h.close_connection = True
        try:
            h.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _send(self, h: _Handler, ans: _Answer, count: bool = True) -> None:
        body = ans.body()
        if count:
            with self._lock:
                self._by_status[ans.status] += 1
            self._leave(h)
        h.send_response(ans.status)
        h.send_header("Content-Type", ans.content_type)
        h.send_header("Content-Length", str(len(body)))
        for key, value in ans.headers.items():
            h.send_header(key, value)
        h.end_headers()
        if h.command != "HEAD" and body:
            h.wfile.write(body)

    # -- admin -------------------------------------------------------------------------------

    def _admin(self, h: _Handler, path: str, raw_body: bytes) -> _Answer:
        if not _is_loopback(str(h.client_address[0])):
            return _Answer(403, {"error": "the admin interface answers loopback clients only"})
        method = h.command
        try:
            body = json.loads(raw_body) if raw_body.strip() else None
        except ValueError:
            return _Answer(400, {"error": "the body is not JSON"})
        try:
            if path == "/_admin/health" and method == "GET":
                return _Answer(200, {"status": "ok"})
            if path == "/_admin/counters" and method == "GET":
                return _Answer(200, self.counters())
            if path == "/_admin/config" and method == "GET":
                return _Answer(200, self._config.to_dict())
            if path == "/_admin/config" and method == "POST":
                if not isinstance(body, dict):
                    return _Answer(400, {"error": "expected a JSON object of settings"})
                return _Answer(200, self.configure(**body).to_dict())
            if path == "/_admin/reset" and method == "POST":
                self.reset_counters()
                self.clear_faults()
                self._bucket.reset()
                return _Answer(200, self.counters())
            if path == "/_admin/inject" and method == "POST":
                items = body.get("faults") if isinstance(body, dict) else body
                if isinstance(items, str | dict):
                    items = [items]
                if not isinstance(items, list):
                    return _Answer(400, {"error": "expected a list of faults"})
                self.inject(*items)
                pending = [f.to_dict() for f in self.pending_faults()]
                return _Answer(200, {"pending_faults": pending})
        except (TypeError, ValueError) as exc:
            return _Answer(400, {"error": str(exc)})
        if path in ADMIN_PATHS:
            return _Answer(405, {"error": f"{method} not allowed on {path}"})
        return _Answer(404, {"error": f"unknown admin path {path}", "paths": list(ADMIN_PATHS)})


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m airflow_provider_engagelab.testing.sandbox",
        description="Serve a local EngageLab-compatible journey statistics API. Prints the "
        "base URL alone on the first line, then serves until SIGINT/SIGTERM.",
    )
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default)")
    p.add_argument("--api-key", default="sandbox-key")
    p.add_argument("--api-secret", default="sandbox-secret")
    p.add_argument(
        "--available-through",
        default=None,
        help="ISO instant before which data exists (default: today 00:00 UTC, moving)",
    )
    p.add_argument("--rate-limit", type=float, default=None, help="requests/second")
    p.add_argument("--rate-burst", type=float, default=None)
    p.add_argument("--no-retry-after", action="store_true", help="omit Retry-After on 429")
    p.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    p.add_argument("--failure-rate", type=float, default=0.0, help="probability of HTTP 500")
    p.add_argument("--drop-rate", type=float, default=0.0)
    p.add_argument("--hang-rate", type=float, default=0.0)
    p.add_argument("--hang-seconds", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--missing-journeys", default="", help="comma-separated IDs that do not exist")
    p.add_argument(
        "--missing-journey-mode", choices=("per_journey", "whole_call"), default="per_journey"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the sandbox from the command line; returns the exit status."""
    args = _build_parser().parse_args(argv)
    stop = threading.Event()

    def _on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    sandbox = Sandbox(
        api_key=args.api_key,
        api_secret=args.api_secret,
        port=args.port,
        host=args.host,
        available_through=args.available_through,
        rate_limit=args.rate_limit,
        rate_burst=args.rate_burst,
        send_retry_after=not args.no_retry_after,
        latency=args.latency,
        failure_rate=args.failure_rate,
        drop_rate=args.drop_rate,
        hang_rate=args.hang_rate,
        hang_seconds=args.hang_seconds,
        seed=args.seed,
        missing_journeys=args.missing_journeys,
        missing_journey_mode=args.missing_journey_mode,
    )
    sandbox.start()
    try:
        print(sandbox.url, flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        sandbox.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
