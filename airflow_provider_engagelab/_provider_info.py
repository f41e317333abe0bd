"""Provider metadata: modules, connection type and its form (Airflow 3.2+ builds the form
from ``conn-fields`` and ``ui-field-behaviour`` here).

Airflow reads this while it initialises itself: it must import nothing from Airflow or from
modules that do (the exceptions do).
"""

from __future__ import annotations

import copy
from typing import Any

from airflow_provider_engagelab.core.defaults import (
    DEFAULT_HOST,
    DEFAULT_MAX_CONCURRENT_REQUESTS,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MAX_RETRY_WAIT,
    DEFAULT_TIMEOUT,
)

#: How the Connection form shows the standard fields.
UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["schema", "port"],
    "relabeling": {"login": "API Key", "password": "API Secret"},
    "placeholders": {
        "host": DEFAULT_HOST,
        "login": "API Key of the EngageLab API data source",
        "password": "API Secret of the EngageLab API data source",
    },
}

CONN_FIELDS: dict[str, Any] = {
    "timeout": {
        "label": "Request timeout (seconds)",
        "schema": {"type": ["number", "null"], "default": DEFAULT_TIMEOUT, "minimum": 0.001},
        "description": "Seconds to wait for the connection and for each read of a response.",
    },
    "max_retries": {
        "label": "Max retries",
        "schema": {"type": ["integer", "null"], "default": DEFAULT_MAX_RETRIES, "minimum": 0},
        "description": "Retries of a call after 429, 5xx, timeouts or dropped connections.",
    },
    "max_retry_wait": {
        "label": "Max retry wait (seconds)",
        "schema": {"type": ["number", "null"], "default": DEFAULT_MAX_RETRY_WAIT, "minimum": 0},
        "description": "Cap of one wait between attempts, Retry-After included.",
    },
    "max_concurrent_requests": {
        "label": "Max concurrent requests",
        "schema": {"type": ["integer", "null"], "default": DEFAULT_MAX_CONCURRENT_REQUESTS, "minimum": 1},
        "description": "Requests one task keeps in flight at once.",
    },
    "requests_per_second": {
        "label": "Requests per second",
        "schema": {"type": ["number", "null"], "minimum": 0.001},
        "description": "Pace of one task's requests; empty for no pacing.",
    },
}


def provider_info(version: str) -> dict[str, Any]:
    """The dict returned by :func:`airflow_provider_engagelab.get_provider_info`."""
    return {
        "package-name": "airflow-provider-engagelab",
        "name": "EngageLab",
        "description": "Pull EngageLab Marketing Automation journey statistics on a schedule.",
        "versions": [version],
        "integrations": [
            {
                "integration-name": "EngageLab",
                "external-doc-url": "https://www.engagelab.com/docs/",
                "tags": ["service"],
            }
        ],
        "hooks": [
            {
                "integration-name": "EngageLab",
                "python-modules": ["airflow_provider_engagelab.hooks.engagelab"],
            }
        ],
        "connection-types": [
            {
                "hook-class-name": "airflow_provider_engagelab.hooks.engagelab.EngageLabHook",
                "hook-name": "EngageLab",
                "connection-type": "engagelab",
                "conn-fields": copy.deepcopy(CONN_FIELDS),
                "ui-field-behaviour": copy.deepcopy(UI_FIELD_BEHAVIOUR),
            }
        ],
    }
