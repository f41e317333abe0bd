"""sandbox/server.py: counters, the request log, concurrency, lifecycle, TLS, stdlib only."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import threading
import time

import pytest
import requests
import trustme

from airflow_provider_engagelab.testing.sandbox import Sandbox

from .helpers import CUTOFF, PATHS, REPO_ROOT, admin, query


def test_counters_and_reset(sb):
    query(sb, "journey", journey_id="1")
    query(sb, "message", journey_id="2", time_unit="HOUR")
    query(sb, "webhook", journey_id="3", time_unit="WEEK")
    query(sb, "webhook", auth=None)
    admin(sb, "GET", "counters")  # admin calls are not counted
    c = sb.counters()
    assert c["requests"] == 4
    assert c["by_endpoint"] == {
        "/v1/stats/journey": 1,
        "/v1/stats/journey/message": 1,
        "/v1/stats/journey/webhook": 2,
    }
    assert c["by_status"] == {200: 2, 400: 1, 401: 1}
    assert c["faults"] == {} and c["rate_limited"] == 0
    assert c["max_in_flight"] == 1 and c["in_flight"] == 0
    assert c["log"][0] == (
        "/v1/stats/journey",
        "journey_id=1&time_unit=DAY&start_time=2026-06-01&end_time=2026-06-07",
    )
    assert [p for p, _ in c["log"]] == [
        "/v1/stats/journey",
        "/v1/stats/journey/message",
        "/v1/stats/journey/webhook",
        "/v1/stats/journey/webhook",
    ]
    sb.reset_counters()
    c = sb.counters()
    assert c["requests"] == 0 and c["by_status"] == {} and c["log"] == []
    assert c["max_in_flight"] == 0

def test_request_log_is_bounded():
    with Sandbox(available_through=CUTOFF, log_size=3) as s:
        for i in range(5):
            query(s, journey_id=str(i + 1))
        log = s.counters()["log"]
        assert len(log) == 3
        assert log[0][1].startswith("journey_id=3&")

def test_max_in_flight_counts_concurrent_requests():
    with Sandbox(available_through=CUTOFF, latency=0.4) as s:
        statuses: list[int] = []
        threads = [
            threading.Thread(target=lambda: statuses.append(query(s).status_code)) for _ in range(5)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        c = s.counters()
        assert statuses == [200] * 5
        assert 3 <= c["max_in_flight"] <= 5
        assert c["in_flight"] == 0
        s.reset_counters()
        s.configure(latency=0)
        query(s)
        query(s)
        assert s.counters()["max_in_flight"] == 1

def test_start_stop_without_context_manager_and_stop_interrupts_hangs():
    s = Sandbox(available_through=CUTOFF, hang_rate=1.0, hang_seconds=60)
    s.start()
    url = s.url
    with pytest.raises(RuntimeError):
        s.start()
    result: list = []

    def slow_call():
        try:
            result.append(query(s, timeout=30).status_code)
        except requests.RequestException as exc:
            result.append(type(exc).__name__)

    t = threading.Thread(target=slow_call)
    t.start()
    time.sleep(0.2)
    s.stop()
    t.join(timeout=10)  # the hang was 60 s: a thread that ended was woken by stop()
    assert result and not t.is_alive()
    assert not s.running
    with pytest.raises(requests.ConnectionError):
        requests.get(url + PATHS["journey"], timeout=2)
    s.stop()  # idempotent

def test_sandbox_imports_only_the_standard_library():
    script = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import airflow_provider_engagelab.testing.sandbox\n"
        "new = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "print(sorted(n for n in new if n not in sys.stdlib_module_names))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['airflow_provider_engagelab']"


# ------------------------------------------------------------------------------------------
# TLS
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_sb(ca):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    with Sandbox(available_through=CUTOFF, ssl_context=context) as s:
        yield s


def test_tls_serves_https_to_clients_that_trust_the_ca(tls_sb, ca, tmp_path):
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    assert tls_sb.scheme == "https" and tls_sb.url == f"https://127.0.0.1:{tls_sb.port}"
    assert tls_sb.airflow_connection()["host"] == tls_sb.url
    r = requests.get(tls_sb.url + PATHS["journey"], auth=tls_sb.auth, verify=str(ca_file), timeout=10,
                     params={"journey_id": "1", "time_unit": "DAY", "start_time": "2026-06-01",
                             "end_time": "2026-06-01"})
    assert r.status_code == 200 and r.json()["data"][0]["detail"]
    assert requests.get(tls_sb.url + "/_admin/health", verify=str(ca_file), timeout=10).json() == {
        "status": "ok"}
    assert tls_sb.counters()["requests"] == 1


def test_tls_refuses_untrusting_and_plain_http_clients_and_keeps_serving(tls_sb, ca, tmp_path):
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(tls_sb.url + "/_admin/health", timeout=10)  # the public CAs only
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{tls_sb.port}/_admin/health", timeout=10)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    assert requests.get(tls_sb.url + "/_admin/health", verify=str(ca_file), timeout=10).ok
    assert tls_sb.counters()["requests"] == 0  # no API request got through the failed handshakes
