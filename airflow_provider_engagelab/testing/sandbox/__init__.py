"""A local EngageLab-compatible journey statistics API, for demos, end-to-end tests and benchmarks.

Standard library only; it imports neither Airflow nor the rest of this provider: it is an
independent model of the upstream contract (``shared/engagelab-ma-stats-api.md``), so a bug in
the provider's own validation or parsing cannot hide behind a shared helper.

Quick start::

    from airflow_provider_engagelab.testing.sandbox import Sandbox, Fault

    with Sandbox(rate_limit=20) as sb:            # binds 127.0.0.1 on a free port
        sb.url                                      # "http://127.0.0.1:<port>"
        sb.inject(Fault("500"), Fault("429", retry_after=300))
        rows = sb.expected_rows("journey", [1, 2], "DAY", "2026-06-01", "2026-06-07")

or from a shell (prints the URL alone on the first line, serves until SIGINT/SIGTERM)::

    python -m airflow_provider_engagelab.testing.sandbox --port 8080 --rate-limit 20

Over HTTPS: ``Sandbox(ssl_context=context)`` with a server-side ``ssl.SSLContext`` holding
the certificate chain (``--certfile cert.pem --keyfile key.pem`` from a shell); ``url`` then
starts with ``https://``. Clients trust it with the CA that signed the certificate (the
connection extra ``verify=<CA bundle path>``); ``airflow_connection(**extra)`` gives the
Airflow Connection with such extras.

Endpoints (``GET``, HTTP Basic auth ``api_key:api_secret``)
    ``/v1/stats/journey``, ``/v1/stats/journey/message``, ``/v1/stats/journey/webhook`` with
    the required query parameters ``journey_id`` (comma-separated), ``time_unit``
    (``HOUR``/``DAY``, exact upper case), ``start_time`` and ``end_time`` (``yyyy-MM-dd``).

Interpretations of points the contract leaves open (all documented here on purpose)
    * Order of work for an API request: ``latency`` sleep, scripted fault (see
      :class:`Fault`), rate limit
      (429/55110), authentication (401/40050), path (404/40001), method (405/40001), random
      faults (``drop_rate``, ``failure_rate``, ``hang_rate``), then the parameters in this
      order: a missing, empty or repeated parameter -> 400/40001; a date that is not a real
      ``yyyy-MM-dd`` date -> 400/40002; ``time_unit`` not exactly ``HOUR``/``DAY`` ->
      400/50220; ``start_time > end_time`` or a window longer than 31 days -> 400/50217;
      more than 100 comma-separated IDs (counted as given, duplicates and malformed ones
      included) -> 400/50219.
    * "At most 31 days between start and end" is read as a window of at most 31 calendar days
      *inclusive*: ``2026-01-01..2026-01-31`` is accepted, ``2026-01-01..2026-02-01`` is
      50217.
    * A journey ID is well formed when it consists of ASCII digits only (no sign, no
      whitespace), is positive and fits a signed 64-bit long. A malformed ID is answered with
      ``{"journey_id": -1, "time_unit": ..., "error_code": 50221}`` at its position inside a
      code-0 envelope (no ``detail`` key). A repeated well-formed ID is answered once, at its
      first position.
    * Every positive ID exists except those in ``missing_journeys``. A missing journey is, by
      default (``missing_journey_mode="per_journey"``), answered with
      ``{"journey_id": id, "time_unit": ..., "error_code": 50202}``; with
      ``missing_journey_mode="whole_call"`` the whole call fails with HTTP 400
      ``{"code": 50202, "message": "Journey does not exist."}``.
    * Buckets are UTC. The data is available before the instant ``available_through``
      (default: ``None`` = *today 00:00 UTC, evaluated at each request*, i.e. through the end
      of yesterday). An HOUR bucket is returned only if its start is before the cutoff. A DAY
      bucket is returned if at least its first hour is available; its counts are then summed
      over the available hours only (a partial day), and ``in_progress_count`` (a level, not
      a flow) is the value of the day's last available hour. Buckets entirely after the
      cutoff produce no rows (the journey still answers with ``error_code`` 0 and an empty
      ``detail``). A plain date given as ``available_through`` means 00:00 UTC of that date;
      a naive datetime is taken as UTC.
    * Data is deterministic: every number derives from a 64-bit splitmix hash of integers
      (journey, component, day or hour index); Python's per-process hash seed is never
      involved. A day's totals come from the hash of (journey, component, day) and are split
      over its 24 hours by hashed hourly weights with exact integer allocation, each funnel
      stage capped by the previous stage's hourly values. So each DAY row equals the sum of
      its 24 HOUR rows for every flow count and for ``revenue_amount`` (hourly amounts are
      whole cents, so sums are exact), and a full DAY answer costs O(1) per journey-day
      without generating hours. Funnels hold per row:
      ``conversion + completion + early_exit <= entry`` (journey),
      ``revenue <= conversion <= click <= open <= impression <= delivery <= send <= plan
      <= entry`` (message), ``send + send_failure == entry`` (webhook). About 1 hour in 32 is
      all zero. Each journey has 1-3 message components (``component_id = journey_id * 100 +
      k``, names ``EMAIL_k``, ``APP_PUSH_k``, ``SMS_k``, ``WEBPUSH_k`` ...) and 1-2 webhook
      components (``component_id = journey_id * 100 + 50 + k``, names ``WEBHOOK_k``).
    * Rate limit: a token bucket of ``rate_limit`` requests/second (``None`` = unlimited) and
      burst ``rate_burst`` (default ``max(1, rate_limit)``), shared by all API requests. Over
      it: HTTP 429 ``{"code": 55110, ...}`` with ``Retry-After: <seconds until a token,
      rounded up, at least 1>`` when ``send_retry_after`` is true, or ``retry_after_override``
      verbatim when that is set.
    * The admin interface needs no credentials but only answers loopback clients (403
      otherwise), and is not counted in :meth:`Sandbox.counters`: ``GET /_admin/health``,
      ``GET /_admin/counters`` (``by_status`` keys become strings in JSON, ``log`` entries
      lists), ``GET /_admin/config``, ``POST /_admin/config`` (a JSON object of
      :class:`SandboxConfig` fields, e.g. ``{"available_through": "2026-06-02T00:00:00Z",
      "rate_limit": 5}``; answers the new config), ``POST /_admin/reset`` (zero the counters,
      drop queued faults, refill the rate bucket), ``POST /_admin/inject`` (a JSON list of
      faults, or ``{"faults": [...]}``; see :class:`Fault`).

The package: :mod:`.tables` (the contract and the data's constants), :mod:`.data` (the
deterministic numbers), :mod:`.rows` (one renderer for the endpoint's JSON and the oracle's
dicts), :mod:`.config` (settings and their rules), :mod:`.faults`, :mod:`.api` (the answers),
:mod:`.server` (HTTP and the request pipeline), :mod:`.admin`, :mod:`.service`
(:class:`Sandbox`) and :mod:`.cli`.
"""

from __future__ import annotations

from airflow_provider_engagelab.testing.sandbox.cli import main
from airflow_provider_engagelab.testing.sandbox.config import SandboxConfig
from airflow_provider_engagelab.testing.sandbox.faults import FAULT_KINDS, REMOVE, Fault
from airflow_provider_engagelab.testing.sandbox.service import Sandbox
from airflow_provider_engagelab.testing.sandbox.tables import ADMIN_PATHS, DETAIL_FIELDS, ENDPOINTS

__all__ = [
    "ADMIN_PATHS",
    "DETAIL_FIELDS",
    "ENDPOINTS",
    "FAULT_KINDS",
    "REMOVE",
    "Fault",
    "Sandbox",
    "SandboxConfig",
    "main",
]
