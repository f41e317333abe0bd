"""The asynchronous EngageLab hook (aiohttp), for triggers.

Loaded only where it runs (the triggerer, or a task that asks for it): importing
:mod:`airflow_provider_engagelab.hooks.engagelab` does not import aiohttp. Validation,
planning, parsing, retry and pacing policy and connection checks all come from the pure
core, exactly as in the sync :class:`~airflow_provider_engagelab.hooks.engagelab.EngageLabHook`;
only the transport differs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import aiohttp
import tenacity

from airflow_provider_engagelab.core.connection import ResolvedConnection
from airflow_provider_engagelab.core.parsing import ParsedResponse, parse_response
from airflow_provider_engagelab.core.planning import PlannedCall
from airflow_provider_engagelab.core.retry import Pacer, budget_exhausted, parse_retry_after, retry_kwargs
from airflow_provider_engagelab.core.stream import StatsResult, StatsStream
from airflow_provider_engagelab.exceptions import EngageLabError, EngageLabTransportError
from airflow_provider_engagelab.hooks.engagelab import EngageLabHook, _EngageLabHookBase

try:  # Airflow >= 3.1 exports BaseHook from the task SDK
    from airflow.sdk import BaseHook
except ImportError:  # Airflow 3.0
    from airflow.hooks.base import BaseHook  # type: ignore[no-redef,attr-defined]

if TYPE_CHECKING:
    pass

__all__ = ["EngageLabAsyncHook"]


def _transport_error(exc: BaseException, call: PlannedCall, timeout: float) -> EngageLabError:
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        text = f"timed out after {timeout:g}s calling {call.describe()}"
    else:
        reason = str(exc).split("\n")[0][:200]
        text = f"connection failed calling {call.describe()}: {type(exc).__name__}: {reason}"
    return EngageLabTransportError(text)


class EngageLabAsyncHook(_EngageLabHookBase, BaseHook):
    """Read journey statistics from EngageLab over aiohttp, with the sync hook's rules.

    Same Connection (type ``engagelab``), same validation, planning (batches of <= 100 IDs x
    windows of <= 31 days), parsing, error mapping, retries (``tenacity.AsyncRetrying``
    with the core's policy), pacing and secret masking as
    :class:`~airflow_provider_engagelab.hooks.engagelab.EngageLabHook`. Calls run
    concurrently, at most ``max_concurrent_requests`` (connection extra) at once; results
    come back in plan order.

    :param engagelab_conn_id: the Airflow Connection to use.
    """

    conn_name_attr = EngageLabHook.conn_name_attr
    default_conn_name = EngageLabHook.default_conn_name
    conn_type = EngageLabHook.conn_type
    hook_name = EngageLabHook.hook_name

    def __init__(self, engagelab_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.engagelab_conn_id = engagelab_conn_id
        self._resolved: ResolvedConnection | None = None
        self._pacer: Pacer | None = None
        #: How the hook waits (pacing and retry backoff); tests may replace it.
        self.sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep

    # ------------------------------------------------------------------ connection
    async def aget_engagelab_connection(self) -> Any:
        """The Airflow Connection, fetched without blocking the event loop.

        Airflow versions whose ``BaseHook`` has ``aget_connection`` (3.1+) use it; 3.0 runs
        the sync ``get_connection`` in a thread through ``asgiref.sync.sync_to_async``.
        """
        aget = getattr(self, "aget_connection", None)
        if aget is not None:
            return await aget(self.engagelab_conn_id)
        from asgiref.sync import sync_to_async

        return await sync_to_async(self.get_connection)(self.engagelab_conn_id)

    async def aresolved(self) -> ResolvedConnection:
        """The validated Connection (fetched once per hook); secrets registered for masking."""
        if self._resolved is None:
            self._adopt_connection(await self.aget_engagelab_connection())
        assert self._resolved is not None
        return self._resolved

    def get_conn(self) -> Any:
        """Not used: each fetch opens its own ``aiohttp.ClientSession``."""
        raise NotImplementedError("EngageLabAsyncHook opens an aiohttp session per fetch")

    # ------------------------------------------------------------------ transport
    def _session(self, resolved: ResolvedConnection, width: int) -> aiohttp.ClientSession:
        timeout = resolved.settings.timeout
        session = aiohttp.ClientSession(
            # The core's token (registered with the masker), not aiohttp.BasicAuth (deprecated).
            headers={"Authorization": f"Basic {resolved.basic_token}"},
            # Same meaning as the sync hook's timeout: for the connection and for each read.
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout),
            connector=aiohttp.TCPConnector(limit=width),
            raise_for_status=False,
        )
        # aiohttp silently re-sends a GET once when the server drops the connection; the retry
        # policy (and the request count) must be ours alone. Private attribute, hence guarded.
        if hasattr(session, "_retry_connection"):
            session._retry_connection = False
        return session

    async def _request_once(self, session: aiohttp.ClientSession, call: PlannedCall) -> ParsedResponse:
        resolved = await self.aresolved()
        assert self._pacer is not None
        delay = self._pacer.reserve()
        if delay > 0:
            await self.sleep(delay)
        timeout = resolved.settings.timeout
        try:
            async with session.get(
                resolved.base_url + call.endpoint,
                params=call.params(),
                allow_redirects=False,
            ) as response:
                body = await response.read()
                status = response.status
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise _transport_error(exc, call, timeout) from None
        return parse_response(call, status, body, retry_after=retry_after)

    async def fetch_call(
        self, session: aiohttp.ClientSession, call: PlannedCall
    ) -> tuple[ParsedResponse, int]:
        """Run one planned call with retries; return its parsed answer and the attempts made."""
        settings = (await self.aresolved()).settings
        retrying = tenacity.AsyncRetrying(
            **retry_kwargs(settings, before_sleep=self._log_retry(call), sleep=self.sleep)
        )
        try:
            parsed: ParsedResponse = await retrying(self._request_once, session, call)
        except EngageLabError as exc:
            attempts = retrying.statistics.get("attempt_number", 1)
            raise budget_exhausted(exc, attempts, settings) from None
        return parsed, retrying.statistics.get("attempt_number", 1)

    async def run_calls(self, calls: list[PlannedCall]) -> list[tuple[ParsedResponse, int]]:
        """Run planned calls concurrently (at most ``max_concurrent_requests`` in flight).

        Results are in plan order. The first failure cancels the calls still running and
        is raised.
        """
        resolved = await self.aresolved()
        width = min(resolved.settings.max_concurrent_requests, max(1, len(calls)))
        gate = asyncio.Semaphore(width)

        async def limited(session: aiohttp.ClientSession, call: PlannedCall) -> tuple[ParsedResponse, int]:
            async with gate:
                return await self.fetch_call(session, call)

        async with self._session(resolved, width) as session:
            tasks = [asyncio.ensure_future(limited(session, call)) for call in calls]
            try:
                return list(await asyncio.gather(*tasks))
            except BaseException:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise

    # ------------------------------------------------------------------ public API
    async def get_stats(
        self,
        stats_type: str,
        journey_ids: Any,
        time_unit: str = "DAY",
        start_time: Any = None,
        end_time: Any = None,
    ) -> StatsResult:
        """Fetch statistics for any number of journeys over any date range (async).

        Same parameters and result as :meth:`EngageLabHook.get_stats`: parameters are
        validated before any request; the result holds the flat rows in plan order, the
        per-journey errors, the number of planned calls and of HTTP requests.
        """
        query, calls = self.plan(stats_type, journey_ids, time_unit, start_time, end_time)
        await self.aresolved()  # validate the Connection before the first request
        self.log.debug(
            "EngageLab %s stats (async): %d journeys, %s..%s %s -> %d call(s)",
            query.stats_type.value, len(query.journey_ids), query.start, query.end,
            query.time_unit.value, len(calls),
        )
        results = await self.run_calls(calls)
        # The same accounting of rows, errors and requests as the sync hook's stream.
        return StatsStream(query, len(calls), iter(results)).collect()

    async def get_journey_stats(self, journey_ids: Any, time_unit: str = "DAY", start_time: Any = None,
                                end_time: Any = None) -> StatsResult:
        """Journey overall statistics (``/v1/stats/journey``)."""
        return await self.get_stats("journey", journey_ids, time_unit, start_time, end_time)

    async def get_message_stats(self, journey_ids: Any, time_unit: str = "DAY", start_time: Any = None,
                                end_time: Any = None) -> StatsResult:
        """Per message component statistics (``/v1/stats/journey/message``)."""
        return await self.get_stats("message", journey_ids, time_unit, start_time, end_time)

    async def get_webhook_stats(self, journey_ids: Any, time_unit: str = "DAY", start_time: Any = None,
                                end_time: Any = None) -> StatsResult:
        """Per webhook component statistics (``/v1/stats/journey/webhook``)."""
        return await self.get_stats("webhook", journey_ids, time_unit, start_time, end_time)
