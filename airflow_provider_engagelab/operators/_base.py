"""What every task that fetches EngageLab statistics shares, whatever it writes to.

:class:`EngageLabFetchOperator` owns the fetch parameters (``stats_type``,
``engagelab_conn_id``, ``journey_ids``, ``time_unit``, ``start_time``, ``end_time``,
``lookback_days``, ``on_journey_error``), their parse-time and run-time validation, the run's
window, the query, the fetch loop (hook -> sink), the journey-error policy and the application
of a subclass's ``on_schema_change`` policy. Subclasses say
where the rows go by implementing :meth:`EngageLabFetchOperator._open_sink`: the stats
operators (XCom, files) and the SQL transfer.

``SIGTERM``: Airflow 3's task process answers it by calling :meth:`~EngageLabFetchOperator.on_kill`
in the main thread (then ``SIGKILL`` after a grace period). While a fetch runs, ``on_kill``
raises ``AirflowTaskTerminated`` there, so the fetch unwinds as on any failure: the running
calls are cancelled, their answer bodies closed (anonymous temporary files: nothing to remove)
and the sink aborted (its staging folder removed, nothing published).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperator

from airflow_provider_engagelab._context import context_window, is_templated
from airflow_provider_engagelab.core.defaults import DEFAULT_CONN_ID
from airflow_provider_engagelab.core.options import parse_error_policy
from airflow_provider_engagelab.core.query import (
    StatsQuery,
    build_query,
    parse_date,
    parse_journey_ids,
    parse_stats_type,
    parse_time_unit,
)
from airflow_provider_engagelab.core.report import journey_error_report, journey_errors_exception
from airflow_provider_engagelab.core.schema_changes import SchemaChanges
from airflow_provider_engagelab.core.window import apply_lookback
from airflow_provider_engagelab.exceptions import EngageLabValidationError

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_engagelab.core.lineage import LineageOutput, TaskLineage
    from airflow_provider_engagelab.core.records import ParsedResponse
    from airflow_provider_engagelab.core.stream import StatsStream
    from airflow_provider_engagelab.sinks.base import Sink

ALIAS_PREFIX = "engagelab:"

#: The template fields every fetching task has.
FETCH_TEMPLATE_FIELDS: tuple[str, ...] = ("journey_ids", "time_unit", "start_time", "end_time")


def check_lookback(value: Any) -> None:
    """Validate ``lookback_days`` (the rule lives in ``core.window.apply_lookback``)."""
    today = date.today()
    apply_lookback(today, today, value)


def validate_fetch_literals(stats_type: Any, params: Mapping[str, Any], *, mapped: bool = False) -> None:
    """Parse-time checks of the fetch parameters whose values are already known.

    With ``mapped``, parameters absent from ``partial()`` (``stats_type`` included) may come
    from ``expand()`` and are checked when the mapped task instance runs.
    """
    if not (mapped and stats_type is None):
        parse_stats_type(stats_type)
    if "on_journey_error" in params:
        parse_error_policy(params["on_journey_error"])
    if "lookback_days" in params:  # not a template field: its value is final here
        check_lookback(params["lookback_days"])
    value = params.get("time_unit")
    if value is not None and not is_templated(value):
        parse_time_unit(value)
    for name in ("start_time", "end_time"):
        value = params.get(name)
        if value is not None and not is_templated(value):
            parse_date(value, name)
    value = params.get("journey_ids")
    if value is not None and not is_templated(value):
        parse_journey_ids(value)


def alias_name(dag_id: str | None, task_id: str) -> str:
    """The name of a task's AssetAlias: ``engagelab:<dag_id>.<task_id>``."""
    return f"{ALIAS_PREFIX}{dag_id}.{task_id}" if dag_id else f"{ALIAS_PREFIX}{task_id}"


def declare_partial_outlet(op_partial: Any, outlet_for: Callable[[str], Any]) -> Any:
    """Add a mapped task's own outlet to what ``partial()`` returned, and return it.

    ``outlet_for(alias_name)`` gives the Asset or AssetAlias to declare (or ``None``). The
    name comes from the dag and the group-qualified task id that ``partial()`` resolved, so
    the unmapped task finds the same outlet among its ``outlets`` and adds no other.
    """
    kwargs = op_partial.kwargs
    dag = kwargs.get("dag")
    own = outlet_for(alias_name(dag.dag_id if dag is not None else None, kwargs["task_id"]))
    if own is not None:
        outlets = kwargs.get("outlets") or []
        outlets = list(outlets) if isinstance(outlets, (list, tuple)) else [outlets]
        if own not in outlets:
            kwargs["outlets"] = [*outlets, own]
    return op_partial


