"""The readiness rule of the sensor: is a day's statistics complete? (pure, no Airflow).

The API does not document how an incomplete day looks, so the default rule asks for the
HOUR buckets of ``target_date`` and calls a journey *ready* when the day's last hour,
``yyyy-MM-dd 23``, is among its rows. ``require="all"`` (default) waits for every journey,
``require="any"`` for at least one. A custom ``check(rows, errors) -> bool`` replaces that
rule; errors that waiting cannot fix (per-journey 50202/50221 and any other non-retryable
per-journey code) fail at once, before either rule is applied.

The sync sensor (poke/reschedule) and the deferrable trigger both call :func:`evaluate`, and
the trigger's events carry errors through :func:`error_to_payload` /
:func:`error_from_payload`, so both modes decide and fail the same way.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, cast

from airflow_provider_engagelab import exceptions as _exceptions
from airflow_provider_engagelab.core.parsing import CODE_MEANINGS, JourneyError, error_for
from airflow_provider_engagelab.core.query import parse_choice
from airflow_provider_engagelab.exceptions import (
    EngageLabError,
    EngageLabJourneyErrors,
    EngageLabValidationError,
)

#: The values of ``require``.
REQUIRE_CHOICES = ("all", "any")

#: The hour whose bucket marks a complete day.
LAST_HOUR = 23

#: A custom readiness rule: ``check(rows, errors) -> bool``.
Check = Callable[[list[dict[str, Any]], list[JourneyError]], Any]

# Airflow loads DAG files under mangled module names that other processes (the triggerer)
# cannot import.
_UNIMPORTABLE_MODULE_PREFIXES = ("unusual_prefix_", "__main__", "__mp_main__")


def parse_require(value: Any) -> str:
    """Accept ``"all"`` or ``"any"`` (any case)."""
    return parse_choice(value, REQUIRE_CHOICES, "require")


def last_bucket(target_date: date) -> str:
    """The HOUR bucket whose presence marks ``target_date`` complete: ``yyyy-MM-dd 23``."""
    return f"{target_date.isoformat()} {LAST_HOUR:02d}"


# ---------------------------------------------------------------------------- custom checks
def check_reference(check: Any, *, importable: bool) -> str | None:
    """Validate ``check`` and return its import reference ``"module:qualname"``.

    :param check: ``None``, a callable, or a reference string ``"pkg.module:function"`` (or
        ``"pkg.module.function"``).
    :param importable: require that another process can import it (deferrable mode: the
        triggerer re-creates the check from this reference). Lambdas, nested functions,
        bound methods and functions defined in a DAG file are refused then, with a message
        saying where to put the function instead.
    :return: the reference, or ``None`` when the callable has none and ``importable`` is
        false (it is then used in-process only).
    """
    if check is None:
        return None
    if isinstance(check, str):
        ref = check.strip()
        module, _, name = ref.partition(":") if ":" in ref else ref.rpartition(".")
        dotted = f"{module}.{name}".split(".")
        if not module or not name or not all(part.isidentifier() for part in dotted):
            raise EngageLabValidationError(
                f"Invalid check={check!r}: a reference must look like 'package.module:function'"
            )
        return f"{module}:{name}"
    if not callable(check):
        raise EngageLabValidationError(
            f"Invalid check={check!r}: must be a callable check(rows, errors) -> bool or a "
            "'package.module:function' reference"
        )
    module = getattr(check, "__module__", None) or ""
    qualname = getattr(check, "__qualname__", None) or ""
    reason = None
    if not module or not qualname:
        reason = "it has no module-level name"
    elif "<" in qualname or "." in qualname:
        reason = f"{qualname!r} is a lambda, a nested function or a method"
    elif module.startswith(_UNIMPORTABLE_MODULE_PREFIXES):
        reason = "it is defined in a DAG file (or __main__), which the triggerer cannot import"
    if reason is None:
        return f"{module}:{qualname}"
    if importable:
        raise EngageLabValidationError(
            f"Invalid check={check!r}: deferrable mode needs a check the triggerer can import, but "
            f"{reason}; define it as a top-level function in a module on the PYTHONPATH of "
            "workers and triggerer (an installed package or the plugins folder) and pass the "
            "function or its 'package.module:function' reference"
        )
    return None


def load_check(reference: str) -> Check:
    """Import the check named by :func:`check_reference`'s ``"module:qualname"``."""
    module_name, _, name = reference.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in name.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise EngageLabValidationError(
            f"Invalid check={reference!r}: cannot import it ({type(exc).__name__}: {exc})"
        ) from None
    if not callable(target):
        raise EngageLabValidationError(
            f"Invalid check={reference!r}: {type(target).__name__} is not callable"
        )
    return cast("Callable[[list[dict[str, Any]], list[JourneyError]], Any]", target)


