"""The Connection's HTTP transport extras (proxies, TLS, environment), mapped once for both hooks.

``proxies``/``proxy``, ``verify``/``verify_ssl``, ``cert`` and ``trust_env`` are parsed and
checked here once (:func:`parse_transport`); the sync hook hands them to requests
(:meth:`TransportSettings.requests_options`), the async hook to aiohttp
(:meth:`TransportSettings.proxy_for`, :func:`split_proxy_credentials`, :func:`ssl_context`),
with the same meaning, so a deferrable sensor reaches the API wherever a poking one does:

- ``proxies``: ``{"https": "http://proxy:3128", "http": ...}`` (requests' keys: ``scheme``,
  ``scheme://host``, ``all``, ``all://host``), or one proxy URL for every request (``proxy``
  is an alias). Credentials in the URL (``http://user:password@proxy:3128``) are sent as
  ``Proxy-Authorization`` by both hooks.
- ``verify``: ``true`` (default: the public CAs), ``false`` (no certificate check: sandboxes
  only) or the path of a CA bundle file (or of a directory of hashed CA certificates) to trust
  instead of the public CAs. ``"true"``/``"false"`` strings (connection URIs) count as booleans.
- ``cert``: a client certificate, one PEM file with the key, or ``[cert_file, key_file]``.
- ``trust_env`` (default ``true``): also read ``HTTP(S)_PROXY``/``NO_PROXY`` and, when
  ``verify`` is ``true``, ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` from the environment.
  What the connection sets explicitly wins over the environment.

No TLS check is ever skipped unless ``verify`` is false: an ``https://`` host stays
``https://`` whatever the proxy, and a certificate the trusted CAs did not sign fails the call.
"""

from __future__ import annotations

import base64
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from airflow_provider_engagelab.exceptions import EngageLabValidationError

#: The transport extras (HttpHook's names), passed to the HTTP clients, never sent as headers.
TRANSPORT_KEYS = ("proxies", "proxy", "verify", "verify_ssl", "cert", "trust_env")

#: Proxy URL schemes requests understands (socks needs PySocks); aiohttp takes http(s) only.
PROXY_SCHEMES = frozenset({"http", "https", "socks4", "socks4a", "socks5", "socks5h"})

#: Environment variables naming the CA bundle when ``verify`` is true and ``trust_env`` is on,
#: in requests' order.
CA_BUNDLE_ENV = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")

_BOOLEANS = {"true": True, "false": False}


