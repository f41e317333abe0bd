"""The transport extras, end to end: a real HTTP proxy and TLS with a private CA, for both hooks.

The connection's ``proxies``/``proxy``, ``verify``, ``cert`` and ``trust_env`` are parsed once
(:mod:`airflow_provider_engagelab.core.transport`) and applied by the sync hook (requests), the
async hook (aiohttp), hence the trigger and the deferrable sensor. Each test runs the same
connection through both hooks.

How the tests know:

- :class:`ForwardProxy` is a real forward proxy on 127.0.0.1 that relays absolute-form
  requests and ``CONNECT`` tunnels and counts them, with each request's ``User-Agent`` (so
  requests' and aiohttp's calls are told apart) and ``Proxy-Authorization``. A request went
  through the proxy when the proxy counted it and the sandbox counted the same number.
- The sandbox serves HTTPS with a certificate for 127.0.0.1 from a CA made for the test module
  (``trustme``); nothing else trusts that CA. ``verify=<CA file>`` must work, the default
  ``verify`` must fail the call with a clear, non-retryable error (no request reaches the
  sandbox: the handshake fails), and nothing falls back to plain HTTP.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import selectors
import socket
import ssl
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest
import trustme
from airflow.providers.common.compat.sdk import redact

from airflow_provider_engagelab.exceptions import EngageLabTransportError
from airflow_provider_engagelab.hooks.engagelab import EngageLabAsyncHook, EngageLabHook
from airflow_provider_engagelab.testing.sandbox import Sandbox
from airflow_provider_engagelab.triggers.engagelab import EngageLabStatsAvailableTrigger

UTC = timezone.utc
# Data through the end of 2026-03-10 UTC: fixed, so no test depends on today's date.
CUTOFF = datetime(2026, 3, 11, tzinfo=UTC)
DAY = "2026-03-10"
IDS = list(range(1, 151))  # 2 calls per stats type
PROXY_USER, PROXY_PASSWORD = "proxy-user", "pr0xy-P@ss-7c1e-never-log"
FAST = {"max_retries": 1, "max_retry_wait": 0.1}


# ------------------------------------------------------------------------------ the proxy


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ProxyServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _authorized(self) -> bool:
        expected = self.server.owner.authorization
        if expected is None or self.headers.get("Proxy-Authorization") == expected:
            return True
        self.send_response(407)
        self.send_header("Proxy-Authenticate", 'Basic realm="test proxy"')
        self.send_header("Content-Length", "0")
        self.end_headers()
        return False

    def _record(self, kind: str) -> None:
        self.server.owner.record(kind, self.command, self.path, self.headers)

    def do_GET(self) -> None:  # an absolute-form request: relay it
        self._record("relay")
        if not self._authorized():
            return
        target = urlsplit(self.path)
        if target.scheme != "http" or not target.hostname:
            self.send_error(400, "absolute http:// URL expected")
            return
        upstream = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=30)
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("proxy-authorization", "proxy-connection", "connection")}
        try:
            upstream.request("GET", target.path + (f"?{target.query}" if target.query else ""),
                             headers=headers)
            response = upstream.getresponse()
            body = response.read()
        finally:
            upstream.close()
        self.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in ("connection", "keep-alive", "transfer-encoding", "content-length"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_CONNECT(self) -> None:  # a tunnel (TLS to the target goes through it untouched)
        self._record("tunnel")
        if not self._authorized():
            return
        host, _, port = self.path.rpartition(":")
        upstream = socket.create_connection((host, int(port)), timeout=30)
        self.send_response(200, "Connection established")
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        client = self.connection
        with selectors.DefaultSelector() as selector:
            selector.register(client, selectors.EVENT_READ, upstream)
            selector.register(upstream, selectors.EVENT_READ, client)
            try:
                while not self.server.owner.stopping.is_set():
                    for key, _ in selector.select(timeout=0.5):
                        data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                        if not data:
                            return
                        key.data.sendall(data)
            except OSError:
                return
            finally:
                upstream.close()


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, owner: ForwardProxy) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _ProxyHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # a client or upstream that went away


class ForwardProxy:
    """An HTTP forward proxy on 127.0.0.1 that counts what it relays (see the module docstring).

    :param credentials: ``(user, password)`` the proxy requires (407 without them).
    """

    def __init__(self, credentials: tuple[str, str] | None = None) -> None:
        self.authorization = None
        if credentials:
            self.authorization = "Basic " + base64.b64encode(":".join(credentials).encode()).decode()
        self.seen: list[dict[str, str | None]] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._server = _ProxyServer(self)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def record(self, kind: str, method: str, target: str, headers: Any) -> None:
        with self._lock:
            self.seen.append({"kind": kind, "method": method, "target": target,
                              "user_agent": headers.get("User-Agent"),
                              "authorization": headers.get("Proxy-Authorization")})

    def url(self, credentials: tuple[str, str] | None = None) -> str:
        """The proxy's URL, with ``user:password@`` (percent-encoded) when given."""
        auth = ""
        if credentials:
            from urllib.parse import quote

            auth = f"{quote(credentials[0], safe='')}:{quote(credentials[1], safe='')}@"
        return f"http://{auth}127.0.0.1:{self._server.server_address[1]}"

    def count(self, kind: str, client: str | None = None) -> int:
        """Relayed requests (``relay``) or tunnels (``tunnel``), of one client (by User-Agent)."""
        with self._lock:
            return sum(1 for s in self.seen if s["kind"] == kind
                       and (client is None or client in (s["user_agent"] or "")))

    def __enter__(self) -> ForwardProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(autouse=True)