# ---------------------------------------------------------------------------- the rule
@dataclass(frozen=True)
class Readiness:
    """What one look at the statistics saw, and the verdict.

    :param ready: the verdict (the default rule, or the custom check's answer).
    :param ready_journeys: journeys whose rows include the day's last hour bucket.
    :param pending_journeys: requested journeys that do not (yet).
    :param last_buckets: per journey, the latest HOUR bucket seen for the day (or ``None``).
    :param waiting_errors: per-journey errors a later look may clear (rate limit, server).
    """

    target_date: date
    require: str
    ready: bool
    ready_journeys: tuple[int, ...]
    pending_journeys: tuple[int, ...]
    last_buckets: Mapping[int, str | None]
    rows_seen: int
    waiting_errors: tuple[JourneyError, ...] = ()
    check: str | None = None
    stats_type: str = "journey"

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe summary for XCom, logs and trigger events."""
        return {
            "ready": self.ready,
            "target_date": self.target_date.isoformat(),
            "stats_type": self.stats_type,
            "require": self.require,
            "check": self.check or "default: last HOUR bucket " + last_bucket(self.target_date),
            "ready_journeys": list(self.ready_journeys),
            "pending_journeys": list(self.pending_journeys),
            "last_bucket": {str(jid): bucket for jid, bucket in self.last_buckets.items()},
            "rows_seen": self.rows_seen,
            "journey_errors": [err.as_dict() for err in self.waiting_errors],
        }

    def describe(self) -> str:
        """One line for the log."""
        verdict = "ready" if self.ready else "not yet"
        pending = ", ".join(
            f"{jid} (last bucket {self.last_buckets.get(jid) or 'none'})"
            for jid in self.pending_journeys[:10]
        )
        more = f" and {len(self.pending_journeys) - 10} more" if len(self.pending_journeys) > 10 else ""
        text = (
            f"{self.stats_type} statistics of {self.target_date.isoformat()}: {verdict} "
            f"({len(self.ready_journeys)}/{len(self.ready_journeys) + len(self.pending_journeys)} journeys "
            f"have {last_bucket(self.target_date)!r}, require={self.require}"
        )
        if self.check:
            text += f", check={self.check}"
        text += ")"
        if pending and not self.ready:
            text += f"; waiting for {pending}{more}"
        return text


def hard_failure(errors: Iterable[JourneyError]) -> EngageLabError | None:
    """The error to fail with at once, if a per-journey error is one waiting cannot fix.

    Retryable codes (55110 rate limit, -1 server error) are left for a later look; every
    other code (50202 unknown journey, 50221 malformed ID, unknown codes) is final.
    """
    final = [e for e in errors if not error_for(e.error_code, "", None).retryable]
    if not final:
        return None
    codes = sorted({e.error_code for e in final})
    listed = ", ".join(
        f"{'(malformed ID)' if e.journey_id == -1 else e.journey_id}: code {e.error_code} "
        f"({CODE_MEANINGS.get(e.error_code, 'unknown error code')})"
        for e in final[:10]
    )
    more = f" and {len(final) - 10} more" if len(final) > 10 else ""
    text = f"journey error(s) that waiting cannot fix: {listed}{more}; check journey_ids"
    if len(codes) == 1:
        cls = type(error_for(codes[0], "", None))
        return cls(text, code=codes[0])
    return EngageLabJourneyErrors(text, errors=[e.as_dict() for e in final])


def evaluate(
    target_date: date,
    journey_ids: Sequence[int],
    rows: Sequence[Mapping[str, Any]],
    errors: Sequence[JourneyError],
    *,
    require: str = "all",
    check: Check | None = None,
    check_name: str | None = None,
    stats_type: str = "journey",
) -> Readiness:
    """Apply the readiness rule to the HOUR rows and journey errors of ``target_date``.

    :param journey_ids: the requested journeys (validated, in order).
    :param rows: the flat HOUR rows of that day, as the hooks return them.
    :param errors: the per-journey errors of the same fetch.
    :param require: ``"all"`` journeys must have the last hour bucket, or ``"any"``.
    :param check: optional ``check(rows, errors) -> bool`` that decides instead of
        ``require``; it sees the same rows and errors.
    :param check_name: how to name the check in the summary (default: its qualname).
    :raises EngageLabError: a per-journey error that waiting cannot fix
        (see :func:`hard_failure`).
    """
    require = parse_require(require)
    failure = hard_failure(errors)
    if failure is not None:
        raise failure
    day = target_date.isoformat()
    wanted = last_bucket(target_date)
    latest: dict[int, str | None] = {jid: None for jid in journey_ids}
    complete: set[int] = set()
    for row in rows:
        jid = row.get("journey_id")
        bucket = row.get("time")
        if jid not in latest or not isinstance(bucket, str) or not bucket.startswith(day):
            continue
        if latest[jid] is None or bucket > latest[jid]:  # type: ignore[operator]
            latest[jid] = bucket
        if bucket == wanted:
            complete.add(jid)
    ready_ids = tuple(j for j in journey_ids if j in complete)
    pending_ids = tuple(j for j in journey_ids if j not in complete)
    if check is not None:
        verdict = bool(check(list(rows), list(errors)))  # type: ignore[arg-type]
        name = check_name or f"{getattr(check, '__module__', '?')}:{getattr(check, '__qualname__', '?')}"
    else:
        verdict = not pending_ids if require == "all" else bool(ready_ids)
        name = None
    return Readiness(
        target_date=target_date,
        require=require,
        ready=verdict,
        ready_journeys=ready_ids,
        pending_journeys=pending_ids,
        last_buckets=latest,
        rows_seen=len(rows),
        waiting_errors=tuple(errors),
        check=name,
        stats_type=stats_type,
    )


# ---------------------------------------------------------------------------- errors <-> events
def error_to_payload(exc: BaseException) -> dict[str, Any]:
    """A JSON-safe description of an error, for a trigger event (no credentials in it)."""
    if isinstance(exc, EngageLabError):
        payload: dict[str, Any] = {
            "error_class": type(exc).__name__,
            "message": exc.message,
            "code": exc.code,
            "http_status": exc.status,
        }
        if isinstance(exc, EngageLabJourneyErrors):
            payload["journey_errors"] = list(exc.errors)
        return payload
    return {"error_class": type(exc).__name__, "message": str(exc), "code": None, "http_status": None}


def error_from_payload(payload: Mapping[str, Any]) -> EngageLabError:
    """Re-create the :class:`EngageLabError` subclass described by :func:`error_to_payload`."""
    name = str(payload.get("error_class") or "EngageLabError")
    message = str(payload.get("message") or "the trigger reported an error")
    cls = getattr(_exceptions, name, None)
    if not (isinstance(cls, type) and issubclass(cls, EngageLabError)):
        # Not one of ours (e.g. a bug in a custom check): keep its type name in the text.
        return EngageLabError(f"{name}: {message}")
    if cls is EngageLabJourneyErrors:
        return EngageLabJourneyErrors(message, errors=list(payload.get("journey_errors") or []))
    return cls(message, code=payload.get("code"), status=payload.get("http_status"))
