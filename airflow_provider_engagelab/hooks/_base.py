"""What the sync and the async EngageLab hook share; each hook module holds only its transport.

:class:`EngageLabHookBase` plans the calls, adopts the Connection (validation, secret
masking, pacing, transport files), words the retry logs and transport errors, keeps the
retry budget and offers the ``get_*_stats`` shortcuts. The sync hook
(:mod:`~airflow_provider_engagelab.hooks.engagelab`, requests through providers-http's
``HttpHook``) and the async hook (:mod:`~airflow_provider_engagelab.hooks._async`, aiohttp)
add the HTTP calls. The transport extras (proxies, TLS, environment) are parsed once in
:mod:`airflow_provider_engagelab.core.transport` and applied by both with the same meaning.

This module imports neither requests nor aiohttp.
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

import tenacity
from airflow.providers.common.compat.sdk import mask_secret

from airflow_provider_engagelab.core.connection import (
    ResolvedConnection,
    refused_env_extra,
    resolve_connection,
)
from airflow_provider_engagelab.core.defaults import DEFAULT_CONN_ID, DEFAULT_HOST
from airflow_provider_engagelab.core.parsing import ParsedResponse, parse_response
from airflow_provider_engagelab.core.planning import PlannedCall, plan_calls
from airflow_provider_engagelab.core.query import StatsQuery, build_query
from airflow_provider_engagelab.core.retry import Pacer, budget_exhausted, parse_retry_after, retry_kwargs
from airflow_provider_engagelab.exceptions import (
    EngageLabError,
    EngageLabTransportError,
    EngageLabValidationError,
)

try:
    from airflow.sdk.exceptions import AirflowNotFoundException
except ImportError:  # Airflow 3.0, 3.1
    from airflow.exceptions import AirflowNotFoundException  # type: ignore[no-redef,attr-defined]

__all__ = ["EngageLabHookBase", "mask_credentials", "transport_error"]

#: What ``get_stats`` returns: a ``StatsResult``, or an awaitable of one for the async hook.
R = TypeVar("R")


def mask_credentials(*secrets: str) -> None:
    """Register values with Airflow's secrets masker (task, triggerer and supervisor logs)."""
    for secret in secrets:
        if secret:
            mask_secret(secret)


@contextmanager
def explain_refused_connection(conn_id: str) -> Iterator[None]:
    """Turn Airflow 3.0/3.1's "conn_id isn't defined" for a Connection defined in the environment
    with an Extra that is not a JSON object into the hook's own error (what 3.2+ raise)."""
    try:
        yield
    except AirflowNotFoundException:
        message = refused_env_extra(conn_id, os.environ)
        if message is None:
            raise
        raise EngageLabValidationError(message) from None


_ERRNO_RE = re.compile(r"\[Errno -?\d+\] [^'\")]+")


def _certificate_failure(exc: BaseException) -> str | None:
    """The reason of a failed TLS certificate check inside ``exc``, if that is what it is.

    Both HTTP clients wrap the ``ssl.SSLCertVerificationError``: requests in
    ``SSLError(MaxRetryError(reason=SSLError(...)))``, aiohttp in
    ``ClientConnectorCertificateError.certificate_error``.
    """
    seen: set[int] = set()
    todo: list[Any] = [exc]
    found = False
    while todo:
        item = todo.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, ssl.SSLCertVerificationError):  # aiohttp's wrapper is one too
            found = True
            message = getattr(item, "verify_message", None)
            if message:
                return str(message)
        todo.extend(item.args)
        todo.extend(getattr(item, name, None) for name in ("reason", "certificate_error", "os_error"))
        todo.extend((item.__cause__, item.__context__))
    return "certificate verify failed" if found else None


