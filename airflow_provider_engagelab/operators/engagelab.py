"""Operators that pull EngageLab journey, message and webhook statistics.

Thin Airflow glue: validation, planning, parsing and the run window live in the pure core
(:mod:`airflow_provider_engagelab.core`), HTTP in :class:`~..hooks.engagelab.EngageLabHook`,
partitioning, serialisation and atomic commit in :mod:`..core.writers`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset, AssetAlias

from airflow_provider_engagelab._context import is_templated
from airflow_provider_engagelab.core.defaults import DEFAULT_CONN_ID
from airflow_provider_engagelab.core.layout import asset_uri, join_uri, local_root, output_root_uri
from airflow_provider_engagelab.core.options import (
    DEFAULT_COMMIT_LEASE_SECONDS,
    DEFAULT_COMMIT_WAIT_SECONDS,
    DEFAULT_MAX_XCOM_ROWS,
    parse_max_xcom_rows,
    parse_output_format,
    parse_schema_policy,
    parse_seconds,
)
from airflow_provider_engagelab.core.query import StatsQuery
from airflow_provider_engagelab.core.schema_changes import SchemaChanges
from airflow_provider_engagelab.exceptions import EngageLabValidationError
from airflow_provider_engagelab.operators._base import (
    FETCH_TEMPLATE_FIELDS,
    EngageLabFetchOperator,
    declare_partial_outlet,
    validate_fetch_literals,
)
from airflow_provider_engagelab.operators.delta_tables import check_delta_options, check_delta_output

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_engagelab.core.lineage import LineageOutput
    from airflow_provider_engagelab.core.stream import StatsStream
    from airflow_provider_engagelab.sinks.base import Sink
    from airflow_provider_engagelab.sinks.store import Store

__all__ = [
    "EngageLabJourneyStatsOperator",
    "EngageLabMessageStatsOperator",
    "EngageLabStatsOperator",
    "EngageLabWebhookStatsOperator",
]

def _validate_literals(stats_type: Any, params: dict[str, Any], *, mapped: bool = False) -> None:
    """Parse-time checks of every parameter whose value is already known.

    With ``mapped``, parameters absent from ``partial()`` (``stats_type`` included) may come
    from ``expand()`` and are checked when the mapped task instance runs.
    """
    validate_fetch_literals(stats_type, params, mapped=mapped)
    if "output_format" in params:
        parse_output_format(params["output_format"])
    if "on_schema_change" in params:
        parse_schema_policy(params["on_schema_change"])
    # not template fields: their values are final here (expand() values are checked per instance)
    if "max_xcom_rows" in params:
        parse_max_xcom_rows(params["max_xcom_rows"])
    if "commit_lease_seconds" in params:
        parse_seconds(params["commit_lease_seconds"], "commit_lease_seconds", minimum=5, maximum=3600)
    if "commit_wait_seconds" in params:
        parse_seconds(params["commit_wait_seconds"], "commit_wait_seconds", minimum=1, maximum=86400)
    if "asset_partitions" in params:
        parse_asset_partitions(params["asset_partitions"])
    value = params.get("output_path")
    if value is not None and not is_templated(value):
        output_root_uri(value)
    fmt = params.get("output_format")
    if isinstance(fmt, str) and parse_output_format(fmt) == "delta":
        check_delta_options(params.get("on_schema_change"))
        if not is_templated(value) and (value is not None or not mapped):  # expand() may give it
            check_delta_output(value)


def parse_asset_partitions(value: Any) -> bool | None:
    """``asset_partitions``: ``None`` (auto), ``True`` or ``False``."""
    if value is not None and not isinstance(value, bool):
        raise EngageLabValidationError(
            f"Invalid asset_partitions={value!r}: must be None (partitions when the DAG run is "
            "partitioned), True (always, where Airflow supports them) or False (never)"
        )
    return value


def supports_asset_partitions() -> bool:
    """Whether the installed Airflow takes partition keys on outlet events (3.2+:
    ``OutletEventAccessor.add_partitions``), found by looking, not by version number."""
    try:
        from airflow.sdk.execution_time.context import OutletEventAccessor
    except ImportError:  # pragma: no cover - the Task SDK has it since 3.0
        return False
    return callable(getattr(OutletEventAccessor, "add_partitions", None))


def _own_outlet(stats_type: Any, output_path: Any, alias: str) -> Asset | AssetAlias | None:
    """The Asset for a literal ``output_path``, an AssetAlias for one resolved at run time."""
    if output_path is None:
        return None
    if stats_type is not None and isinstance(output_path, str) and not is_templated(output_path):
        return Asset(asset_uri(output_path, stats_type))
    return AssetAlias(name=alias)


class EngageLabStatsOperator(EngageLabFetchOperator):
    """Fetch EngageLab journey statistics into XCom or into partitioned files.

    Any number of journeys and any date range: the hook plans the fewest API calls (batches
    of <= 100 IDs x windows of <= 31 days) and runs them concurrently.

    :param stats_type: ``"journey"``, ``"message"`` or ``"webhook"``.
    :param engagelab_conn_id: the EngageLab Connection.
    :param journey_ids: journey IDs: a list of ints/digit strings, a comma-separated string,
        a rendered list literal such as ``"[1, 2, 3]"``, or an XComArg. (templated)
    :param time_unit: ``"DAY"`` or ``"HOUR"``. (templated)
    :param start_time: first day (``date``, ``datetime`` or ``yyyy-MM-dd``); give it together
        with ``end_time``, or neither to use the run's window. (templated)
    :param end_time: last day, inclusive. (templated)
    :param lookback_days: also fetch this many days before the window, for statistics that
        settle late.
    :param output_path: ``None`` to return the rows through XCom; else the root URL of the
        output files (any ``ObjectStoragePath`` URL: ``s3://``, ``gs://``, ``file://``, or an
        absolute local path). (templated)
    :param output_conn_id: the Airflow Connection of the object store (e.g. ``aws_default``).
    :param output_format: ``"jsonl"`` (default), ``"csv"`` or ``"parquet"`` (needs the
        ``[parquet]`` extra) files, or ``"delta"``: Delta tables (needs the ``[delta]`` extra;
        local and ``s3://`` roots).
    :param on_journey_error: what a per-journey ``error_code`` does: ``"fail"`` (fail listing
        every failed journey, write nothing), ``"warn"`` (log a warning per journey, keep the
        others) or ``"skip"`` (as ``warn``, logged at debug level only).
    :param on_schema_change: what a detail field the contract does not name does: ``"warn"``
        (log it once, record it in the summary, write the known columns), ``"fail"`` (fail
        before anything is written, naming the fields) or ``"keep"`` (write it too: JSON lines
        as they come, CSV and Parquet as extra columns after the contract's).
    :param max_xcom_rows: with ``output_path=None``, fail (before pushing anything) when the
        result has more rows than this.
    :param commit_lease_seconds: lease of the per-partition commit lock (files output): a task
        that dies while committing delays the next commit of that partition by at most this
        long. Renewed every third of it while a commit runs. Between 5 and 3600.
    :param commit_wait_seconds: how long a commit waits for other tasks' commits of the same
        partition (Delta: retries commits that conflicted with them) before the task fails
        (and Airflow retries it). Between 1 and 86400.
    :param asset_partitions: name the dates written (``yyyy-MM-dd``) as the partition keys of
        the Asset event, one event per date, so a DAG scheduled with
        ``PartitionedAssetTimetable`` runs once per day written (Airflow 3.2+; a literal
        ``output_path``, whose Asset is declared; ignored where Airflow has no partitions).
        ``None`` (default): only when the DAG run is itself partitioned (Airflow then makes the
        events partitioned anyway; this names the dates instead of the run's key). ``True``:
        always. ``False``: never. Partitioned events do not trigger DAGs scheduled on the
        Asset without partitions: keep ``None``/``False`` for those.
    """

    template_fields: Sequence[str] = (*FETCH_TEMPLATE_FIELDS, "output_path")
    ui_color = "#dbeafe"

    def __init__(
        self,
        *,
        stats_type: str,
        engagelab_conn_id: str = DEFAULT_CONN_ID,
        journey_ids: Any,
        time_unit: str = "DAY",
        start_time: Any = None,
        end_time: Any = None,
        lookback_days: int = 0,
        output_path: str | None = None,
        output_conn_id: str | None = None,
        output_format: str = "jsonl",
        on_journey_error: str = "fail",
        on_schema_change: str = "warn",
        max_xcom_rows: int = DEFAULT_MAX_XCOM_ROWS,
        commit_lease_seconds: float = DEFAULT_COMMIT_LEASE_SECONDS,
        commit_wait_seconds: float = DEFAULT_COMMIT_WAIT_SECONDS,
        asset_partitions: bool | None = None,
        **kwargs: Any,
    ) -> None:
        params = {
            "journey_ids": journey_ids,
            "time_unit": time_unit,
            "start_time": start_time,
            "end_time": end_time,
            "lookback_days": lookback_days,
            "output_path": output_path,
            "output_format": output_format,
            "on_journey_error": on_journey_error,
            "on_schema_change": on_schema_change,
            "max_xcom_rows": max_xcom_rows,
            "commit_lease_seconds": commit_lease_seconds,
            "commit_wait_seconds": commit_wait_seconds,
            "asset_partitions": asset_partitions,
        }
        _validate_literals(stats_type, params)
        super().__init__(
            stats_type=stats_type, engagelab_conn_id=engagelab_conn_id, journey_ids=journey_ids,
            time_unit=time_unit, start_time=start_time, end_time=end_time, lookback_days=lookback_days,
            on_journey_error=on_journey_error, **kwargs,
        )
        self.output_path = output_path
        self.output_conn_id = output_conn_id
        self.output_format = parse_output_format(output_format)
        self.on_schema_change = parse_schema_policy(on_schema_change)
        self.max_xcom_rows = max_xcom_rows
        self.commit_lease_seconds = commit_lease_seconds
        self.commit_wait_seconds = commit_wait_seconds
        self.asset_partitions = asset_partitions
        self._add_own_outlet()

    # ------------------------------------------------------------------ outlets
    def _add_own_outlet(self) -> None:
        outlets = list(self.outlets or [])
        alias = self.asset_alias_name
        if AssetAlias(name=alias) in outlets:
            return  # a mapped task's alias, declared by partial() (what the scheduler knows)
        own = _own_outlet(self.stats_type, self.output_path, alias)
        if own is not None and own not in outlets:
            self.outlets = [*outlets, own]

    @classmethod
    def partial(cls, **kwargs: Any) -> Any:  # type: ignore[override]
        """Like ``BaseOperator.partial``, plus parse-time checks and the Asset outlet.

        A literal ``output_path`` given here is declared as an Asset; a templated one, one
        whose ``stats_type`` is expanded, or one passed to ``.expand()`` as an AssetAlias
        resolved at run time.
        """
        stats_type = cls.fixed_stats_type or kwargs.get("stats_type")
        _validate_literals(stats_type, kwargs, mapped=True)
        path = kwargs.get("output_path")
        return declare_partial_outlet(
            super().partial(**kwargs),
            lambda alias: AssetAlias(name=alias) if path is None else _own_outlet(stats_type, path, alias),
        )

    # ------------------------------------------------------------------ execute
    def _query(self, context: Context) -> StatsQuery:
        """Validate every parameter (no HTTP) and return the query, journey IDs sorted."""
        parse_max_xcom_rows(self.max_xcom_rows)
        parse_seconds(self.commit_lease_seconds, "commit_lease_seconds", minimum=5, maximum=3600)
        parse_seconds(self.commit_wait_seconds, "commit_wait_seconds", minimum=1, maximum=86400)
        return super()._query(context)

    def execute(self, context: Context) -> Any:
        """Fetch the statistics; return the rows, or a summary of the files written."""
        query = self._query(context)
        root = output_root_uri(self.output_path) if self.output_path is not None else None
        sink = self._open_sink(query, root)  # output checks fail here, before any request
        self.log.info(
            "EngageLab %s statistics: %d journey(s), %s..%s %s -> %s",
            query.stats_type.value, len(query.journey_ids), query.start.isoformat(),
            query.end.isoformat(), query.time_unit.value, root or "XCom",
        )
        changes, apply_schema_policy = self._schema_policy(query)
        outcome = self._fetch(query, sink, apply_schema_policy)
        result, stream, report = outcome.result, outcome.stream, outcome.journey_errors
        self._record_lineage(query, outcome, changes, self._lineage_output(query, root, result, changes))
        if root is None:
            self.log.info("Returning %d row(s) through XCom (%d call(s))", len(result), stream.calls_done)
            return result
        return self._summary(context, query, stream, root, result, report, changes)

    def _lineage_output(self, query: StatsQuery, root: str | None, result: Any,
                        changes: SchemaChanges) -> LineageOutput | None:
        """The dataset this task wrote (none for XCom), from the sink's commit summary."""
        from airflow_provider_engagelab.core.lineage import delta_output, file_output

        if root is None:
            return None
        if self.output_format == "delta":
            return delta_output(query.stats_type, result)
        kept = changes.fields if self.on_schema_change == "keep" else None
        return file_output(root, query.stats_type, self.output_format, result, kept)

    def _open_sink(self, query: StatsQuery, root: str | None = None) -> Sink:
        """The sink of this task's output (an XCom list, or partitioned files under ``root``)."""
        if self.output_format == "delta":
            from airflow_provider_engagelab.operators.delta_tables import open_delta_sink

            check_delta_options(self.on_schema_change)
            return open_delta_sink(query, self.output_path, self.output_conn_id,
                                   wait_seconds=self.commit_wait_seconds)
        if root is None:
            from airflow_provider_engagelab.sinks.xcom import XComSink

            return XComSink(self.max_xcom_rows)
        if self.output_format == "parquet":
            from airflow_provider_engagelab.core.encoding import require_parquet

            require_parquet()
        from airflow_provider_engagelab.sinks.files import FileSink

        return FileSink(
            self._store(root), query, self.output_format,
            lease_seconds=self.commit_lease_seconds, wait_seconds=self.commit_wait_seconds,
            keep_extra_fields=self.on_schema_change == "keep",
        )

    def _store(self, root: str) -> Store:
        """The output root as a store: the local file system, or Airflow's object storage."""
        from airflow_provider_engagelab.sinks.store import FsspecStore, LocalStore

        local_dir = local_root(root)
        if local_dir is not None:  # file:// needs no connection nor file system object
            return LocalStore(local_dir, root)
        from airflow.sdk import ObjectStoragePath
        from fsspec.implementations.local import LocalFileSystem

        try:
            base = ObjectStoragePath(str(self.output_path), conn_id=self.output_conn_id)
            fs = base.fs  # Airflow 3.0 resolves the scheme only here: fail before any request
        except (ValueError, ImportError) as exc:  # e.g. "Unsupported filesystem" for an unknown scheme
            raise EngageLabValidationError(
                f"Invalid output_path={self.output_path!r}: {exc}; use a scheme Airflow's "
                "object storage knows (file://, s3://, gs://, ...) with its provider installed"
            ) from None
        if isinstance(fs, LocalFileSystem):
            return LocalStore(base.path, root)
        return FsspecStore(fs, base.path, root)

    def _summary(
        self,
        context: Context,
        query: StatsQuery,
        stream: StatsStream,
        root: str,
        result: dict[str, Any],
        report: list[dict[str, Any]],
        changes: SchemaChanges,
    ) -> dict[str, Any]:
        if self.output_format == "delta":  # the sink logged its commit
            summary = {"stats_type": query.stats_type.value, "time_unit": query.time_unit.value,
                       "format": "delta", "window": {"start": query.start.isoformat(),
                                                     "end": query.end.isoformat()},
                       **{k: v for k, v in result.items() if k != "dates"},
                       "calls": stream.calls_done, "requests": stream.requests,
                       "journey_errors": report, "schema_changes": changes.report()}
            self._emit_asset_event(context, root, summary, result.get("dates") or [])
            return summary
        files = result["files"]
        self.log.info(
            "Committed %d partition(s) under %s: %d file(s), %d row(s) written; %d file(s) of other "
            "journey groupings rewritten, %d removed (%d call(s))",
            result["partitions"], root, len(files), result["total_rows"], len(result["rewritten"]),
            len(result["removed"]), stream.calls_done,
        )
        summary = {
            "stats_type": query.stats_type.value,
            "time_unit": query.time_unit.value,
            "format": self.output_format,
            "window": {"start": query.start.isoformat(), "end": query.end.isoformat()},
            "files": files,
            "total_rows": result["total_rows"],
            "partitions": result["partitions"],
            "rewritten": result["rewritten"],
            "removed": result["removed"],
            "calls": stream.calls_done,
            "requests": stream.requests,
            "journey_errors": report,
            "schema_changes": changes.report(),
        }
        self._emit_asset_event(context, root, summary, result.get("dates") or [])
        return summary

    def _partition_dates(self, context: Context, dates: list[str]) -> list[str]:
        """The partition keys of this run's Asset event: the dates written, when asked (see
        ``asset_partitions``) and the installed Airflow supports them; else none."""
        if not dates or self.asset_partitions is False or not supports_asset_partitions():
            return []
        if self.asset_partitions is None:
            run = context.get("dag_run")
            if getattr(run, "partition_key", None) is None:
                return []
        return sorted(dates)

    def _emit_asset_event(self, context: Context, root: str, summary: dict[str, Any],
                          dates: list[str] | None = None) -> None:
        events = context.get("outlet_events")
        if events is None:
            return
        uri = join_uri(root, self.stats_type)
        extra = {
            "time_unit": summary["time_unit"],
            "window_start": summary["window"]["start"],
            "window_end": summary["window"]["end"],
            "files": len(summary["files"]),
            "total_rows": summary["total_rows"],
        }
        if summary["schema_changes"]:
            extra["new_fields"] = [item["field"] for item in summary["schema_changes"]]
        alias = self.asset_alias_name
        asset = Asset(uri)
        for outlet in self.outlets or []:
            if isinstance(outlet, AssetAlias) and outlet.name == alias:
                events[outlet].add(asset, extra=extra)
            elif isinstance(outlet, Asset) and outlet.uri == asset.uri:
                events[outlet].extra.update(extra)
                keys = self._partition_dates(context, dates or [])
                if keys:
                    events[outlet].add_partitions(keys)


class _FixedStatsOperator(EngageLabStatsOperator):
    def __init__(self, **kwargs: Any) -> None:
        if "stats_type" in kwargs:
            raise TypeError(
                f"{type(self).__name__} always fetches {self.fixed_stats_type!r} statistics; "
                "use EngageLabStatsOperator to choose stats_type"
            )
        super().__init__(stats_type=str(self.fixed_stats_type), **kwargs)


class EngageLabJourneyStatsOperator(_FixedStatsOperator):
    """Journey overall statistics (``/v1/stats/journey``); parameters as
    :class:`EngageLabStatsOperator` without ``stats_type``."""

    fixed_stats_type = "journey"


class EngageLabMessageStatsOperator(_FixedStatsOperator):
    """Per message component statistics (``/v1/stats/journey/message``); parameters as
    :class:`EngageLabStatsOperator` without ``stats_type``."""

    fixed_stats_type = "message"


class EngageLabWebhookStatsOperator(_FixedStatsOperator):
    """Per webhook component statistics (``/v1/stats/journey/webhook``); parameters as
    :class:`EngageLabStatsOperator` without ``stats_type``."""

    fixed_stats_type = "webhook"
