"""EngageLab statistics into a SQL table, exactly once, one transaction per task.

The fetch is :class:`~airflow_provider_engagelab.operators._base.EngageLabFetchOperator`'s (the
same parameters, templating and window as ``EngageLabStatsOperator``); the rows go to
:class:`~airflow_provider_engagelab.sinks.sql.SqlSink` over the DB-API connection of any
common.sql ``DbApiHook`` Connection: ``COPY`` on PostgreSQL, ``executemany`` elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset, AssetAlias

from airflow_provider_engagelab._context import is_templated
from airflow_provider_engagelab.core.defaults import DEFAULT_CONN_ID
from airflow_provider_engagelab.core.options import parse_schema_policy
from airflow_provider_engagelab.core.query import StatsQuery
from airflow_provider_engagelab.core.sql_table import TableName, parse_table_name
from airflow_provider_engagelab.exceptions import EngageLabValidationError
from airflow_provider_engagelab.operators._base import (
    FETCH_TEMPLATE_FIELDS,
    EngageLabFetchOperator,
    declare_partial_outlet,
    validate_fetch_literals,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_engagelab.core.lineage import LineageOutput
    from airflow_provider_engagelab.sinks.sql import SqlSink

__all__ = ["EngageLabStatsToSqlOperator"]

SQL_INSTALL_HINT = "pip install 'airflow-provider-engagelab[sql]'"

#: SQLAlchemy dialect names of Connection types whose hook does not say (older common.sql).
_DIALECTS = {"postgres": "postgresql", "sqlite": "sqlite", "mysql": "mysql", "mssql": "mssql"}


def _validate_sql_literals(params: dict[str, Any]) -> None:
    """Parse-time checks of the SQL parameters whose values are already known."""
    if "sql_conn_id" in params:
        value = params["sql_conn_id"]
        if not isinstance(value, str) or not value.strip():
            raise EngageLabValidationError(
                f"Invalid sql_conn_id={value!r}: must be the id of an Airflow Connection of a SQL "
                "database (one whose hook is a common.sql DbApiHook)"
            )
    value = params.get("table")
    if value is not None and not is_templated(value):
        parse_table_name(value)
    if "on_schema_change" in params and parse_schema_policy(params["on_schema_change"]) == "keep":
        raise EngageLabValidationError(
            "Invalid on_schema_change='keep': a SQL table has no column for fields the contract does "
            "not name, and this task never alters a table; use 'warn' (the known columns are loaded, "
            "the new field logged) or 'fail'"
        )
    if "create_table" in params and not isinstance(params["create_table"], bool):
        raise EngageLabValidationError(
            f"Invalid create_table={params['create_table']!r}: must be True or False"
        )


class EngageLabStatsToSqlOperator(EngageLabFetchOperator):
    """Fetch EngageLab statistics into a SQL table, replacing exactly what the task fetched.

    One task is one transaction: the rows of the fetched journeys x dates x time unit are
    deleted and the fetched rows inserted, or nothing changes. Journeys that answered with an
    ``error_code`` (under ``on_journey_error="warn"``/``"skip"``) keep their rows.

    :param stats_type: ``"journey"``, ``"message"`` or ``"webhook"``.
    :param sql_conn_id: an Airflow Connection whose hook is a common.sql ``DbApiHook``
        (PostgreSQL, SQLite, MySQL, ...). PostgreSQL loads with ``COPY``; others with
        ``executemany``.
    :param table: the table, ``name`` or ``schema.name``: plain identifiers, quoted by the
        database's dialect where needed (a name with capitals is case-sensitive). (templated)
    :param create_table: create the table when it is missing (typed columns, primary key);
        with ``False`` a missing table is an error. An existing table is never altered: one
        whose columns or key do not match fails the task before any request.
    :param engagelab_conn_id: the EngageLab Connection.
    :param journey_ids: journey IDs: a list of ints/digit strings, a comma-separated string,
        a rendered list literal such as ``"[1, 2, 3]"``, or an XComArg. (templated)
    :param time_unit: ``"DAY"`` or ``"HOUR"``. (templated)
    :param start_time: first day (``date``, ``datetime`` or ``yyyy-MM-dd``); give it together
        with ``end_time``, or neither to use the run's window. (templated)
    :param end_time: last day, inclusive. (templated)
    :param lookback_days: also fetch this many days before the window, for statistics that
        settle late.
    :param on_journey_error: what a per-journey ``error_code`` does: ``"fail"`` (fail, change
        nothing), ``"warn"`` (log a warning per journey, load the others) or ``"skip"`` (as
        ``warn``, logged at debug level only).
    :param on_schema_change: what a detail field the contract does not name does: ``"warn"``
        (logged, named in the summary; the known columns are loaded) or ``"fail"`` (refused
        before anything changes). ``"keep"`` is refused: the table has no column for it.
    """

    template_fields: Sequence[str] = (*FETCH_TEMPLATE_FIELDS, "table")
    ui_color = "#dcfce7"

    def __init__(
        self,
        *,
        stats_type: str,
        sql_conn_id: str,
        table: str,
        create_table: bool = True,
        engagelab_conn_id: str = DEFAULT_CONN_ID,
        journey_ids: Any,
        time_unit: str = "DAY",
        start_time: Any = None,
        end_time: Any = None,
        lookback_days: int = 0,
        on_journey_error: str = "fail",
        on_schema_change: str = "warn",
        **kwargs: Any,
    ) -> None:
        _validate_sql_literals({"sql_conn_id": sql_conn_id, "table": table, "create_table": create_table,
                                "on_schema_change": on_schema_change})
        super().__init__(
            stats_type=stats_type, engagelab_conn_id=engagelab_conn_id, journey_ids=journey_ids,
            time_unit=time_unit, start_time=start_time, end_time=end_time, lookback_days=lookback_days,
            on_journey_error=on_journey_error, **kwargs,
        )
        self.sql_conn_id = sql_conn_id
        self.table = table
        self.create_table = create_table
        self.on_schema_change = parse_schema_policy(on_schema_change)
        alias = AssetAlias(name=self.asset_alias_name)  # a mapped task's: declared by partial()
        outlets = list(self.outlets or [])
        if alias not in outlets:
            self.outlets = [*outlets, alias]

    @classmethod
    def partial(cls, **kwargs: Any) -> Any:  # type: ignore[override]
        """Like ``BaseOperator.partial``, plus parse-time checks and the AssetAlias outlet."""
        validate_fetch_literals(kwargs.get("stats_type"), kwargs, mapped=True)
        _validate_sql_literals(kwargs)
        return declare_partial_outlet(super().partial(**kwargs), lambda alias: AssetAlias(name=alias))

    # ------------------------------------------------------------------ execute
    def execute(self, context: Context) -> dict[str, Any]:
        """Fetch the statistics and replace their rows in the table; return a summary."""
        query = self._query(context)
        _validate_sql_literals({"sql_conn_id": self.sql_conn_id, "create_table": self.create_table})
        table = parse_table_name(self.table)
        hook = self._sql_hook()
        sink = self._open_sink(query, table, hook)  # the table is checked here, before any request
        self.log.info(
            "EngageLab %s statistics: %d journey(s), %s..%s %s -> table %s (sql_conn_id=%s, %s)",
            query.stats_type.value, len(query.journey_ids), query.start.isoformat(),
            query.end.isoformat(), query.time_unit.value, table, self.sql_conn_id, sink.method,
        )
        changes, apply_schema_policy = self._schema_policy(query)
        outcome = self._fetch(query, sink, apply_schema_policy)
        result = outcome.result
        self.log.info(
            "Committed to %s: %d row(s) deleted, %d inserted (%d call(s))",
            table, result["rows_deleted"], result["rows_inserted"], outcome.stream.calls_done,
        )
        summary = {
            "table": str(table),
            "schema": result["schema"],
            "stats_type": query.stats_type.value,
            "time_unit": query.time_unit.value,
            "window": {"start": query.start.isoformat(), "end": query.end.isoformat()},
            "rows_deleted": result["rows_deleted"],
            "rows_inserted": result["rows_inserted"],
            "created": result["created"],
            "method": result["method"],
            "calls": outcome.stream.calls_done,
            "requests": outcome.stream.requests,
            "journey_errors": outcome.journey_errors,
            "schema_changes": changes.report(),
        }
        self._record_lineage(query, outcome, changes, self._lineage_output(hook, result, summary))
        self._emit_asset_event(context, hook, summary)
        return summary

    @staticmethod
    def _lineage_output(hook: Any, result: dict[str, Any], summary: dict[str, Any]) -> LineageOutput:
        """The table as an OpenLineage dataset (from the Connection's host, port, database)."""
        from airflow_provider_engagelab.core.lineage import sql_output

        conn = hook.connection
        database = getattr(hook, "database", None) or conn.schema
        return sql_output(str(conn.conn_type or ""), conn.host, conn.port, database, summary["schema"],
                          summary["table"], [tuple(c) for c in result.get("columns") or []],
                          int(result["rows_inserted"]))

    def _sql_hook(self) -> Any:
        """The hook of ``sql_conn_id``, which must be a common.sql ``DbApiHook``."""
        try:
            from airflow.providers.common.sql.hooks.sql import DbApiHook
        except ImportError:
            raise EngageLabValidationError(
                f"Invalid sql_conn_id={self.sql_conn_id!r}: writing to SQL needs "
                f"apache-airflow-providers-common-sql; install the extra: {SQL_INSTALL_HINT}"
            ) from None
        try:  # Airflow >= 3.1 exports BaseHook from the task SDK
            from airflow.sdk import BaseHook
        except ImportError:  # Airflow 3.0
            from airflow.hooks.base import BaseHook  # type: ignore[no-redef,attr-defined]

        try:
            conn = BaseHook.get_connection(self.sql_conn_id)
        except Exception as exc:  # noqa: BLE001 - AirflowNotFoundException and friends
            raise EngageLabValidationError(
                f"Invalid sql_conn_id={self.sql_conn_id!r}: no such Airflow Connection ({type(exc).__name__})"
            ) from None
        try:
            hook = conn.get_hook()
        except Exception as exc:  # noqa: BLE001 - an unknown type, a provider not installed
            raise EngageLabValidationError(
                f"Invalid sql_conn_id={self.sql_conn_id!r}: the hook of its Connection type "
                f"{conn.conn_type!r} cannot be loaded ({type(exc).__name__}: {str(exc)[:200]}); "
                "install the provider of that database"
            ) from None
        if not isinstance(hook, DbApiHook):
            raise EngageLabValidationError(
                f"Invalid sql_conn_id={self.sql_conn_id!r}: its hook {type(hook).__name__} (Connection "
                f"type {conn.conn_type!r}) is not a common.sql DbApiHook; use the Connection of a SQL "
                "database (postgres, sqlite, mysql, ...)"
            )
        return hook

    def _open_sink(self, query: StatsQuery, table: TableName, hook: Any) -> SqlSink:  # type: ignore[override]
        """The SQL sink on a new connection of ``hook``; checks or creates the table."""
        from airflow_provider_engagelab.sinks.sql import SqlDatabase, SqlSink

        try:
            dialect = str(hook.dialect_name)
        except Exception:  # noqa: BLE001 - hooks that cannot build a SQLAlchemy URL
            dialect = _DIALECTS.get(hook.connection.conn_type, str(hook.connection.conn_type))
        db = SqlDatabase(hook.get_conn(), dialect, hook.placeholder, lambda: hook.inspector)
        return SqlSink(db, table, query, create_table=self.create_table)

    # ------------------------------------------------------------------ lineage
    def _emit_asset_event(self, context: Context, hook: Any, summary: dict[str, Any]) -> None:
        events = context.get("outlet_events")
        if events is None:
            return
        alias = self.asset_alias_name
        extra = {
            "table": summary["table"], "time_unit": summary["time_unit"],
            "window_start": summary["window"]["start"], "window_end": summary["window"]["end"],
            "rows_deleted": summary["rows_deleted"], "rows_inserted": summary["rows_inserted"],
        }
        asset = Asset(table_asset_uri(hook.connection, summary["schema"], summary["table"]))
        for outlet in self.outlets or []:
            if isinstance(outlet, AssetAlias) and outlet.name == alias:
                events[outlet].add(asset, extra=extra)


def table_asset_uri(conn: Any, schema: str | None, table: str) -> str:
    """The Asset URI of a table: ``postgres://host:port/database/schema/table`` (the postgres
    provider's form), ``sqlite://<file>/main/table``, ``<conn_type>://host[:port]/...`` for
    others. Built from the Connection's host, port and schema only (never its credentials)."""
    name = table.rsplit(".", 1)[-1]
    kind = str(conn.conn_type or "sql")
    if kind == "sqlite":
        return f"sqlite://{conn.host or ''}/{schema or 'main'}/{name}"
    scheme = "postgres" if kind in ("postgres", "postgresql") else kind
    port = conn.port or (5432 if scheme == "postgres" else None)
    authority = f"{conn.host or 'localhost'}:{port}" if port else str(conn.host or "localhost")
    parts = [p for p in (conn.schema, schema, name) if p]
    return f"{scheme}://{authority}/{'/'.join(parts)}"
