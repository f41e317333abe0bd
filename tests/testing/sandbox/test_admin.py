"""sandbox/admin.py: the loopback-only admin interface."""

from __future__ import annotations

from .helpers import admin, query


def test_admin_interface(sb):
    assert admin(sb, "GET", "health").json() == {"status": "ok"}
    query(sb)
    c = admin(sb, "GET", "counters").json()
    assert c["requests"] == 1 and c["by_status"] == {"200": 1}

    r = admin(sb, "POST", "config", {"rate_limit": 1, "missing_journeys": [5], "latency": 0})
    assert r.status_code == 200
    assert r.json()["rate_limit"] == 1.0 and r.json()["missing_journeys"] == [5]
    assert sb.config.missing_journeys == frozenset({5})
    assert query(sb, journey_id="5").json()["data"][0]["error_code"] == 50202
    assert query(sb).status_code == 429
    assert admin(sb, "GET", "config").json()["rate_limit"] == 1.0

    bad = admin(sb, "POST", "config", {"failure_rate": 2})
    assert bad.status_code == 400 and "failure_rate" in bad.json()["error"]
    assert admin(sb, "POST", "config", {"no_such_setting": 1}).status_code == 400
    assert admin(sb, "POST", "config", [1, 2]).status_code == 400

    sb.configure(rate_limit=None)
    r = admin(sb, "POST", "inject", ["500", {"kind": "429", "retry_after": 7}])
    assert r.status_code == 200
    assert r.json()["pending_faults"] == [{"kind": "500"}, {"kind": "429", "retry_after": 7}]
    assert query(sb).status_code == 500
    assert query(sb).headers["Retry-After"] == "7"
    assert admin(sb, "POST", "inject", {"faults": ["drop"]}).status_code == 200
    assert admin(sb, "POST", "inject", [{"kind": "bogus"}]).status_code == 400

    r = admin(sb, "POST", "reset")
    assert r.status_code == 200 and r.json()["requests"] == 0
    assert r.json()["pending_faults"] == 0
    assert query(sb).status_code == 200  # the queued drop was cleared
    assert admin(sb, "GET", "nope").status_code == 404
    assert admin(sb, "GET", "reset").status_code == 405