def no_environment_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy or CA bundle from the machine's environment, unless a test sets one."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                 "ALL_PROXY", "NO_PROXY", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def proxy() -> Iterator[ForwardProxy]:
    with ForwardProxy() as p:
        yield p


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    """A private CA, made for this module and trusted by nothing else."""
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def _server_context(ca: trustme.CA, require_client_cert: bool = False) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    if require_client_cert:
        context.verify_mode = ssl.CERT_REQUIRED
        ca.configure_trust(context)
    return context


@pytest.fixture
def engagelab_sandbox_settings() -> dict[str, Any]:
    return {"available_through": CUTOFF}


@pytest.fixture
def http_sandbox(engagelab_sandbox: Sandbox) -> Sandbox:
    """The shipped plugin's sandbox, plain HTTP."""
    return engagelab_sandbox


@pytest.fixture
def tls_sandbox(ca: trustme.CA) -> Iterator[Sandbox]:
    with Sandbox(available_through=CUTOFF, ssl_context=_server_context(ca)) as sb:
        yield sb


def _connect(monkeypatch: pytest.MonkeyPatch, sb: Sandbox, **extra: Any) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_ENGAGELAB_DEFAULT", json.dumps(sb.airflow_connection(**FAST, **extra)))


def _both_hooks(sb: Sandbox) -> dict[str, list[dict[str, Any]]]:
    """The rows of the same query from the sync and from the async hook."""
    sync = EngageLabHook().get_stats("journey", IDS, "DAY", DAY, DAY)
    async_ = asyncio.run(EngageLabAsyncHook().get_stats("journey", IDS, "DAY", DAY, DAY))
    expected = sb.expected_rows("journey", IDS, "DAY", DAY, DAY)
    assert sync.rows == expected and async_.rows == expected
    return {"sync": sync.rows, "async": async_.rows}


def _both_fail(match: str) -> list[EngageLabTransportError]:
    errors = []
    with pytest.raises(EngageLabTransportError, match=match) as sync:
        EngageLabHook().get_stats("journey", IDS, "DAY", DAY, DAY)
    errors.append(sync.value)
    with pytest.raises(EngageLabTransportError, match=match) as async_:
        asyncio.run(EngageLabAsyncHook().get_stats("journey", IDS, "DAY", DAY, DAY))
    errors.append(async_.value)
    return errors


