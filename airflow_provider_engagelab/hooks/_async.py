"""The asynchronous EngageLab hook (aiohttp), for triggers.

Loaded only where it runs (the triggerer, or a task that asks for it); it imports neither
requests nor providers-http's ``HttpHook``. Everything that is not HTTP (validation, planning,
parsing, retry and pacing policy, connection checks, the transport settings) comes from
:mod:`~airflow_provider_engagelab.hooks._base` and the pure core, exactly as for the sync
:class:`~airflow_provider_engagelab.hooks.engagelab.EngageLabHook`; only the transport differs.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import tenacity
from airflow.providers.common.compat.connection import get_async_connection, get_async_extra_dejson
from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_engagelab.core.connection import ResolvedConnection
from airflow_provider_engagelab.core.parsing import ParsedResponse
from airflow_provider_engagelab.core.planning import PlannedCall
from airflow_provider_engagelab.core.query import StatsQuery
from airflow_provider_engagelab.core.stream import StatsResult, StatsStream
from airflow_provider_engagelab.core.transport import split_proxy_credentials, ssl_context
from airflow_provider_engagelab.hooks._base import (
    EngageLabHookBase,
    attempts,
    explain_refused_connection,
    transport_error,
)

__all__ = ["EngageLabAsyncHook"]


class EngageLabAsyncHook(EngageLabHookBase[Awaitable[StatsResult]], BaseHook):
    """Read journey statistics from EngageLab over aiohttp, with the sync hook's rules.

    Same Connection (type ``engagelab``), same validation, planning (batches of <= 100 IDs x
    windows of <= 31 days), parsing, error mapping, retries (``tenacity.AsyncRetrying``
    with the core's policy), pacing, transport settings (proxies, TLS, ``trust_env``) and
    secret masking as :class:`~airflow_provider_engagelab.hooks.engagelab.EngageLabHook`.
    Calls run concurrently, at most ``max_concurrent_requests`` (connection extra) at once;
    results come back in plan order.

    :param engagelab_conn_id: the Airflow Connection to use.
    """

    conn_name_attr = EngageLabHookBase.conn_name_attr
    default_conn_name = EngageLabHookBase.default_conn_name
    conn_type = EngageLabHookBase.conn_type
    hook_name = EngageLabHookBase.hook_name

    def __init__(self, engagelab_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._init_base(engagelab_conn_id, asyncio.sleep)
        self.sleep: Callable[[float], Awaitable[Any]]
        self._ssl: ssl.SSLContext | None = None

    # ------------------------------------------------------------------ connection
    async def aget_engagelab_connection(self) -> Any:
        """The Airflow Connection, fetched without blocking the event loop (common.compat's way)."""
        return await get_async_connection(self.engagelab_conn_id, hook=self)

    async def aresolved(self) -> ResolvedConnection:
        """The validated Connection (fetched once per hook); secrets registered for masking."""
        if self._resolved is None:
            with explain_refused_connection(self.engagelab_conn_id):
                conn = await self.aget_engagelab_connection()
            self._adopt_connection(conn, await get_async_extra_dejson(conn))
        assert self._resolved is not None
        return self._resolved

    def get_conn(self) -> Any:
        """Not used: each fetch opens its own ``aiohttp.ClientSession``."""
        raise NotImplementedError("EngageLabAsyncHook opens an aiohttp session per fetch")

    # ------------------------------------------------------------------ transport
    def _session(self, resolved: ResolvedConnection, width: int) -> aiohttp.ClientSession:
        timeout = resolved.settings.timeout
        transport = resolved.transport
        if self._ssl is None and (resolved.base_url.startswith("https:") or transport.proxies):
            self._ssl = ssl_context(transport)  # the CAs requests would trust, built once per hook
        session = aiohttp.ClientSession(
            # Same meaning as the sync hook's timeout: for the connection and for each read.
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout),
            connector=aiohttp.TCPConnector(limit=width, ssl=self._ssl or True),
            trust_env=transport.trust_env,
            raise_for_status=False,
        )
        # aiohttp silently re-sends a GET once when the server drops the connection; the retry
        # policy (and the request count) must be ours alone. Private attribute, hence guarded.
        if hasattr(session, "_retry_connection"):
            session._retry_connection = False
        return session

    def _request_options(self, resolved: ResolvedConnection) -> dict[str, Any]:
        """``headers``, ``proxy`` and ``proxy_headers`` of each request.

        The Authorization header goes with each request, not into the session's default
        headers: aiohttp copies those into the proxy's headers too, so behind a proxy the API
        token would be sent to the proxy as ``Proxy-Authorization`` (also on the ``CONNECT``
        of an https call, which TLS would otherwise keep from the proxy). The header is the
        core's token (registered with the masker), not aiohttp.BasicAuth (deprecated). The
        proxy is the one requests would pick, its credentials sent as requests sends them (on
        the ``CONNECT`` of an https call, with each plain-http call); without one, aiohttp
        reads the environment when ``trust_env`` is on.
        """
        headers = {"Authorization": f"Basic {resolved.basic_token}"}
        options: dict[str, Any] = {"headers": headers}
        proxy = resolved.transport.proxy_for(resolved.base_url)
        if proxy is not None:
            url, authorization = split_proxy_credentials(proxy)
            options["proxy"] = url
            if authorization and resolved.base_url.startswith("https:"):
                options["proxy_headers"] = {"Proxy-Authorization": authorization}  # on the CONNECT
            elif authorization:  # a plain-http request goes to the proxy itself
                headers["Proxy-Authorization"] = authorization
        return options

    async def _request_once(self, session: aiohttp.ClientSession, call: PlannedCall) -> ParsedResponse:
        resolved = await self.aresolved()
        delay = self._pace()
        if delay > 0:
            await self.sleep(delay)
        timeout = resolved.settings.timeout
        try:
            async with session.get(
                resolved.base_url + call.endpoint,
                params=call.params(),
                allow_redirects=False,
                **self._request_options(resolved),
            ) as response:
                body = await response.read()
                status = response.status
                retry_after = response.headers.get("Retry-After")
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            timed_out = isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError))
            refused = isinstance(exc, aiohttp.InvalidURL)
            raise transport_error(exc, call, timeout, timed_out=timed_out, refused=refused) from None
        return self._answer(call, status, body, retry_after)

    async def fetch_call(
        self, session: aiohttp.ClientSession, call: PlannedCall
    ) -> tuple[ParsedResponse, int]:
        """Run one planned call with retries; return its parsed answer and the attempts made."""
        await self.aresolved()
        retrying = tenacity.AsyncRetrying(**self._retry_kwargs(call))
        with self._retry_budget(retrying):
            parsed: ParsedResponse = await retrying(self._request_once, session, call)
        return parsed, attempts(retrying)

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
    async def _fetch(self, query: StatsQuery, calls: list[PlannedCall]) -> StatsResult:
        """What ``await hook.get_stats(...)`` runs (see :meth:`EngageLabHookBase.get_stats`)."""
        await self.aresolved()  # validate the Connection before the first request
        self._announce(query, calls, logging.DEBUG, " (async)")
        results = await self.run_calls(calls)
        # The same accounting of rows, errors and requests as the sync hook's stream.
        return StatsStream(query, len(calls), iter(results)).collect()
