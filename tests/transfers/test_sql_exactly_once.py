"""Exactly once in one SQL table, whatever the journey grouping of each task.

Real transfer tasks against the sandbox API, into a real PostgreSQL server (loaded with COPY)
and a real SQLite file (executemany), each scenario ending by reading the whole table back:
every key (journey, time unit, time, component) once, with the sandbox's values. Concurrent
tasks run as separate processes (``sql_task_runner.py``), as on other workers.
"""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from airflow_provider_engagelab.core.contract import COLUMNS
from airflow_provider_engagelab.core.query import StatsType
from airflow_provider_engagelab.exceptions import (
    EngageLabBadRequestError,
    EngageLabError,
    EngageLabJourneyErrors,
)
from airflow_provider_engagelab.sinks import sql_load
from airflow_provider_engagelab.testing.sandbox import Fault
from tests.transfers.sql_helpers import J, daily, expected, finish, op_kwargs, run_task, start_tasks

#: (stats type, time unit): per-component rows by the hour, journey rows by the day.
CASES = [("message", "HOUR"), ("journey", "DAY")]


@pytest.fixture(params=CASES, ids=["-".join(c) for c in CASES])
def case(request):
    return request.param


def test_every_stats_type_lands_as_the_api_gives_it(sb, db):
    for stats_type, unit in (("journey", "DAY"), ("message", "DAY"), ("webhook", "HOUR")):
        db.table = f"{db.table[:20]}_{stats_type}"
        summary = run_task(db, stats_type, unit, [3, 1, 2, 2], "2026-05-01", "2026-05-03")
        want = expected(sb, stats_type, unit, ([1, 2, 3], "2026-05-01", "2026-05-03"))
        assert db.rows(stats_type) == want
        assert summary["rows_inserted"] == len(want) and summary["rows_deleted"] == 0
        assert summary["created"] is True
        assert summary["method"] == ("copy" if db.backend == "postgres" else "executemany")


def test_bucket_start_is_the_start_of_the_bucket(sb, db):
    run_task(db, "webhook", "HOUR", [1], "2026-05-01", "2026-05-01")
    rows = db.rows("webhook", bucket=True)
    assert rows and {r["time"] for r in rows} == {f"2026-05-01 {h:02d}" for h in range(24)}
    for row in rows:
        assert str(row["bucket_start"]) == f"{row['time']}:00:00"
    db.table += "_day"
    run_task(db, "webhook", "DAY", [1], "2026-05-01", "2026-05-02")
    assert {str(r["bucket_start"]) for r in db.rows("webhook", bucket=True)} == {
        "2026-05-01 00:00:00", "2026-05-02 00:00:00"}


def test_reruns_replace_the_rows_and_nothing_else(sb, db, case):
    """Three runs: the same rows; values changed and rows the API no longer has are replaced,
    other journeys, dates and time units are left alone."""
    stats_type, unit = case
    other_unit = "DAY" if unit == "HOUR" else "HOUR"
    run_task(db, stats_type, unit, J(1, 4), "2026-05-01", "2026-05-04")  # around the rerun
    run_task(db, stats_type, other_unit, [2], "2026-05-02", "2026-05-02")
    first = run_task(db, stats_type, unit, [2, 3], "2026-05-02", "2026-05-03")
    # the table drifts: values edited; for components, a row of a component the API no longer has
    db.execute(f"UPDATE {db.table} SET entry_count = -1 WHERE journey_id = 2")
    if stats_type != "journey":
        stale = {"journey_id": 3, "time_unit": unit, "time": "2026-05-03" + (" 00" if unit == "HOUR" else ""),
                 "bucket_start": "2026-05-03 00:00:00", "component_id": 999_999, "component_name": "GONE",
                 "channel": "Email"}
        cols = [*COLUMNS[StatsType(stats_type)], "bucket_start"]
        marks = ", ".join(["?"] * len(cols))
        db.execute(f"INSERT INTO {db.table} ({', '.join(cols)}) VALUES ({marks})",
                   tuple(stale.get(c, 0) for c in cols))
    for _ in range(2):
        summary = run_task(db, stats_type, unit, [3, 2], "2026-05-02", "2026-05-03")
        assert summary["rows_inserted"] == first["rows_inserted"]
    assert summary["rows_deleted"] == first["rows_inserted"]

    def drifted(row):  # journey 2's edited rows outside the rerun stay edited
        inside = row["time_unit"] == unit and "2026-05-02" <= row["time"][:10] <= "2026-05-03"
        return row if row["journey_id"] != 2 or inside else {**row, "entry_count": -1}

    want = expected(sb, stats_type, unit, (J(1, 4), "2026-05-01", "2026-05-04"))
    want += expected(sb, stats_type, other_unit, ([2], "2026-05-02", "2026-05-02"))
    key = [c for c in ("journey_id", "time_unit", "time", "component_id") if c in want[0]]
    assert db.rows(stats_type) == sorted(map(drifted, want), key=lambda r: tuple(r[k] for k in key))


