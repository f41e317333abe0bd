"""Turn the fields of an Airflow Connection into validated transport settings."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

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
