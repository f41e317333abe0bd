"""Split a query into the fewest API calls: batches of <=100 IDs x windows of <=31 days."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from airflow_provider_engagelab.core.query import (
    MAX_DAYS_PER_CALL,
    MAX_IDS_PER_CALL,
    StatsQuery,
    StatsType,
    TimeUnit,
)


@dataclass(frozen=True)
class PlannedCall:
    """One API request."""

    stats_type: StatsType
    journey_ids: tuple[int, ...]
    time_unit: TimeUnit
    start: date
    end: date

    @property
    def endpoint(self) -> str:
        """The API path."""
        return self.stats_type.endpoint

    def params(self) -> dict[str, str]:
        """The query string parameters, exactly as the API expects them."""
        return {
            "journey_id": ",".join(str(j) for j in self.journey_ids),
            "time_unit": self.time_unit.value,
            "start_time": self.start.isoformat(),
            "end_time": self.end.isoformat(),
        }

    def describe(self) -> str:
        """Short text for logs and errors."""
        return (
            f"{self.endpoint} {len(self.journey_ids)} journeys "
            f"{self.start.isoformat()}..{self.end.isoformat()} {self.time_unit.value}"
        )


def date_windows(start: date, end: date, max_days: int = MAX_DAYS_PER_CALL) -> list[tuple[date, date]]:
    """Tile ``[start, end]`` (inclusive) with consecutive windows of at most ``max_days``."""
    windows = []
    cursor = start
    while cursor <= end:
        last = min(end, cursor + timedelta(days=max_days - 1))
        windows.append((cursor, last))
        cursor = last + timedelta(days=1)
    return windows


def id_batches(ids: tuple[int, ...], size: int = MAX_IDS_PER_CALL) -> list[tuple[int, ...]]:
    """Split IDs into consecutive batches of at most ``size``, order kept."""
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def plan_calls(query: StatsQuery) -> list[PlannedCall]:
    """Plan ``ceil(ids/100) x ceil(days/31)`` calls, windows outermost (date order first)."""
    batches = id_batches(query.journey_ids)
    return [
        PlannedCall(query.stats_type, batch, query.time_unit, first, last)
        for first, last in date_windows(query.start, query.end)
        for batch in batches
    ]