def test_a_journey_added_to_the_list(sb, db, case):
    """Journeys 1-6 over days 1-5, then 1-7 over days 3-7 (a daily run looking back)."""
    stats_type, unit = case
    run_task(db, stats_type, unit, J(1, 6), "2026-05-01", "2026-05-05")
    summary = run_task(db, stats_type, unit, J(1, 7), "2026-05-03", "2026-05-07")
    replaced = expected(sb, stats_type, unit, (J(1, 6), "2026-05-03", "2026-05-05"))
    assert summary["rows_deleted"] == len(replaced)
    assert db.rows(stats_type) == expected(sb, stats_type, unit, (J(1, 6), "2026-05-01", "2026-05-05"),
                                           (J(1, 7), "2026-05-03", "2026-05-07"))


def test_a_journey_dropped_from_the_list_keeps_its_rows(sb, db, case):
    stats_type, unit = case
    run_task(db, stats_type, unit, J(1, 7), "2026-05-01", "2026-05-04")
    run_task(db, stats_type, unit, J(1, 6), "2026-05-01", "2026-05-04")
    assert db.rows(stats_type) == expected(sb, stats_type, unit, (J(1, 7), "2026-05-01", "2026-05-04"))


def test_a_batch_size_changed_runs_concurrently(sb, db):
    """Batches of 3 first; then batches of 2 as three concurrent processes over their rows."""
    stats_type, unit = "message", "HOUR"
    for batch in ([1, 2, 3], [4, 5, 6]):
        run_task(db, stats_type, unit, batch, "2026-05-01", "2026-05-06")
    sb.configure(latency=0.3)  # the three fetches end together: their transactions meet
    procs = start_tasks(db, sb, [
        {"operator": op_kwargs(db, stats_type, unit, batch, "2026-05-03", "2026-05-08")}
        for batch in ([1, 2], [3, 4], [5, 6])
    ])
    summaries = finish(procs)
    assert sum(s["rows_deleted"] for s in summaries) == len(
        expected(sb, stats_type, unit, (J(1, 6), "2026-05-03", "2026-05-06")))
    assert db.rows(stats_type) == expected(sb, stats_type, unit, (J(1, 6), "2026-05-01", "2026-05-08"))


BATCHES = ([1, 2, 3], [4, 5, 6])


@pytest.mark.parametrize("order", ["daily-first", "backfill-first", "at-once"])
def test_a_daily_dag_beside_a_mapped_backfill(sb, db, order):
    """A daily task over all journeys (lookback 2) and a backfill mapped over batches, same
    days; ``at-once``: the daily runs go on while the backfill's instances run as processes."""
    stats_type, unit = "message", "DAY"

    def backfill():
        for batch in BATCHES:
            run_task(db, stats_type, unit, batch, "2026-05-01", "2026-05-14")

    def daily_runs():
        for day in ("2026-05-11", "2026-05-12"):
            run_task(db, stats_type, unit, J(1, 6), context=daily(day), lookback_days=2)

    if order == "at-once":
        sb.configure(latency=0.2)
        procs = start_tasks(db, sb, [
            {"operator": op_kwargs(db, stats_type, unit, batch, "2026-05-01", "2026-05-14")}
            for batch in BATCHES
        ])
        daily_runs()
        finish(procs)
    else:
        for step in (daily_runs, backfill) if order == "daily-first" else (backfill, daily_runs):
            step()
    assert db.rows(stats_type) == expected(sb, stats_type, unit, (J(1, 6), "2026-05-01", "2026-05-14"))


