"""The deferrable half of the stats sensor: ``EngageLabStatsAvailableTrigger``.

It is what :class:`~airflow_provider_engagelab.sensors.engagelab.EngageLabStatsAvailableSensor`
hands over to with ``deferrable=True``.

The trigger runs in the triggerer: it polls the HOUR statistics of one day with
:class:`~airflow_provider_engagelab.hooks.engagelab.EngageLabAsyncHook` every
``poke_interval`` seconds and applies the same readiness rule as the sensor
(:func:`airflow_provider_engagelab.core.readiness.evaluate`), until the day is ready, an
error that waiting cannot fix occurs, or its deadline passes. It yields exactly one
``TriggerEvent``:

- ``{"status": "success", "target_date": ..., "summary": {...}, "polls": n}``
- ``{"status": "error", "target_date": ..., "error": {"error_class", "message", "code",
  "http_status"}, "summary": <last look or None>}``
- ``{"status": "timeout", "target_date": ..., "message": ..., "summary": <last look or
  None>, "last_error": <last transient error or None>}``

Its keyword arguments are JSON-safe and the deadline is absolute (``timeout_at``), so a
trigger re-created from :meth:`serialize` after a triggerer restart carries on where the
old one stopped.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_engagelab.core.defaults import DEFAULT_CONN_ID
from airflow_provider_engagelab.core.query import build_query, parse_date
from airflow_provider_engagelab.core.readiness import (
    Readiness,
    check_reference,
    error_to_payload,
    evaluate,
    load_check,
    parse_require,
)
from airflow_provider_engagelab.exceptions import EngageLabError, EngageLabValidationError

__all__ = ["EngageLabStatsAvailableTrigger"]

#: Seconds a look that starts at the deadline may still take before the trigger times out.
LAST_LOOK_GRACE = 30.0


def _parse_deadline(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            raise EngageLabValidationError(
                f"Invalid timeout_at={value!r}: must be an ISO 8601 datetime with a time zone"
            ) from None
    if moment.tzinfo is None:
        raise EngageLabValidationError(f"Invalid timeout_at={value!r}: must carry a time zone")
    return moment.astimezone(timezone.utc)


class EngageLabStatsAvailableTrigger(BaseTrigger):
    """Wait in the triggerer until a day's EngageLab statistics are complete.

    :param journey_ids: the journeys to wait for (list of ints/digit strings, or a
        comma-separated string).
    :param target_date: the day, ``yyyy-MM-dd``.
    :param stats_type: ``journey`` (default), ``message`` or ``webhook``.
    :param engagelab_conn_id: the Airflow Connection.
    :param require: ``"all"`` journeys must have the day's last hour bucket, or ``"any"``.
    :param poke_interval: seconds between two looks.
    :param timeout_at: absolute deadline (ISO 8601 with time zone); ``None`` waits forever.
    :param check: optional custom rule as an importable ``"package.module:function"``
        reference (or such a function); see the sensor.
    """

    def __init__(
        self,
        journey_ids: Any,
        target_date: Any,
        stats_type: str = "journey",
        engagelab_conn_id: str = DEFAULT_CONN_ID,
        require: str = "all",
        poke_interval: float = 60.0,
        timeout_at: Any = None,
        check: Any = None,
    ) -> None:
        super().__init__()
        day = parse_date(target_date, "target_date")
        query = build_query(stats_type, journey_ids, "HOUR", day, day)
        self.journey_ids: list[int] = list(query.journey_ids)
        self.target_date: str = query.start.isoformat()
        self.stats_type: str = query.stats_type.value
        self.engagelab_conn_id = engagelab_conn_id
        self.require = parse_require(require)
        if isinstance(poke_interval, bool) or not isinstance(poke_interval, (int, float)) or (
            poke_interval < 0
        ):
            raise EngageLabValidationError(
                f"Invalid poke_interval={poke_interval!r}: must be a number of seconds >= 0"
            )
        self.poke_interval = float(poke_interval)
        deadline = _parse_deadline(timeout_at)
        self.timeout_at: str | None = deadline.isoformat() if deadline else None
        self.check: str | None = check_reference(check, importable=True)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Class path and JSON-safe keyword arguments that re-create this trigger."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "journey_ids": list(self.journey_ids),
                "target_date": self.target_date,
                "stats_type": self.stats_type,
                "engagelab_conn_id": self.engagelab_conn_id,
                "require": self.require,
                "poke_interval": self.poke_interval,
                "timeout_at": self.timeout_at,
                "check": self.check,
            },
        )

    def _hook(self) -> Any:
        from airflow_provider_engagelab.hooks._async import EngageLabAsyncHook

        return EngageLabAsyncHook(engagelab_conn_id=self.engagelab_conn_id)

    def _event(self, status: str, last: Readiness | None, **fields: Any) -> TriggerEvent:
        payload: dict[str, Any] = {"status": status, "target_date": self.target_date}
        payload["summary"] = last.as_dict() if last is not None else None
        payload.update(fields)
        return TriggerEvent(payload)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until ready, a hard error or the deadline; yield one event."""
        deadline = _parse_deadline(self.timeout_at)
        target = build_query(self.stats_type, self.journey_ids, "HOUR", self.target_date, self.target_date)
        last: Readiness | None = None
        last_error: str | None = None
        polls = 0
        try:
            hook = self._hook()
            check = await asyncio.to_thread(load_check, self.check) if self.check else None
        except Exception as exc:  # noqa: BLE001 - reported to the task as an error event
            yield self._event("error", None, error=error_to_payload(exc))
            return
        while True:
            bound = None
            if deadline is not None:
                # The look at (or after) the deadline still gets a short grace to answer.
                remaining = (deadline - datetime.now(timezone.utc)).total_seconds()
                bound = max(remaining, 0.0) + LAST_LOOK_GRACE
            polls += 1
            try:
                result = await asyncio.wait_for(
                    hook.get_stats(self.stats_type, self.journey_ids, "HOUR", self.target_date,
                                   self.target_date),
                    timeout=bound,
                )
                last = evaluate(
                    target.start, target.journey_ids, result.rows, result.errors,
                    require=self.require, check=check, check_name=self.check, stats_type=self.stats_type,
                )
            except asyncio.TimeoutError:  # the builtin TimeoutError on Python >= 3.11
                last_error = f"no answer within the {bound:g}s left before the deadline"
            except EngageLabError as exc:
                if not exc.retryable:
                    yield self._event("error", last, polls=polls, error=error_to_payload(exc))
                    return
                last_error = str(exc)
                self.log.warning("EngageLab statistics not readable yet (will look again): %s", exc)
            except Exception as exc:  # noqa: BLE001 - e.g. a custom check that raised
                yield self._event("error", last, polls=polls, error=error_to_payload(exc))
                return
            else:
                if last.ready:
                    self.log.info("%s", last.describe())
                    yield self._event("success", last, polls=polls)
                    return
                self.log.info("%s; next look in %gs", last.describe(), self.poke_interval)
            pause = self.poke_interval
            if deadline is not None:
                remaining = (deadline - datetime.now(timezone.utc)).total_seconds()
                if remaining <= 0:
                    yield self._event(
                        "timeout", last, polls=polls, last_error=last_error,
                        message=(
                            f"EngageLab {self.stats_type} statistics of {self.target_date} were not "
                            f"ready by the sensor's deadline {self.timeout_at} after {polls} look(s)"
                            + (f"; {last.describe()}" if last else "")
                            + (f"; last transient error: {last_error}" if last_error else "")
                        ),
                    )
                    return
                pause = min(pause, remaining)
            await asyncio.sleep(pause)
