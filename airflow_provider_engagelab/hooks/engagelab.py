"""The EngageLab hook over requests (providers-http's ``HttpHook``), and the async hook's name.

Everything that is not HTTP is in :mod:`~airflow_provider_engagelab.hooks._base`, shared with
:class:`EngageLabAsyncHook` (aiohttp, :mod:`~airflow_provider_engagelab.hooks._async`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import nullcontext
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import requests
import tenacity
from airflow.providers.http.hooks.http import HttpHook
from requests.adapters import HTTPAdapter

from airflow_provider_engagelab._provider_info import hook_form_widgets, hook_ui_field_behaviour
from airflow_provider_engagelab.core.answer import Answer, read_answer
from airflow_provider_engagelab.core.connection import ResolvedConnection
from airflow_provider_engagelab.core.planning import PlannedCall
from airflow_provider_engagelab.core.query import StatsQuery
from airflow_provider_engagelab.core.retry import parse_retry_after
from airflow_provider_engagelab.core.settings import TUNING_KEYS
from airflow_provider_engagelab.core.stream import StatsResult, StatsStream
from airflow_provider_engagelab.exceptions import (
    EngageLabAuthError,
    EngageLabError,
    EngageLabJourneyNotFoundError,
)
from airflow_provider_engagelab.hooks._base import (
    EngageLabHookBase,
    attempts,
    explain_refused_connection,
    mask_credentials,
    transport_error,
)
from airflow_provider_engagelab.hooks._bodies import CHUNK_BYTES, BodyFile
from airflow_provider_engagelab.hooks._ordered import Turn, run_ordered

if TYPE_CHECKING:
    from airflow_provider_engagelab.hooks._async import EngageLabAsyncHook as EngageLabAsyncHook

__all__ = ["EngageLabHook", "EngageLabAsyncHook", "mask_credentials"]

#: URLs or headers requests refuses to send: a retry meets the same refusal.
_REFUSED = (
    requests.exceptions.InvalidURL,
    requests.exceptions.InvalidHeader,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
)


class EngageLabHook(EngageLabHookBase[StatsResult], HttpHook):
    """Read journey statistics from EngageLab with retries, pacing and concurrency.

    The Connection (type ``engagelab``) holds the API base URL in Host (default
    ``https://ma-api.engagelab.com``), the API Key in Login and the API Secret in Password.
    Optional Extra keys: ``timeout``, ``max_retries``, ``max_retry_wait``,
    ``max_concurrent_requests``, ``requests_per_second``, and the transport keys
    ``proxies``, ``verify``, ``cert``, ``trust_env`` (see docs/connection.md).

    Answer bodies stream to anonymous temporary files while they download and are decoded from
    there, one at a time, in plan order (see :mod:`~airflow_provider_engagelab.hooks._ordered`):
    the memory of a fetch is about one answer, whatever ``max_concurrent_requests``.

    :param engagelab_conn_id: the Airflow Connection to use.
    :param body_dir: the folder of the answer bodies while they download (default: the
        task's temporary folder, ``TMPDIR``).
    """

    conn_name_attr = EngageLabHookBase.conn_name_attr
    default_conn_name = EngageLabHookBase.default_conn_name
    conn_type = EngageLabHookBase.conn_type
    hook_name = EngageLabHookBase.hook_name
    default_host = EngageLabHookBase.default_host

    def __init__(self, engagelab_conn_id: str = default_conn_name, *, body_dir: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(method="GET", http_conn_id=engagelab_conn_id, **kwargs)
        self._init_base(engagelab_conn_id, time.sleep)
        self.body_dir = body_dir
        self._local = threading.local()
        self._pool_adapter: HTTPAdapter | None = None

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
            with explain_refused_connection(self.engagelab_conn_id):
                conn = self.get_connection(self.engagelab_conn_id)
            self._adopt_connection(conn)
        assert self._resolved is not None
        return self._resolved

    def get_conn(
        self, headers: dict[Any, Any] | None = None, extra_options: dict[str, Any] | None = None
    ) -> requests.Session:
        """A requests session with Basic auth and the connection's transport settings.

        The tuning extras are never sent as headers; proxies, TLS and ``trust_env`` are the
        ones :mod:`~airflow_provider_engagelab.core.transport` parsed (HttpHook's own reading
        of them is replaced), the same the async hook applies.
        """
        resolved = self.resolved
        session = super().get_conn(headers, extra_options)
        for key in TUNING_KEYS:
            session.headers.pop(key, None)
        options = resolved.transport.requests_options()
        session.proxies = options["proxies"]
        session.verify = options["verify"]
        session.cert = options["cert"]
        session.trust_env = resolved.transport.trust_env
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
    def _download(self, call: PlannedCall, turn: Turn | None) -> tuple[int, str | None, BodyFile]:
        """Send one request, holding a request slot; its status, ``Retry-After`` and body file."""
        resolved = self.resolved
        timeout = resolved.settings.timeout
        with turn.request() if turn is not None else nullcontext():
            delay = self._pace()
            if delay > 0 and turn is not None:
                turn.pause(delay, self.sleep)
            elif delay > 0:
                self.sleep(delay)
            body = BodyFile(self.body_dir, f"the answer of {call.describe()}")
            try:
                with self._session().get(
                    resolved.base_url + call.endpoint,
                    params=call.params(),
                    timeout=timeout,
                    allow_redirects=False,
                    stream=True,
                    **resolved.transport.requests_options(),
                ) as response:
                    for chunk in response.iter_content(CHUNK_BYTES):
                        if turn is not None:
                            turn.check()
                        body.write(chunk)
                    return response.status_code, response.headers.get("Retry-After"), body
            except requests.RequestException as exc:
                body.close()
                raise transport_error(exc, call, timeout, timed_out=isinstance(exc, requests.Timeout),
                                      refused=isinstance(exc, _REFUSED)) from None
            except BaseException:
                body.close()
                raise

    def _request_once(self, call: PlannedCall, turn: Turn | None = None) -> Answer:
        """One attempt: download the body to its file, then read it (at the call's turn).

        The answer owns the body file from then on (closing it frees the file).
        """
        status, retry_after, body = self._download(call, turn)
        try:
            if turn is None:
                return self._read_answer(call, status, body, retry_after)
            return turn.decode(lambda: self._read_answer(call, status, body, retry_after))
        except BaseException:
            body.close()
            raise

    @staticmethod
    def _read_answer(call: PlannedCall, status: int, body: BodyFile, retry_after: str | None) -> Answer:
        return read_answer(
            call, status, body.view(), retry_after=parse_retry_after(retry_after),
            drop_pages=body.drop_pages, on_close=body.close,
        )

    def fetch_call(self, call: PlannedCall, *, turn: Turn | None = None) -> tuple[Answer, int]:
        """Run one planned call with retries; return its answer and the attempts made.

        The answer's :meth:`~airflow_provider_engagelab.core.answer.Answer.batches` are its
        rows (decoded as they are asked for); close it when done.

        :param turn: its place in an ordered run (:func:`~.._ordered.run_ordered` passes it):
            when it may send, and when it may decode. Without one, it sends and decodes at once.
        """
        _ = self.resolved
        kwargs = self._retry_kwargs(call)
        if turn is not None:
            sleep = self.sleep
            kwargs["sleep"] = lambda seconds: turn.pause(seconds, sleep)
        retrying = tenacity.Retrying(**kwargs)
        with self._retry_budget(retrying):
            answer = retrying(self._request_once, call, turn)
        return answer, attempts(retrying)

    def _run_ordered(self, calls: list[PlannedCall]) -> Iterator[tuple[Answer, int]]:
        """Run calls concurrently and yield ``(answer, attempts)`` in plan order.

        With width N = ``max_concurrent_requests`` (at most the number of calls), N requests run
        at once and a new one starts as soon as ANY of them finishes, so one slow call (a latency
        spike, a retry sleeping its backoff, a 429's ``Retry-After``) does not idle the other
        slots. At most ``2 x N`` calls are started and not yet yielded; those that finish before
        an earlier one wait as bodies on disk, not in memory, and each answer is decoded in the
        consumer's thread when its turn comes (:mod:`~.._ordered`): one decoded answer at a time.

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
        yield from run_ordered(calls, self.fetch_call, width, discard=_close_answer)

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
        return self._stream(*self.plan(stats_type, journey_ids, time_unit, start_time, end_time))

    def _stream(self, query: StatsQuery, calls: list[PlannedCall]) -> StatsStream:
        _ = self.resolved  # validate the Connection before the first request
        self._announce(query, calls, logging.INFO)
        return StatsStream(query, len(calls), self._run_ordered(calls))

    def _fetch(self, query: StatsQuery, calls: list[PlannedCall]) -> StatsResult:
        return self._stream(query, calls).collect()

    def test_connection(self) -> tuple[bool, str]:
        """Check host and credentials with one small request (the UI's Test button).

        A journey that does not exist still proves the credentials; only transport,
        authentication and project errors fail the test.
        """
        try:
            resolved = self.resolved
            day = date.today() - timedelta(days=1)
            _, calls = self.plan("journey", [1], "DAY", day, day)
            self._request_once(calls[0]).close()
        except EngageLabJourneyNotFoundError:
            pass
        except EngageLabAuthError as exc:
            return False, f"Authentication failed: check the API Key and API Secret ({exc})"
        except EngageLabError as exc:
            return False, str(exc)
        except Exception as exc:  # noqa: BLE001 - the UI shows the message
            return False, f"{type(exc).__name__}: {exc}"
        return True, f"Connected to {resolved.base_url} with API Key {resolved.api_key!r}"


def _close_answer(done: tuple[Any, int]) -> None:
    """Free the body of an answer that was fetched but never read (the run ended before it)."""
    close = getattr(done[0], "close", None)
    if close is not None:
        close()


def __getattr__(name: str) -> Any:
    # EngageLabAsyncHook is importable from here (its public home) but lives in _async, loaded
    # on first use. Not to keep aiohttp out: HttpHook's module, imported above, loads aiohttp
    # itself. DAG files import the operators and the sensor, which load no hook module at all
    # (tests/unit/test_parse_cost.py); the triggerer imports _async, which loads neither requests
    # nor HttpHook. The lazy name only keeps the async transport out of sync-only processes.
    if name == "EngageLabAsyncHook":
        from airflow_provider_engagelab.hooks._async import EngageLabAsyncHook

        return EngageLabAsyncHook
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