@dataclass(frozen=True)
class TransportSettings:
    """Validated transport extras of one Connection.

    :param proxies: ``(key, proxy URL)`` pairs with requests' keys (``https``,
        ``http://host``, ``all`` ...), in the order given.
    :param verify: ``True``, ``False`` or the path of a CA bundle file or directory.
    :param cert: a client certificate: one PEM path, or ``(cert_file, key_file)``.
    :param trust_env: whether proxies and the CA bundle may also come from the environment.
    """

    proxies: tuple[tuple[str, str], ...] = ()
    verify: bool | str = True
    cert: str | tuple[str, str] | None = None
    trust_env: bool = True

    def proxy_for(self, url: str) -> str | None:
        """The configured proxy for ``url`` (requests' ``select_proxy`` rules), else ``None``.

        ``None`` leaves the choice to the environment when ``trust_env`` is on.
        """
        if not self.proxies:
            return None
        parts = urlsplit(url)
        table = dict(self.proxies)
        host = parts.hostname
        keys = [parts.scheme, "all"] if host is None else [
            f"{parts.scheme}://{host}", parts.scheme, f"all://{host}", "all"]
        for key in keys:
            if table.get(key):
                return table[key]
        return None

    def requests_options(self) -> dict[str, Any]:
        """``proxies``, ``verify`` and ``cert`` for each ``requests`` call.

        Given per request (not only on the session), so that they win over the environment
        exactly as the async hook lets them win: requests lets ``REQUESTS_CA_BUNDLE`` and
        ``HTTPS_PROXY`` override session-level settings, but only fill the gaps of
        request-level ones.
        """
        return {"proxies": dict(self.proxies), "verify": self.verify, "cert": self.cert}

    def effective_verify(self, environ: Mapping[str, str] | None = None) -> bool | str:
        """What ``verify`` means for a call: the environment's CA bundle applies to ``True``.

        requests' rule (``trust_env`` on, ``verify`` true: ``REQUESTS_CA_BUNDLE``, then
        ``CURL_CA_BUNDLE``), so that the async hook trusts the same CAs as the sync one.
        """
        if self.verify is True and self.trust_env:
            env = os.environ if environ is None else environ
            for name in CA_BUNDLE_ENV:
                if env.get(name):
                    return env[name]
        return self.verify

    def secrets(self) -> list[str]:
        """Proxy passwords and the ``Proxy-Authorization`` values built from them (to mask)."""
        out: list[str] = []
        for _, url in self.proxies:
            parts = urlsplit(url)
            if parts.password:
                out.append(unquote(parts.password))
                _, header = split_proxy_credentials(url)
                if header:
                    out.append(header.split(" ", 1)[1])
        return out

    def check_files(self, environ: Mapping[str, str] | None = None) -> None:
        """Fail before any request when a CA bundle or client certificate path does not exist.

        requests would otherwise raise a bare ``OSError`` at the first call, aiohttp a
        ``FileNotFoundError`` when the session is built.
        """
        verify = self.effective_verify(environ)
        if isinstance(verify, str) and not os.path.exists(verify):
            env = os.environ if environ is None else environ
            named = [name for name in CA_BUNDLE_ENV if env.get(name) == verify and verify != self.verify]
            where = f"the environment's {named[0]}" if named else "connection extra verify"
            raise EngageLabValidationError(
                f"Invalid {where}={verify!r}: no such CA bundle file or directory"
            )
        for path in _cert_files(self.cert):
            if not os.path.isfile(path):
                raise EngageLabValidationError(
                    f"Invalid connection extra cert={path!r}: no such certificate or key file"
                )


def _cert_files(cert: str | tuple[str, str] | None) -> tuple[str, ...]:
    if cert is None:
        return ()
    return (cert,) if isinstance(cert, str) else cert


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for error messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.netloc.rsplit('@', 1)[1]}"
    return urlunsplit(parts._replace(netloc=netloc))


def split_proxy_credentials(url: str) -> tuple[str, str | None]:
    """``(proxy URL without user:password@, "Basic <token>" or None)``: aiohttp's form.

    aiohttp ignores credentials inside a proxy URL; requests sends them as
    ``Proxy-Authorization: Basic ...``, which is what this header is.
    """
    parts = urlsplit(url)
    if parts.username is None:
        return url, None
    bare = urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
    raw = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
    return bare, "Basic " + base64.b64encode(raw).decode("ascii")


def _default_ca_bundle() -> str | None:
    """The CA bundle requests trusts by default (certifi's), if installed."""
    try:
        import certifi
    except ImportError:  # pragma: no cover - requests depends on certifi
        return None
    return str(certifi.where())


def ssl_context(settings: TransportSettings, environ: Mapping[str, str] | None = None) -> ssl.SSLContext:
    """The client TLS context of ``settings`` (aiohttp's ``ssl=``), trusting what requests trusts.

    ``verify`` true: the public CAs (certifi's bundle, which requests uses, plus the system
    store) or the environment's bundle; a path: only that CA bundle (file or directory);
    false: no certificate or host name check. ``cert`` adds the client certificate.
    """
    verify = settings.effective_verify(environ)
    try:
        if verify is False:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif verify is True:
            context = ssl.create_default_context()
            bundle = _default_ca_bundle()
            if bundle:
                context.load_verify_locations(cafile=bundle)
        elif os.path.isdir(verify):
            context = ssl.create_default_context(capath=verify)
        else:
            context = ssl.create_default_context(cafile=verify)
    except (OSError, ssl.SSLError) as exc:
        raise EngageLabValidationError(
            f"Invalid connection extra verify={verify!r}: not a readable CA bundle ({exc})"
        ) from None
    if settings.cert is not None:
        certfile, keyfile = (settings.cert, None) if isinstance(settings.cert, str) else settings.cert
        try:
            context.load_cert_chain(certfile, keyfile)
        except (OSError, ssl.SSLError) as exc:
            raise EngageLabValidationError(
                f"Invalid connection extra cert={settings.cert!r}: not a readable PEM certificate "
                f"and key ({type(exc).__name__})"
            ) from None
    return context


