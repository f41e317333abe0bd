"""Wait until a day's EngageLab statistics are complete: poke, reschedule or deferrable."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowSensorTimeout, conf
from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_provider_engagelab._context import context_window, dag_timezone, is_templated
from airflow_provider_engagelab.core.defaults import DEFAULT_CONN_ID
from airflow_provider_engagelab.core.query import (
    StatsQuery,
    build_query,
    parse_date,
    parse_journey_ids,
    parse_stats_type,
)
from airflow_provider_engagelab.core.readiness import (
    Check,
    check_reference,
    error_from_payload,
    evaluate,
    last_bucket,
    load_check,
    parse_require,
)
from airflow_provider_engagelab.exceptions import EngageLabError, EngageLabValidationError

if TYPE_CHECKING:
    from airflow_provider_engagelab.hooks.engagelab import EngageLabHook


def _trigger_class() -> Any:
    # Loaded when the sensor defers, not at DAG parse.
    from airflow_provider_engagelab.triggers.engagelab import EngageLabStatsAvailableTrigger

    return EngageLabStatsAvailableTrigger


if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["EngageLabStatsAvailableSensor"]

#: Extra time the task-level deferral timeout leaves the trigger to report its own timeout
#: (with what it saw) before Airflow's generic deferral timeout would fire.
DEFER_TIMEOUT_GRACE = 120.0


class EngageLabStatsAvailableSensor(BaseSensorOperator):
    """Wait until the statistics of ``target_date`` are complete for the given journeys.

    Readiness rule (default): the sensor asks for the HOUR statistics of ``target_date``
    and a journey is *ready* when its rows include the day's last hour bucket
    ``yyyy-MM-dd 23``. ``require="all"`` waits for every journey, ``require="any"`` for at
    least one. ``check`` replaces that rule with your own ``check(rows, errors) -> bool``.

    Fails at once, without waiting: a journey that does not exist (50202) or a malformed ID
    (50221), bad credentials (40050), any other non-retryable API error, invalid
    parameters, and a ``target_date`` after today (DAG time zone). Transient errors (429,
    5xx, timeouts), once the hook's retries are spent, count as "not yet".

    Modes: ``mode="poke"`` (holds a worker slot), ``mode="reschedule"`` (frees it between
    looks) and ``deferrable=True`` (one look on the worker, then
    :class:`~airflow_provider_engagelab.triggers.engagelab.EngageLabStatsAvailableTrigger`
    waits in the triggerer; default from ``[operators] default_deferrable``).

    XCom (``return_value``): a summary of the last look: ``ready``, ``target_date``,
    ``ready_journeys``, ``pending_journeys``, ``last_bucket`` (latest HOUR bucket seen per
    journey), ``rows_seen``, ``journey_errors``, ``require``, ``check``.

    :param journey_ids: journeys to wait for: list of ints/digit strings or a
        comma-separated string (templated).
    :param target_date: the day, ``yyyy-MM-dd``/``date``/``datetime`` (templated). Default:
        the run's day as the operators compute it (the last day of the data interval, or
        the day before the logical date / ``run_after`` for an empty interval), in the DAG's
        time zone.
    :param stats_type: ``journey`` (default), ``message`` or ``webhook``: which endpoint's
        HOUR rows the rule looks at.
    :param engagelab_conn_id: the EngageLab Connection.
    :param require: ``"all"`` (default) or ``"any"``.
    :param check: optional custom rule ``check(rows, errors) -> bool``: ``rows`` are the
        flat HOUR rows of the day (dicts, as the hook returns them), ``errors`` the
        per-journey :class:`~airflow_provider_engagelab.core.parsing.JourneyError` list that
        waiting may still clear. Errors that cannot clear fail before it is called. In
        deferrable mode it must be importable by the triggerer: a top-level function of a
        module on the PYTHONPATH (not the DAG file), or its ``"package.module:function"``
        reference; anything else is refused when the sensor is created.
    :param deferrable: hand the waiting to the triggerer.
    """

    template_fields: Sequence[str] = ("journey_ids", "target_date")
    ui_color = "#e3f0fd"

    def __init__(
        self,
        *,
        journey_ids: Any,
        target_date: Any = None,
        stats_type: str = "journey",
        engagelab_conn_id: str = DEFAULT_CONN_ID,
        require: str = "all",
        check: Check | str | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.journey_ids = journey_ids
        self.target_date = target_date
        self.stats_type = parse_stats_type(stats_type).value
        self.engagelab_conn_id = engagelab_conn_id
        self.require = parse_require(require)
        self.deferrable = deferrable
        self.check = check
        # Refuse at DAG parse time what is already wrong: literal IDs and day, a check the
        # chosen mode cannot use. Templates and XComArgs are checked when the task runs.
        if not is_templated(journey_ids):
            parse_journey_ids(journey_ids)
        if target_date is not None and not is_templated(target_date):
            parse_date(target_date, "target_date")
        self._check_ref = check_reference(check, importable=deferrable)

    @cached_property
    def hook(self) -> EngageLabHook:
        """The sync hook of the poke/reschedule looks."""
        # Imported when the task runs, not at DAG parse (HttpHook's imports are heavy).
        from airflow_provider_engagelab.hooks.engagelab import EngageLabHook

        return EngageLabHook(engagelab_conn_id=self.engagelab_conn_id)

    # ------------------------------------------------------------------ helpers
    def _query(self, context: Context) -> StatsQuery:
        """Validate the rendered parameters; the default day; no future day."""
        if self.target_date is None:
            target = context_window(context)[1]
        else:
            target = parse_date(self.target_date, "target_date")
        today = datetime.now(dag_timezone(context)).date()
        if target > today:
            raise EngageLabValidationError(
                f"Invalid target_date={target.isoformat()!r}: it is after today ({today.isoformat()} in the "
                "DAG's time zone); statistics of a future day cannot be complete, so the sensor fails "
                "instead of waiting"
            )
        return build_query(self.stats_type, self.journey_ids, "HOUR", target, target)

    def _check_callable(self) -> Check | None:
        if self.check is None:
            return None
        if isinstance(self.check, str):
            return load_check(self._check_ref or self.check)
        return self.check

    def _look(self, query: StatsQuery) -> PokeReturnValue | bool:
        """Fetch the day's HOUR rows and apply the rule; transient errors are "not yet"."""
        target: date = query.start
        self._lineage_query = query
        try:
            result = self.hook.get_stats(query.stats_type.value, query.journey_ids, "HOUR", target, target)
        except EngageLabError as exc:
            if exc.retryable:
                self.log.warning(
                    "EngageLab statistics of %s not readable yet, counted as not ready: %s",
                    target.isoformat(), exc,
                )
                return False
            raise
        readiness = evaluate(
            target, query.journey_ids, result.rows, result.errors,
            require=self.require, check=self._check_callable(), check_name=self._check_ref,
            stats_type=query.stats_type.value,
        )
        self.log.info("%s", readiness.describe())
        if readiness.ready:
            return PokeReturnValue(is_done=True, xcom_value=readiness.as_dict())
        return False

    # ------------------------------------------------------------------ lineage
    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage input of the finished sensor: the endpoint it watched (namespace = the
        API host, name = the endpoint path) with the journey count and the day; no output."""
        from airflow_provider_engagelab._openlineage import operator_lineage
        from airflow_provider_engagelab.core.lineage import TaskLineage, api_dataset

        query: StatsQuery | None = getattr(self, "_lineage_query", None)
        if query is None:
            return operator_lineage(None)
        return operator_lineage(TaskLineage([api_dataset(self.hook.resolved.base_url, query, 0)]))

    # ------------------------------------------------------------------ sensor API
    def poke(self, context: Context) -> PokeReturnValue | bool:
        """One look at the HOUR statistics of the target day."""
        return self._look(self._query(context))

    def execute(self, context: Context) -> Any:
        """Poke/reschedule as usual; deferrable: look once here, then defer to the trigger."""
        if not self.deferrable:
            return super().execute(context)
        query = self._query(context)
        first = self._look(query)
        if isinstance(first, PokeReturnValue):
            return first.xcom_value
        deadline = datetime.now(timezone.utc) + timedelta(seconds=self.timeout)
        self.log.info(
            "Deferring: the triggerer looks for %r every %gs until %s",
            last_bucket(query.start), self.poke_interval, deadline.isoformat(),
        )
        self.defer(
            trigger=_trigger_class()(
                journey_ids=list(query.journey_ids),
                target_date=query.start.isoformat(),
                stats_type=query.stats_type.value,
                engagelab_conn_id=self.engagelab_conn_id,
                require=self.require,
                poke_interval=self.poke_interval,
                timeout_at=deadline.isoformat(),
                check=self._check_ref,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout + DEFER_TIMEOUT_GRACE),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Resume after the trigger: return the summary, or raise what the trigger reported."""
        status = (event or {}).get("status")
        if status == "success":
            self._lineage_query = self._query(context)
            summary = event.get("summary")  # type: ignore[union-attr]
            self.log.info(
                "EngageLab statistics of %s are ready (after %s look(s) in the triggerer)",
                event.get("target_date"), event.get("polls"),  # type: ignore[union-attr]
            )
            return summary
        if status == "error":
            raise error_from_payload(event.get("error") or {})  # type: ignore[union-attr]
        if status == "timeout":
            message = event.get("message") or "the trigger timed out"  # type: ignore[union-attr]
            raise AirflowSensorTimeout(str(message))
        raise EngageLabError(f"unexpected event from EngageLabStatsAvailableTrigger: {event!r}")
