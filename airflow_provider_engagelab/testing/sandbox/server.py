"""The HTTP side of the sandbox: the threaded server (plain or TLS) and the request pipeline.

:class:`SandboxServer` owns the state that requests touch (settings, scripted faults, the
rate limiter, the counters) and runs each API request through the order the package
docstring lists: latency, scripted fault, rate limit, authentication, path, method, random
faults, then the parameters (:func:`~.api.stats_answer`). :class:`~.service.Sandbox` adds the
public controls on top.
"""

from __future__ import annotations

import math
import random
import socket
import ssl
import sys
import threading
from collections import Counter, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address
from typing import Any, TypeVar
from urllib.parse import urlsplit

from airflow_provider_engagelab.testing.sandbox import admin
from airflow_provider_engagelab.testing.sandbox.api import (
    Answer,
    TokenBucket,
    authorized,
    error,
    rate_limited,
    stats_answer,
)
from airflow_provider_engagelab.testing.sandbox.config import SandboxConfig
from airflow_provider_engagelab.testing.sandbox.faults import (
    DROP,
    Fault,
    apply_fault,
    hang_seconds,
    immediate_answer,
)
from airflow_provider_engagelab.testing.sandbox.tables import ENDPOINTS

_S = TypeVar("_S", bound="SandboxServer")

#: Seconds a client has to complete the TLS handshake.
HANDSHAKE_TIMEOUT = 30


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], sandbox: SandboxServer,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.sandbox = sandbox
        self.ssl_context = ssl_context
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Serve one connection; with TLS, its handshake runs here, on the connection's thread."""
        if self.ssl_context is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(HANDSHAKE_TIMEOUT)
        try:
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except OSError:  # the client refused our certificate, or spoke no TLS: nothing to serve
            return
        try:
            super().finish_request(tls, client_address)
        finally:
            tls.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):  # client went away: not our problem
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "EngageLabSandbox/1.0"
    sys_version = ""
    timeout = 120  # idle keep-alive connections are closed after this many seconds
    server: _Server
    sandbox_in_flight = False

    def log_message(self, format: str, *args: Any) -> None:
        return

    def setup(self) -> None:
        super().setup()
        self.server.sandbox._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.sandbox._track(self.connection, False)

    def _dispatch(self) -> None:
        try:
            self.server.sandbox._handle(self)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _dispatch


def is_loopback(host: str) -> bool:
    """Whether a client address is a loopback one (IPv4, IPv6 or IPv4-mapped)."""
    try:
        addr = ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(addr, "ipv4_mapped", None)
    return addr.is_loopback or bool(mapped and mapped.is_loopback)


