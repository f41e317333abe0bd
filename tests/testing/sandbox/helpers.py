"""What the sandbox tests share: the contract's field lists (restated) and small HTTP helpers."""

from __future__ import annotations

from datetime import timezone
from pathlib import Path

import requests

from airflow_provider_engagelab.testing.sandbox import Sandbox

UTC = timezone.utc
REPO_ROOT = Path(__file__).resolve().parents[3]
CUTOFF = "2026-06-10T00:00:00+00:00"
PATHS = {
    "journey": "/v1/stats/journey",
    "message": "/v1/stats/journey/message",
    "webhook": "/v1/stats/journey/webhook",
}
FLOW_FIELDS = {
    "journey": ("entry_count", "conversion_count", "completion_count", "early_exit_count"),
    "message": (
        "entry_count",
        "plan_count",
        "send_count",
        "delivery_count",
        "impression_count",
        "open_count",
        "click_count",
        "conversion_count",
        "revenue_count",
    ),
    "webhook": ("entry_count", "send_count", "send_failure_count"),
}
API_FIELDS = {
    "journey": [
        "time",
        "entry_count",
        "conversion_count",
        "completion_count",
        "early_exit_count",
        "in_progress_count",
    ],
    "message": [
        "component_id",
        "component_name",
        "channel",
        "time",
        "entry_count",
        "plan_count",
        "send_count",
        "delivery_count",
        "impression_count",
        "open_count",
        "click_count",
        "conversion_count",
        "revenue_count",
        "revenue_amount",
    ],
    "webhook": [
        "component_id",
        "component_name",
        "time",
        "entry_count",
        "send_count",
        "send_failure_count",
    ],
}


def query(
    sb: Sandbox,
    stats_type: str = "journey",
    journey_id: str = "123",
    time_unit: str = "DAY",
    start: str = "2026-06-01",
    end: str = "2026-06-07",
    auth: tuple[str, str] | None | bool = True,
    timeout: float = 10,
    **extra: str,
) -> requests.Response:
    params = {
        "journey_id": journey_id,
        "time_unit": time_unit,
        "start_time": start,
        "end_time": end,
    }
    params.update(extra)
    return requests.get(
        sb.url + PATHS[stats_type],
        params={k: v for k, v in params.items() if v is not None},
        auth=sb.auth if auth is True else (auth or None),
        timeout=timeout,
    )


def flatten(body: dict) -> list[dict]:
    rows = []
    for entry in body["data"]:
        if entry["error_code"] == 0:
            for d in entry["detail"]:
                rows.append(
                    {"journey_id": entry["journey_id"], "time_unit": entry["time_unit"], **d}
                )
    return rows


def fetch_rows(sb: Sandbox, stats_type: str, ids, time_unit: str, start: str, end: str) -> list:
    r = query(sb, stats_type, ",".join(map(str, ids)), time_unit, start, end)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["code"] == 0
    return flatten(body)


def admin(sb: Sandbox, method: str, path: str, payload=None) -> requests.Response:
    return requests.request(method, sb.url + "/_admin/" + path, json=payload, timeout=10)

