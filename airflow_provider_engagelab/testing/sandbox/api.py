"""The API's answers: authentication, parameter checks in the contract's order, and the body."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from airflow_provider_engagelab.testing.sandbox.config import SandboxConfig, today_midnight_utc
from airflow_provider_engagelab.testing.sandbox.data import hour_limit
from airflow_provider_engagelab.testing.sandbox.rows import detail_json, parse_journey_id, parse_wire_date
from airflow_provider_engagelab.testing.sandbox.tables import (
    MAX_JOURNEY_IDS,
    MAX_WINDOW_DAYS,
    MESSAGES,
    QUERY_PARAMETERS,
    TIME_UNITS,
)


@dataclass
class Answer:
    """One HTTP answer: status, a JSON-able payload or raw bytes, content type, headers."""

    status: int
    payload: Any = None  # a JSON-able object, or bytes sent verbatim
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> bytes:
        """The bytes sent."""
        if isinstance(self.payload, bytes):
            return self.payload
        return json.dumps(self.payload, separators=(",", ":")).encode()


def error(status: int, code: int, message: str | None = None) -> Answer:
    """A whole-call failure: ``{"code": code, "message": ...}``."""
    return Answer(status, {"code": code, "message": message or MESSAGES[code]})


def rate_limited(retry_after: int | None) -> Answer:
    """HTTP 429 / 55110, with ``Retry-After`` when given."""
    answer = error(429, 55110)
    if retry_after is not None:
        answer.headers["Retry-After"] = str(retry_after)
    return answer


class TokenBucket:
    """The rate limiter: ``rate`` tokens per second, at most ``burst`` saved up."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: float | None = None
        self._stamp = 0.0

    def reset(self) -> None:
        """Refill the bucket."""
        with self._lock:
            self._tokens = None

    def take(self, rate: float, burst: float) -> float:
        """Take a token; return 0.0 on success, else the seconds until one is available."""
        with self._lock:
            now = time.monotonic()
            if self._tokens is None:
                self._tokens = burst
            else:
                self._tokens = min(burst, self._tokens + (now - self._stamp) * rate)
            self._stamp = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return 0.0
            return (1.0 - self._tokens) / rate


def authorized(header: str | None, cfg: SandboxConfig) -> bool:
    """Whether an ``Authorization`` header carries the configured Basic credentials."""
    if not header:
        return False
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic" or not token:
        return False
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    expected = f"{cfg.api_key}:{cfg.api_secret}".encode()
    return hmac.compare_digest(decoded, expected)


def stats_answer(kind: str, query: str, cfg: SandboxConfig) -> Answer:
    """The answer to a well-authenticated GET of endpoint ``kind`` with raw query ``query``."""
    params = parse_qs(query, keep_blank_values=True)
    values: dict[str, str] = {}
    for name in QUERY_PARAMETERS:
        got = params.get(name)
        if not got or len(got) != 1 or got[0] == "":
            return error(400, 40001)
        values[name] = got[0]
    start = parse_wire_date(values["start_time"])
    end = parse_wire_date(values["end_time"])
    if start is None or end is None:
        return error(400, 40002)
    tu = values["time_unit"]
    if tu not in TIME_UNITS:
        return error(400, 50220)
    first, last = start.toordinal(), end.toordinal()
    if first > last or last - first + 1 > MAX_WINDOW_DAYS:
        return error(400, 50217)
    tokens = values["journey_id"].split(",")
    if len(tokens) > MAX_JOURNEY_IDS:
        return error(400, 50219)
    limit = hour_limit(cfg.available_through or today_midnight_utc())
    # The body is assembled from cached JSON fragments (one per journey-day): the hot path of
    # benchmarks. rows.detail_rows() renders the same rows as dicts for expected_rows().
    entries: list[str] = []
    seen: set[int] = set()
    for token in tokens:
        jid = parse_journey_id(token)
        if jid is None:
            entries.append(f'{{"journey_id":-1,"time_unit":"{tu}","error_code":50221}}')
            continue
        if jid in seen:
            continue
        seen.add(jid)
        if jid in cfg.missing_journeys:
            if cfg.missing_journey_mode == "whole_call":
                return error(400, 50202)
            entries.append(f'{{"journey_id":{jid},"time_unit":"{tu}","error_code":50202}}')
            continue
        detail = detail_json(kind, jid, tu, first, last, limit)
        entries.append(f'{{"journey_id":{jid},"time_unit":"{tu}","error_code":0,"detail":{detail}}}')
    body = '{"code":0,"message":"success","data":[' + ",".join(entries) + "]}"
    return Answer(200, body.encode())
