"""The date window a run covers, from the values Airflow puts in the task context."""

from __future__ import annotations

from datetime import date, datetime, timedelta, tzinfo

from airflow_provider_engagelab.exceptions import EngageLabValidationError

#: Ten years: more than any statistics settle, small enough to keep dates in range.
MAX_LOOKBACK_DAYS = 3660


def _local_date(moment: datetime, tz: tzinfo) -> date:
    if moment.tzinfo is None:
        raise EngageLabValidationError(f"Invalid run date {moment!r}: must be timezone-aware")
    return moment.astimezone(tz).date()


def run_window(
    tz: tzinfo,
    *,
    data_interval_start: datetime | None = None,
    data_interval_end: datetime | None = None,
    logical_date: datetime | None = None,
    run_after: datetime | None = None,
) -> tuple[date, date]:
    """The dates ``[first, last]`` (inclusive) a run covers, in the DAG's time zone ``tz``.

    - A non-empty data interval ``[start, end)`` covers the dates from ``start`` up to the
      instant before ``end``: a daily interval 2026-06-01T00:00..2026-06-02T00:00 covers
      2026-06-01 only; a weekly one covers 7 days.
    - An empty interval (Airflow 3's default ``@daily`` = ``CronTriggerTimetable``) or none
      at all (a manual run without a logical date): the day before the logical date, or
      before ``run_after`` when there is no logical date.
    """
    if data_interval_start and data_interval_end and data_interval_end > data_interval_start:
        first = _local_date(data_interval_start, tz)
        last = _local_date(data_interval_end - timedelta(microseconds=1), tz)
        return first, last
    reference = logical_date or run_after or data_interval_end
    if reference is None:
        raise EngageLabValidationError(
            "Cannot derive the date window: the run has no data interval, logical_date or "
            "run_after; pass start_time and end_time explicitly"
        )
    day = _local_date(reference, tz) - timedelta(days=1)
    return day, day


def apply_lookback(first: date, last: date, lookback_days: int) -> tuple[date, date]:
    """Extend the window ``lookback_days`` days earlier."""
    rule = f"must be an integer from 0 to {MAX_LOOKBACK_DAYS}"
    if isinstance(lookback_days, bool) or not isinstance(lookback_days, int):
        raise EngageLabValidationError(f"Invalid lookback_days={lookback_days!r}: {rule}")
    if not 0 <= lookback_days <= MAX_LOOKBACK_DAYS:
        raise EngageLabValidationError(f"Invalid lookback_days={lookback_days!r}: {rule}")
    try:
        return first - timedelta(days=lookback_days), last
    except OverflowError:
        raise EngageLabValidationError(
            f"Invalid lookback_days={lookback_days!r}: {first.isoformat()} minus {lookback_days} "
            "days is before year 1"
        ) from None
