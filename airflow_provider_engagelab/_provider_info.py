"""Provider metadata: modules, connection type and its form (Airflow 3.2+ builds the form
from ``conn-fields`` and ``ui-field-behaviour`` here; Airflow 3.0 and 3.1 ask the hook's
``get_ui_field_behaviour`` and ``get_connection_form_widgets``, which are derived from the same
two dicts below by :func:`hook_ui_field_behaviour` and :func:`hook_form_widgets`).

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


def hook_ui_field_behaviour() -> dict[str, Any]:
    """:data:`UI_FIELD_BEHAVIOUR` in the form ``Hook.get_ui_field_behaviour`` must return.

    Airflow before 3.2 validates it against ``customized_form_field_behaviours.schema.json``,
    which wants snake_case keys (``hidden_fields``), not provider.yaml's kebab-case.
    """
    return {
        "hidden_fields": list(UI_FIELD_BEHAVIOUR["hidden-fields"]),
        "relabeling": dict(UI_FIELD_BEHAVIOUR["relabeling"]),
        "placeholders": dict(UI_FIELD_BEHAVIOUR["placeholders"]),
    }


def hook_form_widgets() -> dict[str, Any]:
    """:data:`CONN_FIELDS` as WTForms fields, for ``Hook.get_connection_form_widgets``.

    Airflow 3.0/3.1 build the extra fields of the Connection form from these (the API server
    converts them to JSON-schema params; Airflow 3.2+ reads ``conn-fields`` instead and never
    calls this). Airflow only allows String/Integer/Password/Boolean fields, so numbers that
    may be fractional are text fields; the hook parses both forms.
    """
    from wtforms import IntegerField, StringField
    from wtforms.validators import Optional

    widgets: dict[str, Any] = {}
    for key, spec in CONN_FIELDS.items():
        schema = spec["schema"]
        integer = "integer" in schema["type"]
        default = schema.get("default")
        if default is not None and not integer:
            default = f"{default:g}"
        field_class = IntegerField if integer else StringField
        widgets[key] = field_class(
            spec["label"], validators=[Optional()], description=spec["description"], default=default
        )
    return widgets


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
        "operators": [
            {
                "integration-name": "EngageLab",
                "python-modules": ["airflow_provider_engagelab.operators.engagelab"],
            }
        ],
        "sensors": [
            {
                "integration-name": "EngageLab",
                "python-modules": ["airflow_provider_engagelab.sensors.engagelab"],
            }
        ],
        "triggers": [
            {
                "integration-name": "EngageLab",
                "python-modules": ["airflow_provider_engagelab.triggers.engagelab"],
            }
        ],
        "transfers": [
            {
                "source-integration-name": "EngageLab",
                "target-integration-name": "Common SQL",
                "python-module": "airflow_provider_engagelab.transfers.engagelab_to_sql",
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
