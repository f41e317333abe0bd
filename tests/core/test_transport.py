"""core/transport.py: the transport extras parsed once, and their meaning for both HTTP clients."""

from __future__ import annotations

import ssl

import pytest

from airflow_provider_engagelab.core.connection import resolve_connection
from airflow_provider_engagelab.core.transport import (
    TransportSettings,
    parse_transport,
    redact_url,
    split_proxy_credentials,
    ssl_context,
)
from airflow_provider_engagelab.exceptions import EngageLabValidationError


def test_defaults_are_requests_defaults():
    t = parse_transport({})
    assert t == TransportSettings() and t.verify is True and t.trust_env is True
    assert t.requests_options() == {"proxies": {}, "verify": True, "cert": None}
    assert t.proxy_for("https://ma-api.engagelab.com") is None


@pytest.mark.parametrize(
    ("extras", "url", "expected"),
    [
        ({"proxies": {"https": "http://p:1"}}, "https://api.test/v1", "http://p:1"),
        ({"proxies": {"https": "http://p:1"}}, "http://api.test/v1", None),
        ({"proxies": {"all": "http://p:1"}}, "http://api.test", "http://p:1"),
        ({"proxies": {"https://api.test": "http://h:1", "https": "http://s:1"}}, "https://api.test", "http://h:1"),
        ({"proxies": {"all://api.test": "http://h:1", "https": "http://s:1"}}, "https://api.test", "http://s:1"),
        ({"proxy": "http://p:1"}, "https://api.test", "http://p:1"),
        ({"proxy": "http://p:1"}, "http://127.0.0.1:8080", "http://p:1"),
        ({"proxies": {"https": ""}}, "https://api.test", None),
    ],
)
def test_the_proxy_for_a_url_follows_requests_rules(extras, url, expected):
    assert parse_transport(extras).proxy_for(url) == expected


@pytest.mark.parametrize(
    ("extras", "match"),
    [
        ({"proxies": {"https": "proxy:3128"}}, "proxies\\['https'\\]"),
        ({"proxies": {"https": "ftp://p:1"}}, "scheme one of"),
        ({"proxies": ["http://p:1"]}, "proxies: must be a proxy URL or an object"),
        ({"proxy": "http://p:99999"}, "proxy: must be a proxy URL"),
        ({"proxies": {"http": "http://p:1"}, "proxy": "http://p:1"}, "give one of them"),
        ({"verify": True, "verify_ssl": False}, "give one of them"),
        ({"verify": 1}, "verify=1: must be true, false or the path"),
        ({"cert": ["a.pem"]}, "cert: must be the path"),
        ({"trust_env": "maybe"}, "trust_env='maybe': must be true or false"),
    ],
)
def test_bad_transport_extras_are_refused_naming_the_key(extras, match):
    with pytest.raises(EngageLabValidationError, match=match):
        parse_transport(extras)


def test_a_refused_proxy_url_never_shows_its_password():
    with pytest.raises(EngageLabValidationError) as err:
        parse_transport({"proxies": {"https": "ftp://user:hunter2@p:1"}})
    assert "hunter2" not in str(err.value) and "user:***@p:1" in str(err.value)
    with pytest.raises(EngageLabValidationError) as err:
        parse_transport({"proxy": "http://user:hunter2@p:notaport"})
    assert "hunter2" not in str(err.value)


def test_strings_from_connection_uris_count_as_booleans():
    t = parse_transport({"verify": "False", "trust_env": " false "})
    assert (t.verify, t.trust_env) == (False, False)
    assert parse_transport({"verify_ssl": "TRUE"}).verify is True
    assert parse_transport({"verify": " /etc/ca.pem "}).verify == "/etc/ca.pem"
    assert parse_transport({"cert": ["c.pem", "k.pem"]}).cert == ("c.pem", "k.pem")


def test_the_environment_ca_bundle_applies_to_verify_true_under_trust_env_only():
    env = {"REQUESTS_CA_BUNDLE": "/env/ca.pem", "CURL_CA_BUNDLE": "/curl/ca.pem"}
    assert TransportSettings().effective_verify(env) == "/env/ca.pem"
    assert TransportSettings().effective_verify({"CURL_CA_BUNDLE": "/curl/ca.pem"}) == "/curl/ca.pem"
    assert TransportSettings(trust_env=False).effective_verify(env) is True
    assert TransportSettings(verify="/mine.pem").effective_verify(env) == "/mine.pem"
    assert TransportSettings(verify=False).effective_verify(env) is False


def test_proxy_credentials_are_split_off_and_listed_as_secrets():
    url = "http://us%3Aer:p%40ss@proxy.test:3128"
    assert split_proxy_credentials(url) == ("http://proxy.test:3128", "Basic dXM6ZXI6cEBzcw==")
    assert split_proxy_credentials("http://proxy.test:3128") == ("http://proxy.test:3128", None)
    secrets = parse_transport({"proxy": url}).secrets()
    assert secrets == ["p@ss", "dXM6ZXI6cEBzcw=="]
    assert redact_url(url) == "http://us%3Aer:***@proxy.test:3128"


def test_resolve_connection_carries_the_transport():
    resolved = resolve_connection(host="https://api.test", schema=None, port=None, login="k", password="s",
                                  extra={"proxy": "http://p:1", "verify": False, "timeout": 5})
    assert resolved.transport.proxy_for(resolved.base_url) == "http://p:1"
    assert resolved.transport.verify is False and resolved.settings.timeout == 5


def test_missing_files_are_named_before_any_request(tmp_path):
    with pytest.raises(EngageLabValidationError, match="verify=.*no such CA bundle"):
        TransportSettings(verify=str(tmp_path / "ca.pem")).check_files({})
    with pytest.raises(EngageLabValidationError, match="environment's REQUESTS_CA_BUNDLE"):
        TransportSettings().check_files({"REQUESTS_CA_BUNDLE": str(tmp_path / "env.pem")})
    with pytest.raises(EngageLabValidationError, match="cert=.*no such certificate"):
        TransportSettings(cert=(str(tmp_path), str(tmp_path / "key.pem"))).check_files({})
    TransportSettings(verify=str(tmp_path)).check_files({})  # a directory of CA certificates


def test_ssl_context_follows_verify(tmp_path):
    on = ssl_context(TransportSettings(), environ={})
    assert on.verify_mode == ssl.CERT_REQUIRED and on.check_hostname
    assert on.get_ca_certs()  # the public CAs (certifi's bundle, as requests)
    off = ssl_context(TransportSettings(verify=False), environ={})
    assert off.verify_mode == ssl.CERT_NONE and not off.check_hostname
    directory = ssl_context(TransportSettings(verify=str(tmp_path)), environ={})
    assert directory.verify_mode == ssl.CERT_REQUIRED
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    with pytest.raises(EngageLabValidationError, match="not a readable CA bundle"):
        ssl_context(TransportSettings(verify=str(bad)), environ={})
    with pytest.raises(EngageLabValidationError, match="not a readable PEM certificate"):
        ssl_context(TransportSettings(cert=str(bad)), environ={})