def transport_error(exc: BaseException, call: PlannedCall, timeout: float, *, timed_out: bool = False,
                    refused: bool = False) -> EngageLabError:
    """The provider's error for a request that got no HTTP answer, in the same words for both hooks.

    :param timed_out: the client's timeout fired (retryable).
    :param refused: the HTTP client refused the request itself (a URL or header it cannot
        send): a retry meets the same refusal.
    Otherwise a failed certificate check is not retryable (it names the ``verify`` extra),
    and any other connection failure is.
    """
    if refused:
        return EngageLabTransportError(
            f"request for {call.describe()} refused by the HTTP client: {type(exc).__name__}; "
            "check the connection's host and extras",
            retryable=False,
        )
    if timed_out:
        return EngageLabTransportError(f"timed out after {timeout:g}s calling {call.describe()}")
    failure = _certificate_failure(exc)
    if failure is not None:
        return EngageLabTransportError(
            f"TLS certificate check failed calling {call.describe()}: {failure}; to trust a private "
            "CA, set the connection extra verify to the path of its CA bundle",
            retryable=False,
        )
    found = _ERRNO_RE.search(str(exc))
    reason = found.group(0) if found else str(exc).split("\n")[0][:200]
    return EngageLabTransportError(
        f"connection failed calling {call.describe()}: {type(exc).__name__}: {reason}"
    )