# ------------------------------------------------------------------------------ proxies


def test_both_hooks_go_through_the_configured_proxy(monkeypatch, http_sandbox, proxy):
    _connect(monkeypatch, http_sandbox, proxies={"http": proxy.url()})
    _both_hooks(http_sandbox)
    # 2 calls per hook, each relayed by the proxy and then answered by the sandbox
    assert proxy.count("relay", "python-requests") == 2
    assert proxy.count("relay", "aiohttp") == 2
    assert proxy.count("relay") == http_sandbox.counters()["requests"] == 4
    # the API credentials are never offered to the proxy as its own
    assert {s["authorization"] for s in proxy.seen} == {None}


def test_one_proxy_url_for_every_scheme(monkeypatch, http_sandbox, proxy):
    _connect(monkeypatch, http_sandbox, proxy=proxy.url())
    _both_hooks(http_sandbox)
    assert proxy.count("relay") == http_sandbox.counters()["requests"] == 4


def test_a_proxy_for_another_scheme_is_not_used(monkeypatch, http_sandbox, proxy):
    _connect(monkeypatch, http_sandbox, proxies={"https": proxy.url()})
    _both_hooks(http_sandbox)
    assert proxy.count("relay") == 0 and http_sandbox.counters()["requests"] == 4


def test_proxy_credentials_are_sent_by_both_hooks_and_masked(monkeypatch, http_sandbox):
    with ForwardProxy(credentials=(PROXY_USER, PROXY_PASSWORD)) as proxy:
        _connect(monkeypatch, http_sandbox, proxies={"http": proxy.url((PROXY_USER, PROXY_PASSWORD))})
        _both_hooks(http_sandbox)
        assert proxy.count("relay") == 4
        assert {s["authorization"] for s in proxy.seen} == {proxy.authorization}
    assert PROXY_PASSWORD not in redact(f"password {PROXY_PASSWORD}")


def test_wrong_proxy_credentials_fail_without_showing_them(monkeypatch, http_sandbox):
    with ForwardProxy(credentials=(PROXY_USER, "the-right-one")) as proxy:
        _connect(monkeypatch, http_sandbox, proxies={"http": proxy.url((PROXY_USER, PROXY_PASSWORD))})
        for run in (lambda: EngageLabHook().get_stats("journey", [1], "DAY", DAY, DAY),
                    lambda: asyncio.run(EngageLabAsyncHook().get_stats("journey", [1], "DAY", DAY, DAY))):
            with pytest.raises(Exception) as err:  # the proxy's 407: not an EngageLab answer
                run()
            assert "407" in str(err.value) and PROXY_PASSWORD not in str(err.value)
    assert http_sandbox.counters()["requests"] == 0


def test_environment_proxies_apply_only_with_trust_env(monkeypatch, http_sandbox, proxy):
    monkeypatch.setenv("HTTP_PROXY", proxy.url())
    _connect(monkeypatch, http_sandbox)  # trust_env defaults to true, as in requests
    _both_hooks(http_sandbox)
    assert proxy.count("relay", "python-requests") == 2 and proxy.count("relay", "aiohttp") == 2
    _connect(monkeypatch, http_sandbox, trust_env=False)
    _both_hooks(http_sandbox)
    assert proxy.count("relay") == 4 and http_sandbox.counters()["requests"] == 8


def test_the_connection_proxy_wins_over_the_environment(monkeypatch, http_sandbox, proxy):
    with ForwardProxy() as other:
        monkeypatch.setenv("HTTP_PROXY", other.url())
        _connect(monkeypatch, http_sandbox, proxies={"http": proxy.url()})
        _both_hooks(http_sandbox)
        assert proxy.count("relay") == 4 and other.count("relay") == 0


# ------------------------------------------------------------------------------ TLS


