"""Hooks for the EngageLab Marketing Automation journey statistics API."""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import requests
import tenacity
from airflow.providers.http.hooks.http import HttpHook
from requests.adapters import HTTPAdapter

from airflow_provider_engagelab._provider_info import hook_form_widgets, hook_ui_field_behaviour
from airflow_provider_engagelab.core.connection import ResolvedConnection, resolve_connection
from airflow_provider_engagelab.core.defaults import DEFAULT_CONN_ID, DEFAULT_HOST
from airflow_provider_engagelab.core.parsing import ParsedResponse, parse_response
from airflow_provider_engagelab.core.planning import PlannedCall, plan_calls
from airflow_provider_engagelab.core.query import StatsQuery, build_query
from airflow_provider_engagelab.core.retry import (
    Pacer,
    budget_exhausted,
    parse_retry_after,
    retry_kwargs,
)
from airflow_provider_engagelab.core.settings import TUNING_KEYS
from airflow_provider_engagelab.core.stream import StatsResult, StatsStream
from airflow_provider_engagelab.exceptions import (
    EngageLabAuthError,
    EngageLabError,
    EngageLabJourneyNotFoundError,
    EngageLabTransportError,
)

if TYPE_CHECKING:
    from airflow_provider_engagelab.hooks._async import EngageLabAsyncHook as EngageLabAsyncHook

__all__ = ["EngageLabHook", "EngageLabAsyncHook"]


def mask_credentials(*secrets: str) -> None:
    """Register values with Airflow's secrets masker (task and supervisor logs)."""
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # Airflow 3.0
        from airflow.sdk.execution_time.secrets_masker import mask_secret  # type: ignore[no-redef]
    for secret in secrets:
        if secret:
            mask_secret(secret)


_ERRNO_RE = re.compile(r"\[Errno -?\d+\] [^'\")]+")


_CONFIG_ERRORS = (
    requests.exceptions.InvalidURL,
    requests.exceptions.InvalidHeader,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
)


def _transport_error(exc: requests.RequestException, call: PlannedCall, timeout: float) -> EngageLabError:
    if isinstance(exc, _CONFIG_ERRORS):
        # A URL or header requests refuses: a retry meets the same refusal.
        return EngageLabTransportError(
            f"request for {call.describe()} refused by the HTTP client: {type(exc).__name__}; "
            "check the connection's host and extras",
            retryable=False,
        )
    if isinstance(exc, requests.Timeout):
        text = f"timed out after {timeout:g}s calling {call.describe()}"
    else:
        found = _ERRNO_RE.search(str(exc))
        reason = found.group(0) if found else str(exc).split("\n")[0][:200]
        text = f"connection failed calling {call.describe()}: {type(exc).__name__}: {reason}"
    return EngageLabTransportError(text)


class _EngageLabHookBase:
    """What the sync and the async hook share: planning, connection adoption, retry logs."""

    log: Any
    _resolved: ResolvedConnection | None
    _pacer: Pacer | None

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

    def _adopt_connection(self, conn: Any) -> ResolvedConnection:
        """Validate an Airflow Connection, register its secrets for masking, set up pacing."""
        resolved = resolve_connection(
            host=conn.host,
            schema=conn.schema,
            port=conn.port,
            login=conn.login,
            password=conn.password,
            extra=conn.extra_dejson,
        )
        mask_credentials(resolved.api_secret, resolved.basic_token)
        self._pacer = Pacer(resolved.settings.requests_per_second)
        self._resolved = resolved
        return resolved

    def _log_retry(self, call: PlannedCall) -> Callable[[tenacity.RetryCallState], None]:
        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            wait = state.next_action.sleep if state.next_action else 0
            self.log.warning(
                "EngageLab call %s failed (attempt %d): %s; retrying in %.1fs",
                call.describe(), state.attempt_number, exc, wait,
            )

        return before_sleep


