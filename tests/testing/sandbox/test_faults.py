"""sandbox/faults.py: random and scripted faults, and latency."""

from __future__ import annotations

import json
import time

import pytest
import requests

from airflow_provider_engagelab.testing.sandbox import FAULT_KINDS, Fault, Sandbox

from .helpers import CUTOFF, query


def _statuses(s: Sandbox, n: int) -> list[int]:
    return [query(s, end="2026-06-01").status_code for _ in range(n)]

def test_failure_rate_is_reproducible_with_a_seed():
    with Sandbox(available_through=CUTOFF, failure_rate=0.5, seed=7) as s:
        first = _statuses(s, 24)
        assert set(first) == {200, 500}
        assert s.counters()["faults"] == {"500": first.count(500)}
        r = None
        while r is None or r.status_code != 500:
            r = query(s, end="2026-06-01")
        assert r.json() == {"code": -1, "message": "Internal server error"}
        s.configure(seed=7)
        assert _statuses(s, 24) == first
        s.configure(seed=8)
        assert _statuses(s, 24) != first
    with Sandbox(available_through=CUTOFF, failure_rate=0.5, seed=7) as s:
        assert _statuses(s, 24) == first

def test_drop_hang_and_latency():
    with Sandbox(available_through=CUTOFF, drop_rate=1.0) as s:
        with pytest.raises(requests.ConnectionError):
            query(s)
        assert s.counters()["faults"] == {"drop": 1}
    with Sandbox(available_through=CUTOFF, hang_rate=1.0, hang_seconds=1.0) as s:
        with pytest.raises(requests.ReadTimeout):
            query(s, timeout=0.2)
        assert s.counters()["faults"] == {"hang": 1}
    with Sandbox(available_through=CUTOFF, latency=0.2) as s:
        started = time.perf_counter()
        assert query(s).status_code == 200
        assert time.perf_counter() - started >= 0.2

def test_scripted_status_faults(sb):
    sb.inject(
        Fault("500"),
        Fault("500", status=503),
        Fault("429", retry_after=300),
        Fault("429"),
        Fault("html"),
        Fault("empty"),
        Fault("code_in_200"),
        Fault("code_in_200", code=50202),
    )
    r = query(sb)
    assert r.status_code == 500 and r.json() == {"code": -1, "message": "Internal server error"}
    assert query(sb).status_code == 503
    r = query(sb)
    assert r.status_code == 429 and r.headers["Retry-After"] == "300"
    assert r.json()["code"] == 55110
    r = query(sb)
    assert r.status_code == 429 and "Retry-After" not in r.headers
    r = query(sb)
    assert r.status_code == 502
    assert r.headers["Content-Type"].startswith("text/html")
    assert r.content.startswith(b"<html>")
    r = query(sb)
    assert r.status_code == 200 and r.content == b""
    r = query(sb)
    assert r.status_code == 200 and r.json() == {"code": 50217, "message": "Invalid time range."}
    r = query(sb)
    assert r.status_code == 200
    assert r.json() == {"code": 50202, "message": "Journey does not exist."}
    assert query(sb).status_code == 200  # the queue is empty again
    assert sb.counters()["faults"] == {"500": 2, "429": 2, "html": 1, "empty": 1, "code_in_200": 2}

def test_scripted_drop_and_hang(sb):
    sb.inject(Fault("drop"), Fault("hang", seconds=0.3))
    with pytest.raises(requests.ConnectionError):
        query(sb)
    started = time.perf_counter()
    r = query(sb)
    assert time.perf_counter() - started >= 0.3
    assert r.status_code == 200 and r.json()["code"] == 0

def test_scripted_truncated_missing_journey_and_bad_field(sb):
    full = query(sb, journey_id="1,2,3").content
    sb.inject(
        "truncated",
        {"kind": "missing_journey"},
        Fault("bad_field"),
        Fault("bad_field", field="entry_count", value="12"),
        Fault("bad_field", field="journey_id", value=None),
    )
    r = query(sb, journey_id="1,2,3")
    assert r.status_code == 200
    assert 0 < len(r.content) < len(full) and full.startswith(r.content)
    with pytest.raises(ValueError):
        json.loads(r.content)
    r = query(sb, journey_id="1,2,3")
    assert [e["journey_id"] for e in r.json()["data"]] == [1, 2]
    rows = query(sb, journey_id="1,2,3").json()["data"][0]["detail"]
    assert "entry_count" not in rows[0] and "entry_count" in rows[1]
    rows = query(sb, journey_id="1,2,3").json()["data"][0]["detail"]
    assert rows[0]["entry_count"] == "12"
    data = query(sb, journey_id="1,2,3").json()["data"]
    assert data[0]["journey_id"] is None and data[1]["journey_id"] == 2
    assert query(sb, journey_id="1,2,3").content == full

def test_scripted_faults_come_before_auth_and_rate_limit():
    with Sandbox(available_through=CUTOFF, rate_limit=1) as s:
        s.inject("500", "500")
        assert query(s, auth=None).status_code == 500
        assert query(s).status_code == 500
        assert query(s).status_code == 200  # the bucket was untouched by the scripted faults
        assert query(s).status_code == 429

def test_fault_objects():
    assert Fault.coerce("drop") == Fault("drop")
    assert Fault.coerce({"kind": "429", "retry_after": 3}) == Fault("429", retry_after=3)
    assert Fault("429", retry_after=3).to_dict() == {"kind": "429", "retry_after": 3}
    assert Fault.coerce(Fault("hang")) == Fault("hang")
    with pytest.raises(ValueError):
        Fault("nope")
    with pytest.raises(ValueError):
        Fault.coerce({"kind": "500", "colour": "red"})
    assert "bad_field" in FAULT_KINDS and len(FAULT_KINDS) == 10
    s = Sandbox()
    s.inject("500", Fault("drop"))
    assert s.pending_faults() == [Fault("500"), Fault("drop")]
    s.clear_faults()
    assert s.pending_faults() == []