class EngageLabHookBase(Generic[R]):
    """The part of :class:`EngageLabHook` and :class:`EngageLabAsyncHook` that is not HTTP.

    Subclasses provide ``get_stats`` (sync, or a coroutine) and the transport.
    """

    conn_name_attr = "engagelab_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = "engagelab"
    hook_name = "EngageLab"
    default_host = DEFAULT_HOST

    log: Any
    engagelab_conn_id: str
    #: How the hook waits (pacing, retry backoff); tests replace it to record the waits.
    sleep: Callable[[float], Any]
    _resolved: ResolvedConnection | None = None
    _pacer: Pacer | None = None

    def _init_base(self, engagelab_conn_id: str, sleep: Callable[[float], Any]) -> None:
        self.engagelab_conn_id = engagelab_conn_id
        self._resolved = None
        self._pacer = None
        self.sleep = sleep

    # ------------------------------------------------------------------ planning
    @staticmethod
    def plan(
        stats_type: str,
        journey_ids: Any,
        time_unit: str = "DAY",
        start_time: Any = None,
        end_time: Any = None,
    ) -> tuple[StatsQuery, list[PlannedCall]]:
        """Validate the parameters and plan the calls (no HTTP)."""
        query = build_query(stats_type, journey_ids, time_unit, start_time, end_time)
        return query, plan_calls(query)

    def _announce(self, query: StatsQuery, calls: list[PlannedCall], level: int, how: str = "") -> None:
        self.log.log(
            level, "EngageLab %s stats%s: %d journeys, %s..%s %s -> %d call(s)",
            query.stats_type.value, how, len(query.journey_ids), query.start, query.end,
            query.time_unit.value, len(calls),
        )

    # ------------------------------------------------------------------ connection
    def _adopt_connection(self, conn: Any, extra: Mapping[str, Any] | None = None) -> ResolvedConnection:
        """Validate an Airflow Connection, register its secrets for masking, set up pacing.

        :param extra: the Connection's extra, when the caller read it already (the async
            hook reads it off the event loop); else ``conn.extra_dejson``.
        """
        resolved = resolve_connection(
            host=conn.host,
            schema=conn.schema,
            port=conn.port,
            login=conn.login,
            password=conn.password,
            extra=conn.extra_dejson if extra is None else extra,
        )
        mask_credentials(resolved.api_secret, resolved.basic_token, *resolved.transport.secrets())
        resolved.transport.check_files()
        self._pacer = Pacer(resolved.settings.requests_per_second)
        self._resolved = resolved
        return resolved

    # ------------------------------------------------------------------ one call
    def _pace(self) -> float:
        """Claim the next send slot of the connection's pace; the seconds to wait for it."""
        assert self._pacer is not None
        return self._pacer.reserve()

    @staticmethod
    def _answer(call: PlannedCall, status: int, body: bytes | memoryview,
                retry_after: str | None) -> ParsedResponse:
        """Parse one HTTP answer (any status) with the pure core (``body``: bytes, or a view of its file)."""
        return parse_response(call, status, body, retry_after=parse_retry_after(retry_after))

    def _log_retry(self, call: PlannedCall) -> Callable[[tenacity.RetryCallState], None]:
        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            wait = state.next_action.sleep if state.next_action else 0
            self.log.warning(
                "EngageLab call %s failed (attempt %d): %s; retrying in %.1fs",
                call.describe(), state.attempt_number, exc, wait,
            )

        return before_sleep

    def _retry_kwargs(self, call: PlannedCall) -> dict[str, Any]:
        """Arguments of ``tenacity.Retrying``/``AsyncRetrying`` for one call: the core's policy."""
        assert self._resolved is not None
        return retry_kwargs(self._resolved.settings, before_sleep=self._log_retry(call), sleep=self.sleep)

    @contextmanager
    def _retry_budget(self, retrying: tenacity.BaseRetrying) -> Iterator[None]:
        """Reword the last retryable error to say that the retry budget ran out."""
        assert self._resolved is not None
        try:
            yield
        except EngageLabError as exc:
            raise budget_exhausted(exc, attempts(retrying), self._resolved.settings) from None

    # ------------------------------------------------------------------ public API
    def get_stats(
        self,
        stats_type: str,
        journey_ids: Any,
        time_unit: str = "DAY",
        start_time: Any = None,
        end_time: Any = None,
    ) -> R:
        """Fetch statistics for any number of journeys over any date range.

        The sync hook returns the result; the async hook returns an awaitable of it
        (``await hook.get_stats(...)``). Parameters are validated here, before any request.

        :param stats_type: ``journey``, ``message`` or ``webhook``.
        :param journey_ids: list of ints/digit strings, or a comma-separated string.
        :param time_unit: ``DAY`` or ``HOUR`` (any case).
        :param start_time: first day: ``date``, ``datetime`` or ``yyyy-MM-dd``.
        :param end_time: last day (inclusive), on or after ``start_time``.
        :return: a :class:`~airflow_provider_engagelab.core.stream.StatsResult`: the flat rows
            (``journey_id``, ``time_unit``, then the API's fields) in plan order, the
            per-journey errors, and the numbers of planned calls and HTTP requests.
        """
        return self._fetch(*self.plan(stats_type, journey_ids, time_unit, start_time, end_time))

    def _fetch(self, query: StatsQuery, calls: list[PlannedCall]) -> R:
        """Run the planned calls of ``query`` (the transport's part of :meth:`get_stats`)."""
        raise NotImplementedError

    def get_journey_stats(self, journey_ids: Any, time_unit: str = "DAY", start_time: Any = None,
                          end_time: Any = None) -> R:
        """Journey overall statistics (``/v1/stats/journey``); as :meth:`get_stats`."""
        return self.get_stats("journey", journey_ids, time_unit, start_time, end_time)

    def get_message_stats(self, journey_ids: Any, time_unit: str = "DAY", start_time: Any = None,
                          end_time: Any = None) -> R:
        """Per message component statistics (``/v1/stats/journey/message``); as :meth:`get_stats`."""
        return self.get_stats("message", journey_ids, time_unit, start_time, end_time)

    def get_webhook_stats(self, journey_ids: Any, time_unit: str = "DAY", start_time: Any = None,
                          end_time: Any = None) -> R:
        """Per webhook component statistics (``/v1/stats/journey/webhook``); as :meth:`get_stats`."""
        return self.get_stats("webhook", journey_ids, time_unit, start_time, end_time)


def attempts(retrying: tenacity.BaseRetrying) -> int:
    """Attempts a ``Retrying``/``AsyncRetrying`` made for its last call."""
    return int(retrying.statistics.get("attempt_number", 1))
