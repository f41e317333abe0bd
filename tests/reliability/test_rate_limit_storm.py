"""Rate limits: ``Retry-After`` is capped; a storm longer than the budget fails clearly; retries resume.

* A ``Retry-After: 300`` (scripted, or the sandbox's rate limiter with
  ``retry_after_override=300``) is honoured only up to the connection's ``max_retry_wait``:
  every wait the hook asks for is recorded (its injectable ``sleep``) and the run's wall time
  is bounded far below one such wait.
* A storm that outlasts ``max_retries`` fails the task with an ``EngageLabRateLimitError``
  saying it gave up after N attempts and how to avoid it; nothing is written.
* The task's next attempt, in-process and through Airflow's own task retry (``dag.test()``
  with ``retries=1``), writes the complete, correct set of files (byte-identical to an
  undisturbed run).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from reliability_helpers import (
    RecordingSleep,
    conn_dict,
    digests_under,
    files_under,
    leaks,
    plain_text,
    read_jsonl_rows,
    record_hook_sleeps,
    set_conn,
    sort_rows,
    without_mask_echo,
)

from airflow_provider_engagelab.exceptions import EngageLabRateLimitError
from airflow_provider_engagelab.hooks.engagelab import EngageLabHook
from airflow_provider_engagelab.operators.engagelab import EngageLabStatsOperator
from airflow_provider_engagelab.testing.sandbox import Fault

CAP = 0.3  # max_retry_wait of these tests, in seconds
PASS = Fault("hang", seconds=0)  # a no-op fault: lets one request through untouched


def test_a_retry_after_of_five_minutes_waits_only_the_cap(sb, monkeypatch):
    set_conn(monkeypatch, sb, max_retries=3, max_retry_wait=CAP)
    sb.inject(*[Fault("429", retry_after=300)] * 3)
    hook = EngageLabHook()
    hook.sleep = waits = RecordingSleep(real=True)
    started = time.monotonic()
    result = hook.get_stats("journey", [1, 2], "DAY", "2026-05-01", "2026-05-03")
    elapsed = time.monotonic() - started
    assert sort_rows(result.rows) == sort_rows(sb.expected_rows("journey", [1, 2], "DAY", "2026-05-01",
                                                                "2026-05-03"))
    assert result.requests == sb.counters()["requests"] == 4
    assert len(waits.waits) == 3 and all(w <= CAP for w in waits.waits)
    assert elapsed < 60  # one honoured Retry-After would be 300 s


def test_the_rate_limiters_retry_after_is_capped_too(sb, monkeypatch, tmp_path):
    """The sandbox's own limiter (2 requests/s, Retry-After: 300) against 4 concurrent calls."""
    set_conn(monkeypatch, sb, max_retries=40, max_retry_wait=CAP)
    sb.configure(rate_limit=2, rate_burst=1, retry_after_override=300)
    waits = record_hook_sleeps(monkeypatch)
    started = time.monotonic()
    summary = EngageLabStatsOperator(
        task_id="t", stats_type="webhook", journey_ids=[5, 6], start_time="2026-01-01", end_time="2026-06-30",
        output_path=str(tmp_path),
    ).execute({})  # 181 days: 6 calls
    elapsed = time.monotonic() - started
    counters = sb.counters()
    assert summary["calls"] == 6 and counters["rate_limited"] >= 1
    assert counters["by_status"][429] == counters["rate_limited"] == len(waits.waits)
    assert waits.waits and max(waits.waits) <= CAP
    assert elapsed < 120
    expected = sb.expected_rows("webhook", [5, 6], "DAY", "2026-01-01", "2026-06-30")
    assert sort_rows(read_jsonl_rows(tmp_path)) == sort_rows(expected)


@pytest.fixture
def reference(sb, tmp_path) -> Path:
    """An undisturbed run of the storm tests' task: the bytes every retry must reproduce."""
    root = tmp_path / "reference"
    storm_operator(root).execute({})
    sb.reset_counters()
    return root


def storm_operator(root: Path, **kwargs) -> EngageLabStatsOperator:
    # 2 journeys x 62 days: 2 windows, run one at a time (the storm hits the second call)
    return EngageLabStatsOperator(
        task_id="fetch", stats_type="message", journey_ids=[11, 12], start_time="2026-03-01",
        end_time="2026-05-01", output_path=str(root), **kwargs,
    )


@pytest.mark.parametrize("retry_after", [300, None], ids=["retry-after-300", "no-retry-after"])
def test_a_storm_longer_than_the_budget_fails_saying_so_and_the_retry_resumes(
    sb, monkeypatch, tmp_path, reference, retry_after
):
    set_conn(monkeypatch, sb, max_retries=3, max_retry_wait=CAP, max_concurrent_requests=1)
    waits = record_hook_sleeps(monkeypatch)
    out = tmp_path / "out"
    sb.inject(PASS, *[Fault("429", retry_after=retry_after)] * 4)  # first call fine, then a storm
    with pytest.raises(EngageLabRateLimitError) as err:
        storm_operator(out).execute({})
    message = str(err.value)
    assert "gave up after 4 attempts" in message and "max_retries=3" in message
    assert "HTTP 429" in message and "code 55110" in message
    assert "requests_per_second" in message  # what to do about it
    assert sb.counters()["requests"] == 1 + 4
    assert len(waits.waits) == 3 and max(waits.waits) <= CAP
    assert not out.exists()  # the first call's rows were not written on their own

    summary = storm_operator(out).execute({})  # the task's next attempt, the storm over
    assert files_under(out) == files_under(reference)
    assert summary["calls"] == 2 and summary["requests"] == 2


STORM_DAG = """
from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_provider_engagelab.operators.engagelab import EngageLabStatsOperator

with DAG("rel_storm", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):
    EngageLabStatsOperator(
        task_id="fetch", stats_type="message", journey_ids=[11, 12], start_time="2026-03-01",
        end_time="2026-05-01", output_path={root!r}, retries=1, retry_delay=timedelta(seconds=1),
    )
"""


@pytest.mark.e2e
def test_airflows_task_retry_resumes_after_a_storm(sb, airflow_runner, tmp_path, reference):
    """Real Airflow: try 1 is beaten by the storm, try 2 (``retries=1``) writes the full set."""
    out = tmp_path / "dag-out"
    airflow_runner.add_dag_source("rel_storm.py", STORM_DAG.format(root=str(out)))
    conn = conn_dict(sb, max_retries=2, max_retry_wait=CAP, max_concurrent_requests=1)
    sb.inject(PASS, *[Fault("429", retry_after=300)] * 3)
    result = airflow_runner.run(
        "rel_storm", logical_date="2026-06-02T00:00:00+00:00",
        env={"AIRFLOW_CONN_ENGAGELAB_DEFAULT": json.dumps(conn)},
    )
    assert result.state == "success" and result.task_states == {("fetch", -1): "success"}
    log = plain_text(result.log)
    assert "gave up after 3 attempts" in log  # try 1 failed for the storm ...
    assert "max_retries=2" in log
    assert digests_under(out) == digests_under(reference)  # ... try 2 wrote everything
    summary = result.xcom("fetch")
    assert summary["calls"] == 2 and summary["requests"] == 2 and len(summary["files"]) == 62
    assert sb.counters()["requests"] == (1 + 3) + 2
    own = without_mask_echo(result.log)  # (dag.test's DEBUG echo of the masker registration aside)
    assert leaks(own) == [] and leaks(plain_text(own)) == []
