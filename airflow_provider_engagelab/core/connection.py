"""Turn the fields of an Airflow Connection into validated transport settings."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from airflow_provider_engagelab.core.settings import (
    ConnectionSettings,
    base_url,
    check_credentials,
    parse_settings,
)
from airflow_provider_engagelab.core.transport import TransportSettings, parse_transport


@dataclass(frozen=True)
class ResolvedConnection:
    """Validated base URL, credentials, tuning and transport settings of one Connection."""

    base_url: str
    api_key: str
    api_secret: str = field(repr=False)
    settings: ConnectionSettings = field(default_factory=ConnectionSettings)
    transport: TransportSettings = field(default_factory=TransportSettings)

    @property
    def basic_token(self) -> str:
        """The base64 ``key:secret`` token of the Authorization header (a secret too)."""
        raw = f"{self.api_key}:{self.api_secret}".encode()
        return base64.b64encode(raw).decode("ascii")


def resolve_connection(
    *,
    host: str | None,
    schema: str | None,
    port: int | None,
    login: str | None,
    password: str | None,
    extra: Mapping[str, Any] | None,
) -> ResolvedConnection:
    """Validate the Connection's fields; errors name the field and the rule."""
    url = base_url(host, schema, port)
    key, secret = check_credentials(login, password)
    return ResolvedConnection(url, key, secret, parse_settings(extra), parse_transport(extra))


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a JSON boolean"
    if isinstance(value, (int, float)):
        return "a JSON number"
    if isinstance(value, list):
        return "a JSON array"
    if isinstance(value, str):
        return "a JSON string"
    return "no JSON object"


def refused_env_extra(conn_id: str, environ: Mapping[str, str]) -> str | None:
    """Why Airflow called a Connection defined in the environment "not defined", if we can tell.

    Airflow 3.0 and 3.1 refuse to build a Connection whose Extra is not a JSON object, log the
    reason at debug level only and then report the conn_id as not defined. When
    ``AIRFLOW_CONN_<CONN_ID>`` (JSON or URI form) holds such an Extra, this returns the message
    Airflow 3.2+ users get from the hook; otherwise ``None``. The message names the variable and
    the kind of value, never the value (the variable holds the API secret).
    """
    name = f"AIRFLOW_CONN_{conn_id.upper()}"
    raw = (environ.get(name) or "").strip()
    if not raw:
        return None
    if raw.startswith("{"):
        try:
            conn = json.loads(raw)
        except ValueError:
            return None
        extra = conn.get("extra") if isinstance(conn, dict) else None
    else:
        found = parse_qs(urlsplit(raw).query).get("__extra__")
        extra = found[0] if found else None
    if isinstance(extra, str):
        try:
            extra = json.loads(extra)
        except ValueError:
            kind = "text that is not JSON"
        else:
            kind = _json_kind(extra)
    else:
        kind = _json_kind(extra)
    if extra is None or isinstance(extra, dict):
        return None
    return (
        f"Invalid connection extra: must be a JSON object ({name} gives {kind}; "
        f"Airflow before 3.2 refuses such a Connection and reports conn_id {conn_id!r} as not defined)"
    )
