"""The sandbox's deterministic data: every number from a 64-bit hash of integers.

A day's totals come from the hash of (journey, component, day) and are split over its 24 UTC
hours by hashed hourly weights with exact integer allocation, each funnel stage capped by the
previous stage's hourly values; so a DAY row is the sum of its HOUR rows, and a full DAY costs
O(1) per journey-day without generating hours. Results are cached (``lru_cache``); Python's
per-process hash seed is never involved.

Per stats type a journey has components (message and webhook components; the journey itself
for ``journey``), and per component a tuple of counts per day (:func:`day_totals`) or per hour
(:func:`hour_series`), in the order of :data:`~.tables.DETAIL_FIELDS`' counts. Message tuples end
with the revenue in cents.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from functools import lru_cache

from airflow_provider_engagelab.testing.sandbox.tables import (
    CHANNELS,
    K1,
    K2,
    K3,
    K4,
    M64,
    ROLE_DAY,
    ROLE_EXTRA,
    ROLE_HOUR,
    ROLE_LEVEL,
    SALT,
    SHAPE,
    SHAPE_SUM,
)

#: A message component ``(component_id, component_name, channel, weight_percent)``, a webhook
#: component ``(component_id, component_name, weight_percent)``, or ``None`` for a journey.
Component = tuple | None

def _mix(a: int, b: int = 0, c: int = 0, d: int = 0) -> int:
    """Return a 64-bit splitmix-style hash of four integers (stable across processes)."""
    z = (a * K1 + b * K2 + c * K3 + d * K4 + SALT) & M64
    z = ((z ^ (z >> 30)) * K2) & M64
    z = ((z ^ (z >> 27)) * K3) & M64
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
        prefix, channel = CHANNELS[_mix(jid, 3, k) % len(CHANNELS)]
        msg.append((jid * 100 + k, f"{prefix}_{k}", channel, 40 + _mix(jid, 4, k) % 61))
    n_hook = 1 + _mix(jid, 5) % 2
    hooks = tuple(
        (jid * 100 + 50 + k, f"WEBHOOK_{k}", 30 + _mix(jid, 6, k) % 71)
        for k in range(1, n_hook + 1)
    )
    return scale, tuple(msg), hooks





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
        x = _mix(jid, comp, base + h, ROLE_HOUR)
        ws.append(0 if x & 0x1F == 0 else SHAPE[h] * (50 + (x >> 5) % 101))
    total = sum(ws)
    if total == 0:
        ws[12] = 1
        total = 1
    return tuple(ws), total


def _level(jid: int, scale: int, hour_index: int) -> int:
    """Users in progress at an hour (a level, not a flow)."""
    return 6 * scale + _mix(jid, 0, hour_index, ROLE_LEVEL) % (2 * scale + 1)


@lru_cache(maxsize=131072)
def _journey_day(jid: int, day: int) -> tuple[int, int, int, int]:
    """Day totals (entry, conversion, completion, early_exit); ``day`` is a date ordinal."""
    scale = _profile(jid)[0]
    x = _mix(jid, 0, day, ROLE_DAY)
    entry = scale * SHAPE_SUM * _weekday_factor(day) * (60 + x % 81) // 1_000_000
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
    volume = scale * SHAPE_SUM * _weekday_factor(day)
    out = []
    for comp_id, _name, _channel, weight in comps:
        x = _mix(jid, comp_id, day, ROLE_DAY)
        y = _mix(x, 0, 0, ROLE_EXTRA)
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
    volume = scale * SHAPE_SUM * _weekday_factor(day)
    out = []
    for comp_id, _name, weight in hooks:
        x = _mix(jid, comp_id, day, ROLE_DAY)
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


# --------------------------------------------------------------------------------------------
# Per stats type
# --------------------------------------------------------------------------------------------

_JOURNEY_ONLY: tuple[None] = (None,)


def components(kind: str, jid: int) -> tuple[Component, ...]:
    """The components of a journey whose rows ``kind`` has (``(None,)`` for ``journey``)."""
    if kind == "journey":
        return _JOURNEY_ONLY
    _, messages, webhooks = _profile(jid)
    return messages if kind == "message" else webhooks


def hour_series(kind: str, jid: int, day: int) -> tuple[tuple[tuple[int, ...], ...], ...]:
    """Per component, the 24 hourly count tuples of day ordinal ``day``."""
    if kind == "journey":
        return (_journey_hours(jid, day),)
    return _message_hours(jid, day) if kind == "message" else _webhook_hours(jid, day)


def day_totals(kind: str, jid: int, day: int, hours: int = 24) -> tuple[tuple[int, ...], ...]:
    """Per component, the counts of a day whose first ``hours`` (1..24) hours are available.

    Flows are summed over those hours; the journey's ``in_progress_count`` (a level) is the
    value of the last of them.
    """
    if kind == "journey":
        if hours == 24:
            last = _level(jid, _profile(jid)[0], (day - 1) * 24 + 23)
            return ((*_journey_day(jid, day), last),)
        series = _journey_hours(jid, day)[:hours]
        return ((*_sum_cols(series)[:4], series[-1][4]),)
    if hours == 24:
        return _message_day(jid, day) if kind == "message" else _webhook_day(jid, day)
    return tuple(_sum_cols(s[:hours]) for s in hour_series(kind, jid, day))


# --------------------------------------------------------------------------------------------
# Availability
# --------------------------------------------------------------------------------------------

_EPOCH = datetime(1, 1, 1, tzinfo=timezone.utc)
_HOUR_US = 3_600_000_000


def hour_limit(cutoff: datetime) -> int:
    """Number of hour buckets (indexed from 0001-01-01 00:00 UTC) that start before cutoff."""
    delta = cutoff - _EPOCH
    micros = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
    return max(0, -(-micros // _HOUR_US))


def available_days(first: int, last: int, limit: int) -> Iterator[tuple[int, int]]:
    """Yield ``(day, available_hours)`` for the days of ``first..last`` with data."""
    for day in range(first, last + 1):
        n = limit - (day - 1) * 24
        if n <= 0:
            return
        yield day, (24 if n > 24 else n)


CACHED = (
    _profile,
    _hour_weights,
    _journey_day,
    _journey_hours,
    _message_day,
    _message_hours,
    _webhook_day,
    _webhook_hours,
)