def test_overlapping_concurrent_tasks_leave_each_key_once(sb, db):
    """Three processes over overlapping journeys and days at once (not needed for disjoint
    mapped batches, but a retry overlapping a late original must not double anything)."""
    stats_type, unit = "webhook", "HOUR"
    run_task(db, stats_type, unit, J(1, 4), "2026-05-01", "2026-05-02")
    sb.configure(latency=0.2)
    specs = [{"operator": op_kwargs(db, stats_type, unit, ids, "2026-05-01", "2026-05-03")}
             for ids in (J(1, 4), J(2, 5), J(1, 5))]
    summaries = finish(start_tasks(db, sb, specs))
    assert all(s["rows_inserted"] > 0 for s in summaries)
    assert db.rows(stats_type) == expected(sb, stats_type, unit, (J(1, 5), "2026-05-01", "2026-05-03"))


# ---------------------------------------------------------------------------- journey errors


@pytest.mark.parametrize("policy", ["warn", "skip"])
def test_a_journey_that_fails_keeps_its_old_rows(sb, db, policy):
    stats_type, unit = "message", "DAY"
    run_task(db, stats_type, unit, J(1, 4), "2026-05-01", "2026-05-03")
    before = db.rows(stats_type)
    db.execute(f"UPDATE {db.table} SET entry_count = -5 WHERE journey_id IN (2, 3)")
    sb.configure(missing_journeys=[3])
    summary = run_task(db, stats_type, unit, J(1, 4), "2026-05-01", "2026-05-03", on_journey_error=policy)
    assert [e["journey_id"] for e in summary["journey_errors"]] == [3]
    rows = db.rows(stats_type)
    assert [r for r in rows if r["journey_id"] != 3] == [r for r in before if r["journey_id"] != 3]
    kept = [r for r in rows if r["journey_id"] == 3]
    assert kept and all(r["entry_count"] == -5 for r in kept)  # not replaced: the task did not fetch it


def test_journey_errors_under_fail_change_nothing(sb, db):
    run_task(db, "journey", "DAY", J(1, 3), "2026-05-01", "2026-05-02")
    before = db.rows("journey")
    sb.configure(missing_journeys=[2])
    with pytest.raises(EngageLabJourneyErrors, match="journey 2: code 50202"):
        run_task(db, "journey", "DAY", J(1, 3), "2026-05-01", "2026-05-02")
    assert db.rows("journey") == before


# ---------------------------------------------------------------------------- failures


def test_an_api_failure_after_some_answers_were_staged_changes_nothing(sb, db, case, monkeypatch):
    """Two calls, one at a time: the first answer is staged, the second call is refused."""
    stats_type, unit = case
    run_task(db, stats_type, unit, J(1, 150), "2026-05-01", "2026-05-02")
    before = db.rows(stats_type)
    monkeypatch.setenv("AIRFLOW_CONN_ENGAGELAB_DEFAULT",
                       json.dumps({**sb.airflow_connection(), "extra": {"max_concurrent_requests": 1}}))
    staged = []
    cls = sql_load.CopyLoader if db.backend == "postgres" else sql_load.ExecutemanyLoader
    real = cls.stage
    monkeypatch.setattr(cls, "stage", lambda self, parsed: staged.append(real(self, parsed)) or staged[-1])
    sb.inject(Fault("hang", seconds=0), Fault("code_in_200"))  # a normal answer, then a refusal
    with pytest.raises(EngageLabBadRequestError, match="50217"):
        run_task(db, stats_type, unit, J(1, 150), "2026-05-01", "2026-05-03")
    assert staged and staged[0] > 0
    assert db.rows(stats_type) == before


