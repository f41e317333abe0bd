"""Results of a statistics fetch: a buffered result and a streaming one."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from airflow_provider_engagelab.core.answer import Answer
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

    :param source: ``(answer, attempts)`` per call in plan order; an answer is an
        :class:`~.answer.Answer` or a :class:`ParsedResponse`.
    """

    def __init__(self, query: StatsQuery, planned_calls: int, source: Iterator[tuple[Any, int]]):
        self.query = query
        self.planned_calls = planned_calls
        self.errors: list[JourneyError] = []
        self.calls_done = 0
        self.requests = 0
        self._source = source
        self._used = False
        self._responses: Iterator[ParsedResponse] | None = None

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for parsed in self.responses():
            yield from parsed.rows

    def responses(self) -> Iterator[ParsedResponse]:
        """The parsed answers in plan order (instead of iterating the rows).

        What the operator stages: typed records are written without building a dict per row.
        The same single use as iterating the stream. A call's answer is one
        :class:`ParsedResponse`, or several for an answer the sync hook decodes in batches
        (:mod:`~.answer`); its journey errors come with the first. Each is released
        (:meth:`ParsedResponse.release`) when the next is asked for, before the next is
        decoded: the consumer holds one batch of rows at a time, so stage or copy them first.
        """
        if self._used:
            raise RuntimeError("a StatsStream can be iterated only once")
        self._used = True
        self._responses = self._iter_responses()
        return self._responses

    def _iter_responses(self) -> Iterator[ParsedResponse]:
        try:
            for answer, attempts in self._source:
                self.calls_done += 1
                self.requests += attempts
                if not isinstance(answer, Answer):
                    answer = Answer(answer.call, iter((answer,)))
                with answer:
                    for parsed in answer.batches():
                        self.errors.extend(parsed.errors)
                        yield parsed
                        parsed.release()
        finally:
            self._close_source()

    def _close_source(self) -> None:
        close = getattr(self._source, "close", None)
        if close is not None:
            close()

    def close(self) -> None:
        """End the fetch now (after a failure of the consumer, say): the running calls are
        cancelled and waited for, and every answer body is closed. Safe to call twice, or after
        the iteration ended."""
        if self._responses is not None and hasattr(self._responses, "close"):
            self._responses.close()  # closes the answer it holds, then the source
        self._close_source()

    def collect(self) -> StatsResult:
        """Drain the stream into a :class:`StatsResult`."""
        rows = list(self)
        return StatsResult(self.query, rows, self.errors, self.calls_done, self.requests)