@dataclass
class FetchOutcome:
    """What :meth:`EngageLabFetchOperator._fetch` returns.

    :param result: what the sink's ``commit()`` returned.
    :param stream: the finished stream (``calls_done``, ``requests``, ``errors``).
    :param journey_errors: the per-journey errors, as reported (JSON-safe dicts).
    :param api_url: the API's base URL (no credentials), for lineage.
    """

    result: Any
    stream: StatsStream
    journey_errors: list[dict[str, Any]]
    api_url: str = ""


class EngageLabFetchOperator(BaseOperator):
    """Base of the tasks that fetch EngageLab statistics (see the module).

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
    :param on_journey_error: what a per-journey ``error_code`` does: ``"fail"``, ``"warn"`` or
        ``"skip"``.
    """

    template_fields: Sequence[str] = FETCH_TEMPLATE_FIELDS
    template_fields_renderers: ClassVar[dict[str, str]] = {"journey_ids": "py"}

    #: Set by the subclasses that fix the statistics type.
    fixed_stats_type: ClassVar[str | None] = None

    #: What a field the contract does not name does (subclasses take it as a parameter).
    on_schema_change: str = "warn"

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
        on_journey_error: str = "fail",
        **kwargs: Any,
    ) -> None:
        validate_fetch_literals(
            stats_type,
            {"journey_ids": journey_ids, "time_unit": time_unit, "start_time": start_time,
             "end_time": end_time, "lookback_days": lookback_days, "on_journey_error": on_journey_error},
        )
        super().__init__(**kwargs)
        self.stats_type = parse_stats_type(stats_type).value
        self.engagelab_conn_id = engagelab_conn_id
        self.journey_ids = journey_ids
        self.time_unit = time_unit
        self.start_time = start_time
        self.end_time = end_time
        self.lookback_days = lookback_days
        self.on_journey_error = parse_error_policy(on_journey_error)

    @property
    def asset_alias_name(self) -> str:
        """Name of this task's AssetAlias (for outlets resolved at run time)."""
        return alias_name(self.dag_id if self.has_dag() else None, self.task_id)

    # ------------------------------------------------------------------ the query
    def _window(self, context: Context, lookback: int) -> tuple[date, date]:
        if self.start_time is None and self.end_time is None:
            return context_window(context, lookback)
        if self.start_time is None or self.end_time is None:
            missing = "start_time" if self.start_time is None else "end_time"
            given = "end_time" if missing == "start_time" else "start_time"
            raise EngageLabValidationError(
                f"Invalid {missing}=None: give start_time and end_time together (only {given} was "
                "given), or neither to use the run's data interval"
            )
        first = parse_date(self.start_time, "start_time")
        last = parse_date(self.end_time, "end_time")
        return apply_lookback(first, last, lookback)

    def _query(self, context: Context) -> StatsQuery:
        """Validate the fetch parameters (no HTTP) and return the query, journey IDs sorted."""
        lookback = self.lookback_days
        check_lookback(lookback)
        ids = parse_journey_ids(self.journey_ids)
        first, last = self._window(context, lookback)
        # Sorted IDs: the same journey set gives the same calls, the same row order, the same bytes.
        return build_query(self.stats_type, sorted(ids), self.time_unit, first, last)

    # ------------------------------------------------------------------ the fetch
    def _open_sink(self, query: StatsQuery, *args: Any, **kwargs: Any) -> Sink:
        """Where this task's rows go; output checks fail here, before any request."""
        raise NotImplementedError

    def _fetch(
        self,
        query: StatsQuery,
        sink: Sink,
        before_stage: Callable[[ParsedResponse], None] | None = None,
    ) -> FetchOutcome:
        """Fetch ``query`` into ``sink``: stage every answer (after ``before_stage``, e.g. a
        schema policy, has seen it), apply the journey-error policy, commit; on any failure the
        sink is aborted (nothing it staged becomes visible)."""
        # Imported here, not at module level: HttpHook pulls in requests, aiohttp and pydantic,
        # which would cost every DAG file that uses these operators ~100 ms of parse time.
        from airflow_provider_engagelab.hooks.engagelab import EngageLabHook

        hook = EngageLabHook(engagelab_conn_id=self.engagelab_conn_id)
        stream = hook.iter_stats(
            query.stats_type.value, query.journey_ids, query.time_unit.value, query.start, query.end
        )
        self._fetching = True
        try:
            for parsed in stream.responses():
                if before_stage is not None:
                    before_stage(parsed)
                sink.stage(parsed)
            report = self._check_journey_errors(stream)
            result = sink.commit()
        finally:
            self._fetching = False
            stream.close()  # on a failure: cancel the calls still running, close their bodies
            sink.abort()
        return FetchOutcome(result, stream, report, hook.resolved.base_url)

    # ------------------------------------------------------------------ lineage
    def _record_lineage(self, query: StatsQuery, outcome: FetchOutcome, changes: SchemaChanges,
                        output: LineageOutput | None) -> None:
        """Keep what this task read and wrote for :meth:`get_openlineage_facets_on_complete`
        (which then needs no request): the endpoint, and ``output`` unless the rows went to XCom."""
        from airflow_provider_engagelab.core.lineage import TaskLineage, api_dataset

        read = api_dataset(outcome.api_url, query, len(outcome.journey_errors), changes.fields)
        self._engagelab_lineage = TaskLineage([read], [output] if output is not None else [])

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage datasets of the finished task: the endpoint read (with the journey count
        and the window, not the journeys), and what was written (a stats-type root, a Delta
        table, a SQL table) with its schema and outputStatistics. Called by the OpenLineage
        provider, which is the only caller that loads OpenLineage."""
        from airflow_provider_engagelab._openlineage import operator_lineage

        lineage: TaskLineage | None = getattr(self, "_engagelab_lineage", None)
        return operator_lineage(lineage)

    #: True while :meth:`_fetch` runs (what :meth:`on_kill` interrupts).
    _fetching: bool = False

    def on_kill(self) -> None:
        """``SIGTERM`` during the fetch: end it here (see the module), so that it cleans up."""
        if not self._fetching:
            return
        self._fetching = False
        try:
            from airflow.sdk.exceptions import AirflowTaskTerminated
        except ImportError:  # pragma: no cover - Airflow 3.0
            from airflow.exceptions import AirflowTaskTerminated  # type: ignore[no-redef,attr-defined]
        raise AirflowTaskTerminated(
            f"Task {self.task_id} received SIGTERM while fetching {self.stats_type} statistics: "
            "the fetch stops, its answer bodies and staged rows are removed, nothing is published"
        )

    def _schema_policy(self, query: StatsQuery) -> tuple[SchemaChanges, Callable[[ParsedResponse], None]]:
        """The task's ``on_schema_change`` policy, and what applies it to each answer (logging
        each new field once)."""
        changes = SchemaChanges(self.on_schema_change, query.stats_type.value)

        def apply(parsed: ParsedResponse) -> None:
            for new in changes.apply(parsed):
                self._log_new_field(new)

        return changes, apply

    def _log_new_field(self, new: dict[str, Any]) -> None:
        how = "written too" if self.on_schema_change == "keep" else "left out; the known columns are written"
        log = self.log.warning if self.on_schema_change == "warn" else self.log.info
        log(
            "The API answered %s statistics with the field %r, which the contract does not name "
            "(first in journey %s, time %r): %s (on_schema_change=%r)",
            self.stats_type, new["field"], new.get("journey_id"), new.get("time"), how,
            self.on_schema_change,
        )

    def _check_journey_errors(self, stream: StatsStream) -> list[dict[str, Any]]:
        report = journey_error_report(stream.errors)
        if not report:
            return report
        if self.on_journey_error == "fail":
            raise journey_errors_exception(report, self.stats_type)
        for err in report:
            log = self.log.warning if self.on_journey_error == "warn" else self.log.debug
            log(
                "Journey %s failed with code %s (%s); its %s statistics are left out and its "
                "rows already written are kept (on_journey_error=%r)",
                err["journey_id"], err["error_code"], err["meaning"], self.stats_type,
                self.on_journey_error,
            )
        return report
