"""The sink interface: where a task's rows go.

An operator fetches through the hook and hands each parsed answer to a sink, then, once every
call succeeded and the journey-error policy passed, asks it to commit; on any failure the
sink is aborted and nothing it staged becomes visible. Each sink owns its commit protocol:
files (:mod:`.files`), XCom (:mod:`.xcom`), Delta tables (:mod:`.delta`), SQL tables
(:mod:`.sql`). No Airflow imports.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any, Protocol

from airflow_provider_engagelab.core.parsing import ParsedResponse
from airflow_provider_engagelab.core.query import StatsQuery


class Sink(Protocol):
    """Stage rows, then commit or abort."""

    def stage(self, parsed: ParsedResponse) -> None:
        """Take the rows of one parsed answer (the hook yields them in plan order)."""

    def commit(self) -> Any:
        """Make everything staged visible; return what the task reports (rows or a summary)."""

    def abort(self) -> None:
        """Drop everything staged; nothing becomes visible. Safe to call after commit."""


def note_coverage(fetched: dict[date, set[int]], parsed: ParsedResponse, query: StatsQuery) -> None:
    """Add to ``fetched`` (date -> journey IDs) what one answer covers: its call's dates and the
    journeys that answered without an error. These are the rows a sink may replace."""
    call = parsed.call
    if call is None:  # an answer built by hand: it covers the whole query
        first, last = query.start, query.end
        ok = set(query.journey_ids) - {e.journey_id for e in parsed.errors}
    else:
        first, last, ok = call.start, call.end, set(parsed.ok_journeys)
    day = first
    while day <= last:
        fetched.setdefault(day, set()).update(ok)
        day += timedelta(days=1)
