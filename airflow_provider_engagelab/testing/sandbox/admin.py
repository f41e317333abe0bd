"""The admin interface (``/_admin/...``): no credentials, loopback clients only, not counted.

``GET /_admin/health``, ``GET /_admin/counters``, ``GET``/``POST /_admin/config``,
``POST /_admin/reset``, ``POST /_admin/inject``; see the package docstring.
"""

from __future__ import annotations

import json
from typing import Any

from airflow_provider_engagelab.testing.sandbox.api import Answer
from airflow_provider_engagelab.testing.sandbox.tables import ADMIN_PATHS


def _inject(sandbox: Any, body: Any) -> Answer:
    items = body.get("faults") if isinstance(body, dict) else body
    if isinstance(items, str | dict):
        items = [items]
    if not isinstance(items, list):
        return Answer(400, {"error": "expected a list of faults"})
    sandbox.inject(*items)
    return Answer(200, {"pending_faults": [f.to_dict() for f in sandbox.pending_faults()]})


def _configure(sandbox: Any, body: Any) -> Answer:
    if not isinstance(body, dict):
        return Answer(400, {"error": "expected a JSON object of settings"})
    return Answer(200, sandbox.configure(**body).to_dict())


def _reset(sandbox: Any, body: Any) -> Answer:
    sandbox.reset_counters()
    sandbox.clear_faults()
    sandbox._bucket.reset()
    return Answer(200, sandbox.counters())


#: (method, path) -> handler(sandbox, JSON body) -> answer.
ROUTES = {
    ("GET", "/_admin/health"): lambda sandbox, body: Answer(200, {"status": "ok"}),
    ("GET", "/_admin/counters"): lambda sandbox, body: Answer(200, sandbox.counters()),
    ("GET", "/_admin/config"): lambda sandbox, body: Answer(200, sandbox.config.to_dict()),
    ("POST", "/_admin/config"): _configure,
    ("POST", "/_admin/reset"): _reset,
    ("POST", "/_admin/inject"): _inject,
}


def answer(sandbox: Any, method: str, path: str, raw_body: bytes, loopback: bool) -> Answer:
    """The answer to an admin request (a :class:`~.service.Sandbox` is ``sandbox``)."""
    if not loopback:
        return Answer(403, {"error": "the admin interface answers loopback clients only"})
    try:
        body = json.loads(raw_body) if raw_body.strip() else None
    except ValueError:
        return Answer(400, {"error": "the body is not JSON"})
    route = ROUTES.get((method, path))
    if route is not None:
        try:
            return route(sandbox, body)
        except (TypeError, ValueError) as exc:
            return Answer(400, {"error": str(exc)})
    if path in ADMIN_PATHS:
        return Answer(405, {"error": f"{method} not allowed on {path}"})
    return Answer(404, {"error": f"unknown admin path {path}", "paths": list(ADMIN_PATHS)})