def test_a_private_ca_is_trusted_with_verify_set_to_its_file(monkeypatch, tls_sandbox, ca_file):
    assert tls_sandbox.url.startswith("https://127.0.0.1:")
    _connect(monkeypatch, tls_sandbox, verify=ca_file)
    _both_hooks(tls_sandbox)
    assert tls_sandbox.counters()["requests"] == 4


def test_without_the_ca_both_hooks_fail_clearly_and_do_not_retry(monkeypatch, tls_sandbox):
    _connect(monkeypatch, tls_sandbox)  # verify defaults to true: the public CAs only
    for err in _both_fail("TLS certificate check failed"):
        assert not err.retryable and "verify" in str(err) and "unable to get local issuer" in str(err)
        assert "gave up after" not in str(err)  # one attempt, no retries
    # the handshake failed, so no request reached the sandbox (and none went out as http://)
    assert tls_sandbox.counters()["requests"] == 0


def test_the_environment_ca_bundle_applies_only_with_trust_env(monkeypatch, tls_sandbox, ca_file):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca_file)
    _connect(monkeypatch, tls_sandbox)
    _both_hooks(tls_sandbox)
    _connect(monkeypatch, tls_sandbox, trust_env=False)
    _both_fail("TLS certificate check failed")


@pytest.mark.filterwarnings("ignore:Unverified HTTPS request")
def test_verify_false_turns_the_check_off(monkeypatch, tls_sandbox):
    _connect(monkeypatch, tls_sandbox, verify=False)
    _both_hooks(tls_sandbox)


def test_a_missing_ca_file_fails_before_any_request(monkeypatch, tls_sandbox, tmp_path):
    _connect(monkeypatch, tls_sandbox, verify=str(tmp_path / "nowhere.pem"))
    for run in (lambda: EngageLabHook().get_stats("journey", [1], "DAY", DAY, DAY),
                lambda: asyncio.run(EngageLabAsyncHook().get_stats("journey", [1], "DAY", DAY, DAY))):
        with pytest.raises(ValueError, match="verify=.*no such CA bundle"):
            run()
    assert tls_sandbox.counters()["requests"] == 0


def test_a_client_certificate_is_presented_by_both_hooks(monkeypatch, ca, ca_file, tmp_path):
    client = tmp_path / "client.pem"
    ca.issue_cert("engagelab-client@example.com").private_key_and_cert_chain_pem.write_to_path(str(client))
    with Sandbox(available_through=CUTOFF, ssl_context=_server_context(ca, require_client_cert=True)) as sb:
        _connect(monkeypatch, sb, verify=ca_file, cert=str(client))
        _both_hooks(sb)
        _connect(monkeypatch, sb, verify=ca_file)  # the server refuses a client without one
        for run in (lambda: EngageLabHook().get_stats("journey", [1], "DAY", DAY, DAY),
                    lambda: asyncio.run(EngageLabAsyncHook().get_stats("journey", [1], "DAY", DAY, DAY))):
            with pytest.raises(EngageLabTransportError):
                run()
        assert sb.counters()["requests"] == 4


def test_tls_through_the_proxy_is_a_tunnel_to_the_sandbox(monkeypatch, tls_sandbox, ca_file, proxy):
    _connect(monkeypatch, tls_sandbox, proxies={"https": proxy.url()}, verify=ca_file)
    _both_hooks(tls_sandbox)
    targets = {s["target"] for s in proxy.seen}
    assert targets == {f"127.0.0.1:{tls_sandbox.port}"} and proxy.count("relay") == 0
    # the CONNECTs carry no credentials: the API token stays inside the TLS tunnel
    assert {s["authorization"] for s in proxy.seen} == {None}
    assert proxy.count("tunnel") >= 2  # one per connection: requests and aiohttp keep theirs alive
    assert tls_sandbox.counters()["requests"] == 4