# ------------------------------------------------------------------------------ parsing


def _flag(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _BOOLEANS:
        return _BOOLEANS[value.strip().lower()]
    return None


def _proxy_url(key: str, url: Any) -> str:
    rule = "must be a proxy URL such as http://proxy.example.com:3128"
    if not isinstance(url, str) or not url.strip():
        raise EngageLabValidationError(f"Invalid connection extra {key}: {rule}")
    text: str = url.strip()
    try:
        parts = urlsplit(text)
        _ = parts.port
    except ValueError:  # the URL is not shown: it may hold a password
        raise EngageLabValidationError(f"Invalid connection extra {key}: {rule}") from None
    if parts.scheme.lower() not in PROXY_SCHEMES or not parts.hostname:
        raise EngageLabValidationError(
            f"Invalid connection extra {key}={redact_url(text)!r}: {rule} "
            f"(scheme one of {', '.join(sorted(PROXY_SCHEMES))})"
        )
    return text


def _parse_proxies(key: str, value: Any) -> tuple[tuple[str, str], ...]:
    if value is None or value == "" or value == {}:
        return ()
    if isinstance(value, str):
        return (("all", _proxy_url(key, value)),)
    if not isinstance(value, Mapping):
        raise EngageLabValidationError(
            f"Invalid connection extra {key}: must be a proxy URL or an object such as "
            '{"https": "http://proxy:3128"}'
        )
    out = []
    for scheme, url in value.items():
        if not isinstance(scheme, str) or not scheme:
            raise EngageLabValidationError(f"Invalid connection extra {key}: keys must be URL schemes")
        if url is None or url == "":
            continue
        out.append((scheme, _proxy_url(f"{key}[{scheme!r}]", url)))
    return tuple(out)


def _parse_verify(key: str, value: Any) -> bool | str:
    if value is None or value == "":
        return True
    flag = _flag(value)
    if flag is not None:
        return flag
    if isinstance(value, str):
        return value.strip()
    raise EngageLabValidationError(
        f"Invalid connection extra {key}={value!r}: must be true, false or the path of a CA bundle"
    )


def _parse_cert(value: Any) -> str | tuple[str, str] | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value.strip()
    if (isinstance(value, (list, tuple)) and len(value) == 2
            and all(isinstance(v, str) and v.strip() for v in value)):
        return value[0].strip(), value[1].strip()
    raise EngageLabValidationError(
        "Invalid connection extra cert: must be the path of a PEM file holding certificate and key, "
        "or [certificate_path, key_path]"
    )


def _one_of(extras: Mapping[str, Any], first: str, alias: str) -> tuple[str, Any]:
    if first in extras and alias in extras:
        raise EngageLabValidationError(
            f"Invalid connection extras {first!r} and {alias!r}: give one of them (they mean the same)"
        )
    return (alias, extras[alias]) if alias in extras else (first, extras.get(first))


def parse_transport(extras: Mapping[str, Any] | None) -> TransportSettings:
    """Validate the transport extras; every rejection names the key (never a proxy password)."""
    extras = extras or {}
    proxies = _parse_proxies(*_one_of(extras, "proxies", "proxy"))
    verify = _parse_verify(*_one_of(extras, "verify", "verify_ssl"))
    trust_env = True
    if extras.get("trust_env") not in (None, ""):
        flag = _flag(extras["trust_env"])
        if flag is None:
            raise EngageLabValidationError(
                f"Invalid connection extra trust_env={extras['trust_env']!r}: must be true or false"
            )
        trust_env = flag
    return TransportSettings(proxies, verify, _parse_cert(extras.get("cert")), trust_env)
