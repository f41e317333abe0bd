"""Results of a statistics fetch: a buffered result and a streaming one."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from airflow_provider_engagelab.core.parsing import JourneyError, ParsedResponse
from airflow_provider_engagelab.core.query import StatsQuery


@dataclass
class StatsResult:
    """All rows of a fetch, plus the per-journey errors and request counts."""

    query: StatsQuery
    rows: list[dict[str, Any]]
    errors: list[JourneyError]
    calls: int
    requests: int


class StatsStream:
    """Rows of a fetch as they arrive, in plan order; never holds the whole result.

    Iterate it once. ``errors``, ``calls_done`` and ``requests`` fill in as it goes and are
    complete when the iteration ends.
    """

    def __init__(self, query: StatsQuery, planned_calls: int, source: Iterator[Any]):
        self.query = query
        self.planned_calls = planned_calls
        self.errors: list[JourneyError] = []
        self.calls_done = 0
        self.requests = 0
        self._source = source
        self._used = False

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for parsed in self.responses():
            yield from parsed.rows

    def responses(self) -> Iterator[ParsedResponse]:
        """The parsed answers, one per call in plan order (instead of iterating the rows).

        What the operator stages: typed records are written without building a dict per row.
        The same single use as iterating the stream. Each answer's rows are released
        (:meth:`ParsedResponse.release`) when the next answer is asked for, before it is
        decoded: the consumer holds one answer at a time, so stage or copy its rows first.
        """
        if self._used:
            raise RuntimeError("a StatsStream can be iterated only once")
        self._used = True
        for parsed, attempts in self._source:
            self.calls_done += 1
            self.requests += attempts
            self.errors.extend(parsed.errors)
            yield parsed
            parsed.release()

    def collect(self) -> StatsResult:
        """Drain the stream into a :class:`StatsResult`."""
        rows = list(self)
        return StatsResult(self.query, rows, self.errors, self.calls_done, self.requests)

