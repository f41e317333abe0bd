"""Per-journey errors of a fetch: the report for XCom and logs, and the error of ``fail``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from airflow_provider_engagelab.core.parsing import JourneyError
from airflow_provider_engagelab.core.query import parse_stats_type
from airflow_provider_engagelab.exceptions import EngageLabJourneyErrors


def journey_error_report(errors: Iterable[JourneyError]) -> list[dict[str, Any]]:
    """Distinct per-journey errors as JSON-safe dicts, sorted by journey ID and code.

    A journey that fails in several calls (date windows) is reported once per code.
    """
    distinct = {(e.journey_id, e.error_code): e for e in errors}
    return [distinct[key].as_dict() for key in sorted(distinct)]


def journey_errors_exception(report: Sequence[Mapping[str, Any]], stats_type: Any) -> EngageLabJourneyErrors:
    """The error raised under ``on_journey_error='fail'``, listing every failed journey."""
    lines = "; ".join(
        f"journey {e['journey_id']}: code {e['error_code']} ({e['meaning']})" for e in report
    )
    stype = parse_stats_type(stats_type).value
    return EngageLabJourneyErrors(
        f"{len(report)} journey error(s) in {stype} statistics, nothing was written "
        f"(on_journey_error='fail'; use 'warn' or 'skip' to keep the other journeys): {lines}",
        errors=[dict(e) for e in report],
    )
