"""hooks/_base.py: what both hooks share, including the words of transport errors, and imports."""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import sys

import aiohttp
import pytest
import requests
import urllib3

from airflow_provider_engagelab.core.planning import plan_calls
from airflow_provider_engagelab.core.query import build_query
from airflow_provider_engagelab.hooks._base import EngageLabHookBase, transport_error
from airflow_provider_engagelab.hooks.engagelab import EngageLabAsyncHook, EngageLabHook

CALL = plan_calls(build_query("journey", [1], "DAY", "2026-06-01", "2026-06-01"))[0]


def _cert_error() -> ssl.SSLCertVerificationError:
    err = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    err.verify_message = "unable to get local issuer certificate"
    return err


def _requests_cert_error() -> requests.exceptions.SSLError:
    """What requests raises: SSLError(MaxRetryError(reason=SSLError(SSLCertVerificationError)))."""
    reason = urllib3.exceptions.SSLError(_cert_error())
    return requests.exceptions.SSLError(urllib3.exceptions.MaxRetryError(None, "/v1", reason))


def _aiohttp_cert_error() -> aiohttp.ClientConnectorCertificateError:
    key = aiohttp.client_reqrep.ConnectionKey("h", 443, True, True, None, None, None)
    return aiohttp.ClientConnectorCertificateError(key, _cert_error())


@pytest.mark.parametrize("make", [_requests_cert_error, _aiohttp_cert_error])
def test_a_failed_certificate_check_is_not_retryable_in_both_clients(make):
    err = transport_error(make(), CALL, 60)
    assert not err.retryable
    assert "TLS certificate check failed" in str(err) and "unable to get local issuer certificate" in str(err)
    assert "connection extra verify" in str(err)


def test_the_other_transport_failures_keep_their_words():
    refused = transport_error(requests.exceptions.InvalidURL("x"), CALL, 60, refused=True)
    assert not refused.retryable and "refused by the HTTP client: InvalidURL" in str(refused)
    timeout = transport_error(asyncio.TimeoutError(), CALL, 7.5, timed_out=True)
    assert timeout.retryable and "timed out after 7.5s" in str(timeout)
    dropped = transport_error(ConnectionError("[Errno 111] Connection refused')"), CALL, 60)
    assert dropped.retryable and str(dropped).endswith("ConnectionError: [Errno 111] Connection refused")
    other = transport_error(aiohttp.ClientSSLError(
        aiohttp.client_reqrep.ConnectionKey("h", 443, True, True, None, None, None),
        ssl.SSLError(1, "EOF occurred in violation of protocol")), CALL, 60)
    assert other.retryable  # a TLS failure that is not the certificate: may pass next time


def test_both_hooks_share_the_base_and_its_names():
    for hook in (EngageLabHook, EngageLabAsyncHook):
        assert issubclass(hook, EngageLabHookBase)
        assert (hook.conn_type, hook.default_conn_name, hook.hook_name, hook.conn_name_attr) == (
            "engagelab", "engagelab_default", "EngageLab", "engagelab_conn_id")
        for name in ("plan", "get_journey_stats", "get_message_stats", "get_webhook_stats"):
            assert getattr(hook, name) is getattr(EngageLabHookBase, name)


HTTP_HOOK = "airflow.providers.http.hooks.http"
ASYNC = "airflow_provider_engagelab.hooks._async"
SYNC = "airflow_provider_engagelab.hooks.engagelab"
MODULES = ["aiohttp", "requests", HTTP_HOOK, ASYNC, SYNC]
CODE = """
import json, sys
import airflow.sdk
import {module}
print(json.dumps([m for m in json.loads(sys.argv[1]) if m in sys.modules]))
"""


@pytest.mark.parametrize(
    ("module", "loaded"),
    [
        # the shared base: no HTTP client at all
        ("airflow_provider_engagelab.hooks._base", []),
        # the triggerer's hook: aiohttp, but neither requests nor HttpHook nor the sync hook
        (ASYNC, ["aiohttp", ASYNC]),
        # the sync hook: requests and HttpHook, whose module imports aiohttp itself; our async
        # module only on first use of the name
        (SYNC, ["aiohttp", "requests", HTTP_HOOK, SYNC]),
        # what a DAG file imports: no hook at all (see also tests/unit/test_parse_cost.py)
        ("airflow_provider_engagelab.sensors.engagelab", []),
        ("airflow_provider_engagelab.triggers.engagelab", []),
    ],
)
def test_what_each_module_loads(module, loaded):
    out = subprocess.run([sys.executable, "-c", CODE.format(module=module), json.dumps(MODULES)],
                         capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == loaded
