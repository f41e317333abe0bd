"""sandbox/rows.py: one renderer for the endpoint's JSON and the oracle's dicts."""

from __future__ import annotations

import json
import random
from datetime import date

import pytest

from airflow_provider_engagelab.testing.sandbox import Sandbox
from airflow_provider_engagelab.testing.sandbox import rows as sandbox_rows

from .helpers import API_FIELDS, fetch_rows


@pytest.mark.parametrize("stats_type", ["journey", "message", "webhook"])
@pytest.mark.parametrize("time_unit", ["DAY", "HOUR"])
def test_expected_rows_equals_the_endpoint(stats_type, time_unit):
    with Sandbox(available_through="2026-04-03T07:00:00Z", missing_journeys={999}) as s:
        ids = [3, "abc", 77, 3, 999, 1234567]
        got = fetch_rows(s, stats_type, ids, time_unit, "2026-04-01", "2026-04-05")
        want = s.expected_rows(stats_type, ids, time_unit, "2026-04-01", "2026-04-05")
        assert got == want
        assert [list(r) for r in got] == [
            ["journey_id", "time_unit", *API_FIELDS[stats_type]] for _ in got
        ]
        keys = [(r["journey_id"], r["time"], r.get("component_id", 0)) for r in want]
        order = {3: 0, 77: 1, 1234567: 2}
        assert keys == sorted(keys, key=lambda k: (order[k[0]], k[1], k[2]))
        assert {r["journey_id"] for r in want} == {3, 77, 1234567}
        assert max(r["time"] for r in want) < "2026-04-03 07"

@pytest.mark.parametrize("stats_type", ["journey", "message", "webhook"])
def test_row_text_is_the_json_of_the_row(stats_type):
    """The endpoint formats rows as text directly; it must be the JSON of the dict rows
    that ``expected_rows`` returns, for any journey, day and number of available hours."""
    rng = random.Random(stats_type)
    for _ in range(400):
        jid = rng.choice([rng.randint(1, 2000), rng.randint(1, 10**12), 2**63 - 1])
        day = date(2020, 1, 1).toordinal() + rng.randint(0, 3000)
        hours = rng.randint(1, 24)
        for day_mode in (True, False):
            rows = sandbox_rows.day_detail(stats_type, jid, day_mode, day, hours)
            text = sandbox_rows.day_detail(stats_type, jid, day_mode, day, hours, as_json=True)
            assert [json.loads(t) for t in text] == rows
            assert ",".join(text) == json.dumps(rows, separators=(",", ":"))[1:-1]
