"""Connection settings: base URL, credentials check and the optional tuning extras."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlparse

from airflow_provider_engagelab.core.defaults import (
    DEFAULT_HOST,
    DEFAULT_MAX_CONCURRENT_REQUESTS,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MAX_RETRY_WAIT,
    DEFAULT_TIMEOUT,
)
from airflow_provider_engagelab.core.transport import TRANSPORT_KEYS
from airflow_provider_engagelab.exceptions import EngageLabValidationError

#: Connection extras the provider reads itself (never sent as HTTP headers).
TUNING_KEYS = (
    "timeout",
    "max_retries",
    "max_retry_wait",
    "max_concurrent_requests",
    "requests_per_second",
)

#: Every extra key the connection accepts (transport keys: :mod:`core.transport`). Anything
#: else is refused: HttpHook would send it as an HTTP header, which turns a typo such as
#: ``max_retires`` into a silent no-op.
ALLOWED_EXTRAS = frozenset(TUNING_KEYS + TRANSPORT_KEYS)


@dataclass(frozen=True)
class ConnectionSettings:
    """Transport tuning read from the Connection's Extra (all optional).

    :param timeout: seconds to wait for connect and for each read of a response.
    :param max_retries: retries after the first attempt for retryable failures
        (429/55110, 5xx/-1, timeouts, dropped connections, truncated bodies).
    :param max_retry_wait: cap in seconds of one wait between attempts, ``Retry-After``
        included.
    :param max_concurrent_requests: requests of one task in flight at once.
    :param requests_per_second: pace of one task's requests; ``None`` = unpaced.
    """

    timeout: float = DEFAULT_TIMEOUT
    max_retries: int = DEFAULT_MAX_RETRIES
    max_retry_wait: float = DEFAULT_MAX_RETRY_WAIT
    max_concurrent_requests: int = DEFAULT_MAX_CONCURRENT_REQUESTS
    requests_per_second: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return asdict(self)


def _number(extras: Mapping[str, Any], key: str, default: Any, *, integer: bool,
            minimum: float, maximum: float, allow_none: bool = False) -> Any:
    value = extras.get(key)
    if value is None or value == "":
        return default
    rule = f"must be {'an integer' if integer else 'a number'} from {minimum:g} to {maximum:g}"
    if allow_none:
        rule += " (or empty for no limit)"
    if isinstance(value, bool):
        raise EngageLabValidationError(f"Invalid connection extra {key}={value!r}: {rule}")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise EngageLabValidationError(f"Invalid connection extra {key}={value!r}: {rule}") from None
    if not minimum <= number <= maximum or (integer and number != int(number)):  # NaN fails too
        raise EngageLabValidationError(f"Invalid connection extra {key}={value!r}: {rule}")
    return int(number) if integer else number


def parse_settings(extras: Mapping[str, Any] | None) -> ConnectionSettings:
    """Validate the tuning extras; every rejection names the key and the rule."""
    extras = extras or {}
    if not isinstance(extras, Mapping):
        raise EngageLabValidationError("Invalid connection extra: must be a JSON object")
    unknown = sorted(str(k) for k in extras if k not in ALLOWED_EXTRAS)
    if unknown:
        raise EngageLabValidationError(
            f"Invalid connection extra {unknown[0]!r}: unknown key; the EngageLab connection "
            f"takes {', '.join(TUNING_KEYS)} (and HTTP transport keys {', '.join(TRANSPORT_KEYS)})"
        )
    d = ConnectionSettings()
    return ConnectionSettings(
        timeout=_number(extras, "timeout", d.timeout, integer=False, minimum=0.001, maximum=3600),
        max_retries=_number(extras, "max_retries", d.max_retries, integer=True, minimum=0, maximum=100),
        max_retry_wait=_number(extras, "max_retry_wait", d.max_retry_wait, integer=False, minimum=0,
                               maximum=3600),
        max_concurrent_requests=_number(
            extras, "max_concurrent_requests", d.max_concurrent_requests, integer=True, minimum=1,
            maximum=256,
        ),
        requests_per_second=_number(
            extras, "requests_per_second", d.requests_per_second, integer=False, minimum=0.001,
            maximum=10000, allow_none=True,
        ),
    )


def base_url(host: str | None, schema: str | None = None, port: int | None = None) -> str:
    """The API base URL from the Connection's host (default: EngageLab's Singapore host).

    The scheme comes from the host (``https://...``) or, for connection URIs, from the
    schema field (``https``/``http``). A host without either is rejected rather than sent
    in clear text by guess.
    """
    host = (host or "").strip() or DEFAULT_HOST
    if "://" not in host:
        scheme = (schema or "").strip().lower()
        if scheme not in ("http", "https"):
            raise EngageLabValidationError(
                f"Invalid connection host={host!r}: must start with https:// "
                "(e.g. https://ma-api.engagelab.com), or http:// for a local sandbox"
            )
        host = f"{scheme}://{host}"
    parsed = urlparse(host)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise EngageLabValidationError(
            f"Invalid connection host={host!r}: must be an http(s) URL with a host name"
        )
    if parsed.username is not None or parsed.password is not None:
        raise EngageLabValidationError(
            "Invalid connection host: must not contain user:password@; put the API Key in Login "
            "and the API Secret in Password"
        )
    if parsed.query or parsed.fragment or parsed.params:
        raise EngageLabValidationError(
            f"Invalid connection host={host!r}: must be a base URL without ?query or #fragment"
        )
    try:
        _ = parsed.port
    except ValueError:
        raise EngageLabValidationError(
            f"Invalid connection host={host!r}: the port must be a number from 1 to 65535"
        ) from None
    if port is not None and not 0 <= port <= 65535:
        raise EngageLabValidationError(f"Invalid connection port={port!r}: must be from 1 to 65535")
    if port and not parsed.port:
        host = f"{parsed.scheme}://{parsed.netloc}:{port}{parsed.path}"
    return host.rstrip("/")


def check_credentials(login: str | None, password: str | None) -> tuple[str, str]:
    """Both API Key (login) and API Secret (password) are required."""
    if not login or not login.strip():
        raise EngageLabValidationError(
            "Invalid connection login (API Key): must not be empty; set it to the project's API Key"
        )
    if not password:
        raise EngageLabValidationError(
            "Invalid connection password (API Secret): must not be empty; set it to the API Secret"
        )
    return login.strip(), password