class SandboxServer:
    """Serving, and the state every request reads or counts."""

    def __init__(self, config: SandboxConfig, host: str, port: int,
                 ssl_context: ssl.SSLContext | None) -> None:
        self._lock = threading.Lock()
        self._config = config
        self._host = host
        self._requested_port = port
        self._ssl_context = ssl_context
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._faults: deque[Fault] = deque()
        self._rng = random.Random(config.seed)
        self._bucket = TokenBucket()
        self._reset_counters_locked()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self: _S) -> _S:
        """Bind and serve on a daemon thread; returns ``self``."""
        if self._server is not None:
            raise RuntimeError("sandbox already running")
        self._stopping.clear()
        server = _Server((self._host, self._requested_port), self, self._ssl_context)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"engagelab-sandbox-{server.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake sleeping handlers and close every open connection."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    # -- counters ----------------------------------------------------------------------------

    def counters(self) -> dict[str, Any]:
        """A snapshot of the request counters (admin requests excluded).

        Keys: ``requests`` (API requests received), ``by_endpoint`` (path -> count; unknown
        paths under ``"other"``), ``by_status`` (HTTP status -> responses sent), ``faults``
        (fault kind -> injected, scripted and random), ``rate_limited`` (429s from the rate
        limiter), ``max_in_flight`` and ``in_flight`` (concurrent API requests), ``log``
        (list of ``(path, raw_query)``, oldest first, bounded by ``log_size``) and
        ``pending_faults`` (scripted faults not consumed yet).
        """
        with self._lock:
            return {
                "requests": self._requests,
                "by_endpoint": dict(self._by_endpoint),
                "by_status": dict(self._by_status),
                "faults": dict(self._fault_counts),
                "rate_limited": self._rate_limited,
                "max_in_flight": self._max_in_flight,
                "in_flight": self._in_flight,
                "log": list(self._log),
                "pending_faults": len(self._faults),
            }

    def reset_counters(self) -> None:
        """Zero every counter and empty the request log."""
        with self._lock:
            self._reset_counters_locked()

    def _reset_counters_locked(self) -> None:
        self._requests = 0
        self._by_endpoint: Counter[str] = Counter()
        self._by_status: Counter[int] = Counter()
        self._fault_counts: Counter[str] = Counter()
        self._rate_limited = 0
        self._in_flight = getattr(self, "_in_flight", 0)
        self._max_in_flight = self._in_flight
        self._log: deque[tuple[str, str]] = deque(maxlen=self._config.log_size)

    def _count_fault(self, kind: str) -> None:
        with self._lock:
            self._fault_counts[kind] += 1

    # -- request handling --------------------------------------------------------------------

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)

    def _handle(self, h: _Handler) -> None:
        length = h.headers.get("Content-Length")
        raw_body = b""
        if length:
            try:
                raw_body = h.rfile.read(int(length))
            except ValueError:
                h.close_connection = True
        split = urlsplit(h.path)
        path = split.path
        if path == "/_admin" or path.startswith("/_admin/"):
            client = str(h.client_address[0])
            self._send(h, admin.answer(self, h.command, path, raw_body, is_loopback(client)), count=False)
            return
        with self._lock:
            self._requests += 1
            self._by_endpoint[path if path in ENDPOINTS else "other"] += 1
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            self._log.append((path, split.query))
            fault = self._faults.popleft() if self._faults else None
            if fault is not None:
                self._fault_counts[fault.kind] += 1
            cfg = self._config
        h.sandbox_in_flight = True
        try:
            self._serve_api(h, path, split.query, cfg, fault)
        finally:
            self._leave(h)

    def _leave(self, h: _Handler) -> None:
        """Mark a request as no longer in flight (once), before the client can see the end."""
        if h.sandbox_in_flight:
            h.sandbox_in_flight = False
            with self._lock:
                self._in_flight -= 1

    def _serve_api(self, h: _Handler, path: str, query: str, cfg: SandboxConfig, fault: Fault | None) -> None:
        self._sleep(cfg.latency)
        if fault is not None:
            instead = immediate_answer(fault)
            if instead is DROP:
                self._drop(h)
                return
            if isinstance(instead, Answer):
                self._send(h, instead)
                return
            self._sleep(hang_seconds(fault, cfg.hang_seconds))
        ans = self._api_answer(h, path, query, cfg)
        if ans is None:
            self._drop(h)
            return
        if fault is not None:
            ans = apply_fault(ans, fault)
        self._send(h, ans)

    def _api_answer(self, h: _Handler, path: str, query: str, cfg: SandboxConfig) -> Answer | None:
        if cfg.rate_limit is not None:
            burst = cfg.rate_burst if cfg.rate_burst is not None else max(1.0, cfg.rate_limit)
            wait = self._bucket.take(cfg.rate_limit, burst)
            if wait > 0:
                with self._lock:
                    self._rate_limited += 1
                if not cfg.send_retry_after:
                    return rate_limited(None)
                override = cfg.retry_after_override
                return rate_limited(override if override is not None else max(1, math.ceil(wait)))
        if not authorized(h.headers.get("Authorization"), cfg):
            ans = error(401, 40050)
            ans.headers["WWW-Authenticate"] = 'Basic realm="EngageLab"'
            return ans
        kind = ENDPOINTS.get(path)
        if kind is None:
            return error(404, 40001, "Not Found")
        if h.command != "GET":
            ans = error(405, 40001, "Method Not Allowed")
            ans.headers["Allow"] = "GET"
            return ans
        if cfg.drop_rate or cfg.failure_rate or cfg.hang_rate:
            with self._lock:
                r = self._rng.random()
            if r < cfg.drop_rate:
                self._count_fault("drop")
                return None
            r -= cfg.drop_rate
            if r < cfg.failure_rate:
                self._count_fault("500")
                return error(500, -1)
            r -= cfg.failure_rate
            if r < cfg.hang_rate:
                self._count_fault("hang")
                self._sleep(cfg.hang_seconds)
        return stats_answer(kind, query, cfg)

    def _drop(self, h: _Handler) -> None:
        self._leave(h)
        h.close_connection = True
        try:
            h.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _send(self, h: _Handler, ans: Answer, count: bool = True) -> None:
        body = ans.body()
        if count:
            with self._lock:
                self._by_status[ans.status] += 1
            self._leave(h)
        h.send_response(ans.status)
        h.send_header("Content-Type", ans.content_type)
        h.send_header("Content-Length", str(len(body)))
        for key, value in ans.headers.items():
            h.send_header(key, value)
        h.end_headers()
        if h.command != "HEAD" and body:
            h.wfile.write(body)
