"""Airflow glue shared by the operators and the sensor: the run's dates and templating.

Airflow 3 may leave ``logical_date`` and ``data_interval_*`` out of the context (manual
runs, asset-triggered runs); the rules themselves live in :mod:`core.window`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timezone, tzinfo
from typing import Any

from airflow_provider_engagelab.core.window import apply_lookback, run_window


def _get(context: Mapping[str, Any], key: str) -> Any:
    try:
        return context.get(key)
    except Exception:  # noqa: BLE001 - some context proxies raise on absent keys
        return None


def is_templated(value: Any) -> bool:
    """A value Airflow resolves at run time: a Jinja string or an XComArg-like reference."""
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    return hasattr(value, "resolve") or hasattr(value, "iter_references")


def dag_timezone(context: Mapping[str, Any]) -> tzinfo:
    """The DAG's time zone (``timezone=`` of the DAG, else Airflow's default), else UTC."""
    dag = _get(context, "dag")
    tz = getattr(dag, "timezone", None)
    return tz if isinstance(tz, tzinfo) else timezone.utc


def context_window(context: Mapping[str, Any], lookback_days: int = 0) -> tuple[date, date]:
    """The default ``[first, last]`` dates of this run, in the DAG's time zone."""
    dag_run = _get(context, "dag_run")
    run_after: datetime | None = getattr(dag_run, "run_after", None)
    first, last = run_window(
        dag_timezone(context),
        data_interval_start=_get(context, "data_interval_start"),
        data_interval_end=_get(context, "data_interval_end"),
        logical_date=_get(context, "logical_date"),
        run_after=run_after,
    )
    return apply_lookback(first, last, lookback_days)
