""":class:`Sandbox`: the public face of the sandbox (lifecycle, controls, oracle)."""

from __future__ import annotations

import random
import ssl
from collections import deque
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any

from airflow_provider_engagelab.testing.sandbox.config import (
    SandboxConfig,
    coerce_config,
    today_midnight_utc,
)
from airflow_provider_engagelab.testing.sandbox.data import hour_limit
from airflow_provider_engagelab.testing.sandbox.faults import Fault
from airflow_provider_engagelab.testing.sandbox.rows import coerce_date, coerce_ids, detail_rows
from airflow_provider_engagelab.testing.sandbox.server import SandboxServer
from airflow_provider_engagelab.testing.sandbox.tables import PATH_BY_TYPE, TIME_UNITS


class Sandbox(SandboxServer):
    """A local EngageLab journey statistics API on a background thread.

    Use it as a context manager (``with Sandbox(...) as sb:``) or call :meth:`start` and
    :meth:`stop`. Keyword ``config`` arguments are :class:`SandboxConfig` fields.

    :param api_key: the API Key clients must send (Basic auth user name).
    :param api_secret: the API Secret (Basic auth password).
    :param port: the port to bind; 0 picks a free one.
    :param host: the address to bind (default ``127.0.0.1``).
    :param ssl_context: serve HTTPS with this server-side context (its certificate chain
        loaded), e.g. ``ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)`` with ``load_cert_chain``;
        ``None`` (default) serves plain HTTP.
    """

    def __init__(
        self,
        api_key: str = "sandbox-key",
        api_secret: str = "sandbox-secret",
        port: int = 0,
        host: str = "127.0.0.1",
        *,
        ssl_context: ssl.SSLContext | None = None,
        **config: Any,
    ) -> None:
        settings = coerce_config(SandboxConfig(), {"api_key": api_key, "api_secret": api_secret, **config})
        super().__init__(settings, host, port, ssl_context)

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- where and who -----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the server is serving."""
        return self._server is not None

    @property
    def host(self) -> str:
        """The bound host."""
        return self._host

    @property
    def port(self) -> int:
        """The bound port (the real one when constructed with ``port=0``)."""
        if self._server is None:
            raise RuntimeError("sandbox is not running")
        return int(self._server.server_address[1])

    @property
    def scheme(self) -> str:
        """``https`` when serving TLS (``ssl_context`` given), else ``http``."""
        return "http" if self._ssl_context is None else "https"

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (no trailing slash; ``https://`` with TLS)."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def api_key(self) -> str:
        """The API key (Basic auth user name)."""
        return self._config.api_key

    @property
    def api_secret(self) -> str:
        """The API secret (Basic auth password)."""
        return self._config.api_secret

    @property
    def auth(self) -> tuple[str, str]:
        """``(api_key, api_secret)``, e.g. for ``requests.get(..., auth=sb.auth)``."""
        return self._config.api_key, self._config.api_secret

    @property
    def config(self) -> SandboxConfig:
        """The current settings (an immutable snapshot)."""
        return self._config

    def airflow_connection(self, conn_type: str = "engagelab", **extra: Any) -> dict[str, Any]:
        """A connection dict for ``AIRFLOW_CONN_<ID>=json.dumps(...)`` pointing at this sandbox.

        Keyword arguments become the connection's Extra, e.g.
        ``sb.airflow_connection(max_retries=2, verify="/path/ca.pem")``; without any, the
        dict has no ``extra`` key.
        """
        conn: dict[str, Any] = {
            "conn_type": conn_type,
            "host": self.url,
            "login": self._config.api_key,
            "password": self._config.api_secret,
        }
        if extra:
            conn["extra"] = dict(extra)
        return conn

    # -- control -----------------------------------------------------------------------------

    def configure(self, **changes: Any) -> SandboxConfig:
        """Change settings at run time (any :class:`SandboxConfig` field); returns the result.

        Changing ``rate_limit`` or ``rate_burst`` refills the token bucket; giving ``seed``
        re-seeds the random fault generator; ``available_through=None`` restores the moving
        default (today 00:00 UTC).
        """
        with self._lock:
            new = coerce_config(self._config, changes)
            self._config = new
            if "seed" in changes:
                self._rng = random.Random(new.seed)
            if "log_size" in changes:
                self._log = deque(self._log, maxlen=new.log_size)
        if "rate_limit" in changes or "rate_burst" in changes:
            self._bucket.reset()
        return new

    def inject(self, *faults: Fault | str | Mapping[str, Any]) -> None:
        """Queue scripted faults; each API request consumes the oldest one."""
        parsed = [Fault.coerce(f) for f in faults]
        with self._lock:
            self._faults.extend(parsed)

    def clear_faults(self) -> None:
        """Drop scripted faults not consumed yet."""
        with self._lock:
            self._faults.clear()

    def pending_faults(self) -> list[Fault]:
        """Scripted faults not consumed yet, oldest first."""
        with self._lock:
            return list(self._faults)

    # -- oracle ------------------------------------------------------------------------------

    def expected_rows(
        self,
        stats_type: str,
        journey_ids: Iterable[int | str] | str | int,
        time_unit: str,
        start_date: date | datetime | str,
        end_date: date | datetime | str,
    ) -> list[dict[str, Any]]:
        """The flat rows a correct client must produce for this query, under current settings.

        One dict per journey x bucket (x component): ``journey_id``, ``time_unit``, then the
        detail fields in API order with API types; ordered by journey (first occurrence in
        ``journey_ids``), then time, then ``component_id``. Missing journeys and malformed IDs
        contribute no rows; the cutoff applies. Any number of IDs and any range length.
        """
        if stats_type not in PATH_BY_TYPE:
            raise ValueError(f"stats_type must be one of {sorted(PATH_BY_TYPE)}")
        tu = time_unit.upper()
        if tu not in TIME_UNITS:
            raise ValueError("time_unit must be HOUR or DAY")
        first = coerce_date(start_date, "start_date").toordinal()
        last = coerce_date(end_date, "end_date").toordinal()
        if last < first:
            raise ValueError("end_date is before start_date")
        cfg = self._config
        limit = hour_limit(cfg.available_through or today_midnight_utc())
        rows: list[dict[str, Any]] = []
        for jid in coerce_ids(journey_ids):
            if jid in cfg.missing_journeys:
                continue
            for d in detail_rows(stats_type, jid, tu, first, last, limit):
                rows.append({"journey_id": jid, "time_unit": tu, **d})
        return rows