class EngageLabHook(_EngageLabHookBase, HttpHook):
    """Read journey statistics from EngageLab with retries, pacing and concurrency.

    The Connection (type ``engagelab``) holds the API base URL in Host (default
    ``https://ma-api.engagelab.com``), the API Key in Login and the API Secret in Password.
    Optional Extra keys: ``timeout``, ``max_retries``, ``max_retry_wait``,
    ``max_concurrent_requests``, ``requests_per_second`` (see the README).

    :param engagelab_conn_id: the Airflow Connection to use.
    """

    conn_name_attr = "engagelab_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = "engagelab"
    hook_name = "EngageLab"
    default_host = DEFAULT_HOST

    def __init__(self, engagelab_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(method="GET", http_conn_id=engagelab_conn_id, **kwargs)
        self.engagelab_conn_id = engagelab_conn_id
        self._resolved: ResolvedConnection | None = None
        self._local = threading.local()
        self._pacer: Pacer | None = None
        self._pool_adapter: HTTPAdapter | None = None
        #: how the hook waits (pacing, backoff); tests replace it to record the waits
        self.sleep: Callable[[float], None] = time.sleep

    # ------------------------------------------------------------------ connection
    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Form layout for Airflow versions that ask the hook (before 3.2)."""
        return hook_ui_field_behaviour()

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The tuning extras as form fields, for Airflow versions that ask the hook (before 3.2)."""
        return hook_form_widgets()

    @property
    def resolved(self) -> ResolvedConnection:
        """The validated Connection (fetched once per hook)."""
        if self._resolved is None:
            self._adopt_connection(self.get_connection(self.engagelab_conn_id))
        assert self._resolved is not None
        return self._resolved

    def get_conn(
        self, headers: dict[Any, Any] | None = None, extra_options: dict[str, Any] | None = None
    ) -> requests.Session:
        """A requests session with Basic auth; our tuning extras are never sent as headers."""
        resolved = self.resolved
        session = super().get_conn(headers, extra_options)
        for key in TUNING_KEYS:
            session.headers.pop(key, None)
        # The core's UTF-8 token (the value registered with the masker), not requests'
        # latin-1 HTTPBasicAuth: both hooks send the same header for any secret.
        session.auth = None
        session.headers["Authorization"] = f"Basic {resolved.basic_token}"
        if self.adapter is None:
            # One pool for all of this hook's threads, as wide as its concurrency (HttpHook's
            # default adapter keeps 10 connections and discards the rest above that).
            if self._pool_adapter is None:
                width = resolved.settings.max_concurrent_requests
                self._pool_adapter = HTTPAdapter(pool_connections=1, pool_maxsize=width)
            session.mount("http://", self._pool_adapter)
            session.mount("https://", self._pool_adapter)
        self.base_url = resolved.base_url
        return session

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self.get_conn()
            self._local.session = session
        return session

    # ------------------------------------------------------------------ transport
    def _request_once(self, call: PlannedCall) -> ParsedResponse:
        resolved = self.resolved
        assert self._pacer is not None
        delay = self._pacer.reserve()
        if delay > 0:
            self.sleep(delay)
        timeout = resolved.settings.timeout
        try:
            response = self._session().get(
                resolved.base_url + call.endpoint,
                params=call.params(),
                timeout=timeout,
                allow_redirects=False,
            )
            body = response.content
        except requests.RequestException as exc:
            raise _transport_error(exc, call, timeout) from None
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return parse_response(call, response.status_code, body, retry_after=retry_after)

    def fetch_call(self, call: PlannedCall) -> tuple[ParsedResponse, int]:
        """Run one planned call with retries; return its parsed answer and the attempts made."""
        settings = self.resolved.settings
        retrying = tenacity.Retrying(
            **retry_kwargs(settings, before_sleep=self._log_retry(call), sleep=self.sleep)
        )
        try:
            parsed = retrying(self._request_once, call)
        except EngageLabError as exc:
            attempts = retrying.statistics.get("attempt_number", 1)
            raise budget_exhausted(exc, attempts, settings) from None
        return parsed, retrying.statistics.get("attempt_number", 1)

    def _run_ordered(self, calls: list[PlannedCall]) -> Iterator[tuple[ParsedResponse, int]]:
        """Run calls concurrently and yield ``(parsed, attempts)`` in plan order.

        With width N = ``max_concurrent_requests`` (at most the number of calls), N calls run
        at once and a new one starts as soon as ANY running call finishes, so one slow call
        (a latency spike, a retry sleeping its backoff, a 429's ``Retry-After``) does not idle
        the other slots. Calls that finish before an earlier one wait, parsed, until their turn:
        at most ``2 x N`` calls are started and not yet yielded (running or waiting), which
        bounds memory to ``2 x N`` parsed calls plus the one the consumer holds; past that, the
        slots wait for the slow call.

        The first failing call in plan order raises when its turn comes, after every earlier
        result was yielded (a later call's failure never overtakes them). On that error, or
        when the consumer stops iterating (the generator is closed), calls not yet started are
        cancelled and the pool is shut down after the running ones end. N = 1 is a plain loop.
        """
        width = min(self.resolved.settings.max_concurrent_requests, max(1, len(calls)))
        if width == 1:
            for call in calls:
                yield self.fetch_call(call)
            return
        limit = 2 * width
        pool = ThreadPoolExecutor(max_workers=width, thread_name_prefix="engagelab")
        # Started and not yet yielded, in plan order: running, or done and waiting its turn.
        started: deque[Future[tuple[ParsedResponse, int]]] = deque()
        todo = iter(calls)
        try:
            while True:
                running = [future for future in started if not future.done()]
                while len(running) < width and len(started) < limit:
                    nxt = next(todo, None)
                    if nxt is None:
                        break
                    future = pool.submit(self.fetch_call, nxt)
                    started.append(future)
                    running.append(future)
                if not started:
                    return
                if started[0].done():
                    yield started.popleft().result()
                else:  # the oldest is still running, so ``running`` is not empty
                    wait(running, return_when=FIRST_COMPLETED)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    # ------------------------------------------------------------------ public API
    def iter_stats(
        self,
        stats_type: str,
        journey_ids: Any,
        time_unit: str = "DAY",
        start_time: Any = None,
        end_time: Any = None,
    ) -> StatsStream:
        """Like :meth:`get_stats`, but streams the rows (plan order) without holding them all.

        Parameters are validated here, before any request. Iterate the returned stream once;
        its ``errors`` list holds the per-journey errors when the iteration ends.
        """
        query, calls = self.plan(stats_type, journey_ids, time_unit, start_time, end_time)
        _ = self.resolved  # validate the Connection before the first request
        self.log.info(
            "EngageLab %s stats: %d journeys, %s..%s %s -> %d call(s)",
            query.stats_type.value, len(query.journey_ids), query.start, query.end,
            query.time_unit.value, len(calls),
        )
        return StatsStream(query, len(calls), self._run_ordered(calls))

    def get_stats(
        self,
        stats_type: str,
        journey_ids: Any,
        time_unit: str = "DAY",
        start_time: Any = None,
        end_time: Any = None,
    ) -> StatsResult:
        """Fetch statistics for any number of journeys over any date range.

        :param stats_type: ``journey``, ``message`` or ``webhook``.
        :param journey_ids: list of ints/digit strings, or a comma-separated string.
        :param time_unit: ``DAY`` or ``HOUR`` (any case).
        :param start_time: first day: ``date``, ``datetime`` or ``yyyy-MM-dd``.
        :param end_time: last day (inclusive), on or after ``start_time``.
        :return: the flat rows (``journey_id``, ``time_unit``, then the API's fields), the
            per-journey errors, and the numbers of planned calls and HTTP requests.
        """
        return self.iter_stats(stats_type, journey_ids, time_unit, start_time, end_time).collect()

    def get_journey_stats(self, journey_ids: Any, time_unit: str = "DAY", start_time: Any = None,
                          end_time: Any = None) -> StatsResult:
        """Journey overall statistics (``/v1/stats/journey``)."""
        return self.get_stats("journey", journey_ids, time_unit, start_time, end_time)

    def get_message_stats(self, journey_ids: Any, time_unit: str = "DAY", start_time: Any = None,
                          end_time: Any = None) -> StatsResult:
        """Per message component statistics (``/v1/stats/journey/message``)."""
        return self.get_stats("message", journey_ids, time_unit, start_time, end_time)

    def get_webhook_stats(self, journey_ids: Any, time_unit: str = "DAY", start_time: Any = None,
                          end_time: Any = None) -> StatsResult:
        """Per webhook component statistics (``/v1/stats/journey/webhook``)."""
        return self.get_stats("webhook", journey_ids, time_unit, start_time, end_time)

    def test_connection(self) -> tuple[bool, str]:
        """Check host and credentials with one small request (the UI's Test button).

        A journey that does not exist still proves the credentials; only transport,
        authentication and project errors fail the test.
        """
        try:
            resolved = self.resolved
            day = date.today() - timedelta(days=1)
            _, calls = self.plan("journey", [1], "DAY", day, day)
            self._request_once(calls[0])
        except EngageLabJourneyNotFoundError:
            pass
        except EngageLabAuthError as exc:
            return False, f"Authentication failed: check the API Key and API Secret ({exc})"
        except EngageLabError as exc:
            return False, str(exc)
        except Exception as exc:  # noqa: BLE001 - the UI shows the message
            return False, f"{type(exc).__name__}: {exc}"
        return True, f"Connected to {resolved.base_url} with API Key {resolved.api_key!r}"


def __getattr__(name: str) -> Any:
    # The async hook needs aiohttp: load it only when a trigger asks for it, not at DAG parse.
    if name == "EngageLabAsyncHook":
        from airflow_provider_engagelab.hooks._async import EngageLabAsyncHook

        return EngageLabAsyncHook
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
