"""The database connection killed mid-load (issue 17, part 2: the SQL half).

A real transfer task against the sandbox API, into the session's private PostgreSQL
(:mod:`tests.conftest_postgres`). At a moment the test chooses, a second session ends the
task's connection with ``pg_terminate_backend``, as a database failover, an idle-session
killer or a DBA would:

* ``copy``: half-way through the ``COPY`` of the second answer into the staging table (the
  first answer already staged);
* ``replace``: after the ``DELETE`` of the old rows, before the ``INSERT`` (the old rows gone,
  uncommitted).

The task fails with the driver's error (no commit happened), the table is exactly as it was,
no session of the dead task is left holding locks or a transaction, and the retry (Airflow's:
the same task again) completes with every key once.
"""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest

from airflow_provider_engagelab.core.contract import PRIMARY_KEYS
from airflow_provider_engagelab.core.query import StatsType
from airflow_provider_engagelab.sinks import sql_load
from tests.transfers.sql_helpers import J, expected, run_task

STATS_TYPE, UNIT = "message", "HOUR"
IDS = J(1, 150)  # two API calls (<= 100 ids each): two answers, two COPYs
FIRST, LAST = "2026-05-01", "2026-05-03"


def _backend_pid(conn) -> int:
    info = getattr(conn, "info", None)
    if info is not None and hasattr(info, "backend_pid"):  # psycopg 3, and psycopg2 >= 2.8
        return int(info.backend_pid)
    return int(conn.get_backend_pid())


def _driver_errors() -> tuple[type[BaseException], ...]:
    """The connection-lost errors of the installed PostgreSQL drivers (psycopg 3 and/or 2)."""
    found: list[type[BaseException]] = []
    for name in ("psycopg", "psycopg2"):
        try:
            module = __import__(name)
        except ImportError:
            continue
        found += [module.OperationalError, module.InterfaceError]
    return tuple(found)


def _terminate(db, pid: int) -> None:
    """``pg_terminate_backend`` from a second session; wait until that backend is gone."""
    assert db.execute("SELECT pg_terminate_backend(?)", (pid,)) == [(True,)]
    deadline = time.monotonic() + 30
    while db.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ?", (pid,)) != [(0,)]:
        assert time.monotonic() < deadline, f"backend {pid} still there 30 s after pg_terminate_backend"
        time.sleep(0.05)


@pytest.mark.parametrize("db", ["postgres"], indirect=True)
@pytest.mark.parametrize("moment", ["copy", "replace"])
def test_connection_terminated_mid_load_rolls_back_and_the_retry_completes(sb, db, moment, monkeypatch):
    # One request at a time, so that the answers (and their COPYs) come in a fixed order.
    monkeypatch.setenv("AIRFLOW_CONN_ENGAGELAB_DEFAULT",
                       json.dumps({**sb.airflow_connection(), "extra": {"max_concurrent_requests": 1}}))
    # The table before: the same journeys, a wider range; the task replaces the middle of it.
    run_task(db, STATS_TYPE, UNIT, IDS, "2026-04-30", "2026-05-04")
    db.execute(f"UPDATE {db.table} SET entry_count = -1")  # rows the task replaces differ from the API
    before = db.rows(STATS_TYPE)
    assert before

    killed: list[int] = []
    if moment == "copy":
        real_csv = sql_load.CopyLoader._csv
        answers = []

        def csv(self, parsed):
            answers.append(parsed.row_count)
            for chunk in real_csv(self, parsed):
                yield chunk  # handed to the driver's COPY stream
                if len(answers) == 2 and not killed:  # the second answer, its COPY not ended
                    killed.append(_backend_pid(self.conn))
                    _terminate(db, killed[0])

        monkeypatch.setattr(sql_load.CopyLoader, "_csv", csv)
    else:
        real_delete = sql_load._Loader._delete

        def delete(self, cursor, ranges):
            deleted = real_delete(self, cursor, ranges)
            assert deleted > 0
            killed.append(_backend_pid(self.conn))
            _terminate(db, killed[0])
            return deleted

        monkeypatch.setattr(sql_load._Loader, "_delete", delete)

    with pytest.raises(_driver_errors()) as failure:
        run_task(db, STATS_TYPE, UNIT, IDS, FIRST, LAST)
    assert killed, "the moment was never reached"
    text = str(failure.value)
    assert "terminating connection due to administrator command" in text or "closed" in text, text
    print(f"\n[{moment}] the task failed with {type(failure.value).__module__}."
          f"{type(failure.value).__name__}: {text.strip().splitlines()[0]}")
    monkeypatch.undo()  # the retry runs unpatched (and with the default Connection again)
    monkeypatch.setenv("AIRFLOW_CONN_ENGAGELAB_DEFAULT", json.dumps(sb.airflow_connection()))
    for name, value in db.env.items():
        monkeypatch.setenv(name, value)

    # Rolled back: the table as it was, nothing of the dead session left.
    assert db.rows(STATS_TYPE) == before
    assert db.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ?", (killed[0],)) == [(0,)]
    assert db.execute("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                      "WHERE c.relname = ? AND NOT l.granted", (db.table,)) == [(0,)]
    assert db.execute("SELECT count(*) FROM pg_class WHERE relname LIKE 'engagelab_stage_%%' "
                      "AND relpersistence = 't'") == [(0,)]

    # The retry: completes, the replaced range has the API's values, the rest stays; each key once.
    summary = run_task(db, STATS_TYPE, UNIT, IDS, FIRST, LAST)
    fresh = expected(sb, STATS_TYPE, UNIT, (IDS, FIRST, LAST))
    assert summary["rows_inserted"] == len(fresh)
    assert summary["rows_deleted"] == len(fresh)  # the old rows of the range, once
    rows = db.rows(STATS_TYPE)
    key = PRIMARY_KEYS[StatsType(STATS_TYPE)]
    counts = Counter(tuple(r[k] for k in key) for r in rows)
    assert max(counts.values()) == 1
    inside = {tuple(r[k] for k in key) for r in fresh}
    assert [r for r in rows if tuple(r[k] for k in key) in inside] == fresh
    assert [r for r in rows if tuple(r[k] for k in key) not in inside] == [
        r for r in before if tuple(r[k] for k in key) not in inside]
    print(f"\n[{moment}] backend {killed[0]} terminated; {len(fresh)} rows replaced by the retry, "
          f"{len(rows)} in the table, each key once")