def test_proxy_credentials_go_on_the_connect_and_the_api_token_does_not(monkeypatch, tls_sandbox, ca_file):
    with ForwardProxy(credentials=(PROXY_USER, PROXY_PASSWORD)) as proxy:
        proxy_url = proxy.url((PROXY_USER, PROXY_PASSWORD))
        _connect(monkeypatch, tls_sandbox, proxies={"https": proxy_url}, verify=ca_file)
        _both_hooks(tls_sandbox)
        assert proxy.count("tunnel") >= 2
        assert {s["authorization"] for s in proxy.seen} == {proxy.authorization}


# ------------------------------------------------------------------------------ trigger, sensor


async def _trigger_events(**kwargs: Any) -> list[dict[str, Any]]:
    trigger = EngageLabStatsAvailableTrigger(journey_ids=[7, 8], target_date=DAY, poke_interval=0.05,
                                             **kwargs)
    events = []
    async for event in trigger.run():
        events.append(event.payload)
    return events


async def test_the_trigger_polls_through_the_proxy_over_tls(monkeypatch, tls_sandbox, ca_file, proxy):
    _connect(monkeypatch, tls_sandbox, proxies={"https": proxy.url()}, verify=ca_file)
    [event] = await asyncio.wait_for(_trigger_events(), timeout=60)
    assert event["status"] == "success", event
    assert proxy.count("tunnel") >= 1 and tls_sandbox.counters()["requests"] == 1


async def test_the_trigger_reports_an_untrusted_certificate_as_an_error(monkeypatch, tls_sandbox):
    _connect(monkeypatch, tls_sandbox)
    [event] = await asyncio.wait_for(_trigger_events(), timeout=60)
    assert event["status"] == "error"  # at once, not a wait until the deadline
    assert "TLS certificate check failed" in event["error"]["message"]


DAG_SOURCE = '''
import pendulum
from airflow.sdk import dag

from airflow_provider_engagelab.sensors.engagelab import EngageLabStatsAvailableSensor


@dag(dag_id="sensor_via_proxy", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"))
def sensor_via_proxy():
    EngageLabStatsAvailableSensor(task_id="wait", journey_ids="101,102", target_date="{day}",
                                  poke_interval=1, timeout=300, deferrable=True)


sensor_via_proxy()
'''


@pytest.mark.e2e
def test_the_deferrable_sensor_looks_and_defers_through_the_proxy(airflow_runner, proxy):
    """A real run: the worker's first look (requests) and the triggerer's looks (aiohttp) both
    go through the connection's proxy; the day completes while the trigger waits."""
    with Sandbox(available_through=datetime(2026, 3, 10, 20, tzinfo=UTC)) as sb:
        conn = sb.airflow_connection(proxies={"http": proxy.url()}, **FAST)
        airflow_runner.add_dag_source("sensor_via_proxy.py", DAG_SOURCE.format(day=DAY))
        run = airflow_runner.start("sensor_via_proxy", logical_date="2026-03-11T06:00:00+00:00",
                                   env={"AIRFLOW_CONN_ENGAGELAB_DEFAULT": json.dumps(conn)})
        try:
            # Two looks of the triggerer relayed *and answered* (not ready) before the day
            # completes: the proxy counts a look when it arrives, and a look still on its way
            # to the sandbox when the cutoff moves would find the day ready (CI saw 2, not 3).
            def answered_twice() -> bool:
                counters = sb.counters()
                return (proxy.count("relay", "aiohttp") >= 2 and counters["requests"] >= 3
                        and counters["in_flight"] == 0)

            assert run.wait_until(answered_twice), run.output[-5000:]
            sb.configure(available_through=CUTOFF)
        finally:
            run.finish()
        assert run.result(check=False).state == "success", run.output[-8000:]
        assert proxy.count("relay", "python-requests") == 1  # the worker's look before deferring
        assert proxy.count("relay", "aiohttp") >= 3  # the triggerer's, the last one ready
        assert proxy.count("relay") == sb.counters()["requests"]