def test_a_database_failure_mid_insert_rolls_back(sb, db, case, monkeypatch):
    """A trigger refuses one journey's rows half-way through the insert, after the delete."""
    stats_type, unit = case
    run_task(db, stats_type, unit, J(1, 6), "2026-05-01", "2026-05-02")
    before = db.rows(stats_type)
    if db.backend == "postgres":
        db.execute("CREATE OR REPLACE FUNCTION engagelab_refuse() RETURNS trigger LANGUAGE plpgsql AS "
                   "$$ BEGIN RAISE EXCEPTION 'injected failure for journey %', NEW.journey_id; END $$")
        db.execute(f"CREATE TRIGGER refuse BEFORE INSERT ON {db.table} FOR EACH ROW "
                   "WHEN (NEW.journey_id = 5) EXECUTE FUNCTION engagelab_refuse()")
    else:
        monkeypatch.setattr(sql_load, "CHUNK_ROWS", 7)  # many executemany chunks: 5's come late
        db.execute(f"CREATE TRIGGER refuse BEFORE INSERT ON {db.table} WHEN NEW.journey_id = 5 "
                   "BEGIN SELECT RAISE(ABORT, 'injected failure for journey 5'); END")
    with pytest.raises(Exception, match="injected failure for journey 5"):
        run_task(db, stats_type, unit, J(1, 6), "2026-05-01", "2026-05-03")
    assert db.rows(stats_type) == before
    db.execute(f"DROP TRIGGER refuse{' ON ' + db.table if db.backend == 'postgres' else ''}")
    run_task(db, stats_type, unit, J(1, 6), "2026-05-01", "2026-05-03")  # the retry
    assert db.rows(stats_type) == expected(sb, stats_type, unit, (J(1, 6), "2026-05-01", "2026-05-03"))


def test_a_task_killed_inside_its_transaction_leaves_the_table_as_it_was(sb, db, tmp_path):
    stats_type, unit = "message", "HOUR"
    run_task(db, stats_type, unit, J(1, 4), "2026-05-01", "2026-05-02")
    before = db.rows(stats_type)
    marker = tmp_path / "deleted"
    spec = {"operator": op_kwargs(db, stats_type, unit, J(1, 4), "2026-05-01", "2026-05-03"),
            "pause_after_delete": str(marker)}
    (proc,) = start_tasks(db, sb, [spec])
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "the task never reached its delete"
        time.sleep(0.05)
    assert int(marker.read_text()) == len(before)  # the old rows are deleted, uncommitted
    os.killpg(proc.pid, signal.SIGKILL)  # the whole process group, as an OOM kill would
    proc.communicate()
    deadline = time.monotonic() + 60
    while True:  # PostgreSQL notices the dropped connection and rolls back
        try:
            assert db.rows(stats_type) == before
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    run_task(db, stats_type, unit, J(1, 4), "2026-05-01", "2026-05-03")
    assert db.rows(stats_type) == expected(sb, stats_type, unit, (J(1, 4), "2026-05-01", "2026-05-03"))


def test_nothing_is_written_when_the_fetch_fails(sb, db):
    sb.inject(Fault("code_in_200"))
    with pytest.raises(EngageLabError):
        run_task(db, "journey", "DAY", [1], "2026-05-01", "2026-05-01")
    assert db.rows("journey") == []  # the table was created (empty) before the fetch


def test_a_full_disk_under_the_spool_fails_clearly_and_changes_nothing(sb, db, monkeypatch):
    """executemany spools the rows to TMPDIR first: ENOSPC there (injected at the spool's write
    call) fails naming the folder, and the table keeps its rows."""
    if db.backend != "sqlite":
        pytest.skip("COPY streams to PostgreSQL: no local spool")
    import errno
    import tempfile

    from airflow_provider_engagelab.exceptions import EngageLabOutputError

    run_task(db, "journey", "DAY", J(1, 3), "2026-05-01", "2026-05-02")
    before = db.rows("journey")

    class FullSpool:
        def __init__(self, real):
            self._real = real

        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __getattr__(self, name):
            return getattr(self._real, name)

    real_begin = sql_load.ExecutemanyLoader.begin

    def begin(self):
        real_begin(self)
        self._spool = FullSpool(self._spool)

    monkeypatch.setattr(sql_load.ExecutemanyLoader, "begin", begin)
    with pytest.raises(EngageLabOutputError, match="no space left") as info:
        run_task(db, "journey", "DAY", J(1, 3), "2026-05-01", "2026-05-02")
    assert tempfile.gettempdir() in str(info.value) and "spooling rows" in str(info.value)
    assert "nothing was published" in str(info.value)
    assert db.rows("journey") == before
