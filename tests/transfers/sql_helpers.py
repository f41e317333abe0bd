"""Helpers of the SQL transfer tests: a database of a test (``Db``), running transfer tasks in
this process or in others, and the sandbox's expected rows."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from airflow_provider_engagelab.core.contract import COLUMNS, PRIMARY_KEYS
from airflow_provider_engagelab.core.query import StatsType
from airflow_provider_engagelab.testing.sandbox import Sandbox
from airflow_provider_engagelab.transfers.engagelab_to_sql import EngageLabStatsToSqlOperator

UTC = timezone.utc
RUNNER = Path(__file__).with_name("sql_task_runner.py")
#: The sandbox serves data up to this instant: fixed, so no test depends on today's date.
CUTOFF = datetime(2026, 7, 1, tzinfo=UTC)


@dataclass
class Db:
    """One database of a test: its Airflow Connection, and SQL on it for the test's checks."""

    backend: str
    conn_id: str
    env: dict[str, str]
    table: str
    server: Any = None
    path: Path | None = None
    tables: list[str] = field(default_factory=list)

    def execute(self, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
        """Run one statement (committed); its rows."""
        if self.server is not None:
            return self.server.query(sql.replace("?", "%s"), params or None)
        conn = sqlite3.connect(str(self.path))
        try:
            cur = conn.execute(sql, params)
            rows = cur.fetchall()
            conn.commit()
            return rows
        finally:
            conn.close()

    def rows(self, stats_type: str, table: str | None = None, *, bucket: bool = False
             ) -> list[dict[str, Any]]:
        """Every row of the table: the contract's columns (and ``bucket_start``), in key order."""
        cols = list(COLUMNS[StatsType(stats_type)]) + (["bucket_start"] if bucket else [])
        key = PRIMARY_KEYS[StatsType(stats_type)]
        got = self.execute(f"SELECT {', '.join(cols)} FROM {table or self.table}")
        return sorted((dict(zip(cols, r, strict=True)) for r in got), key=lambda r: tuple(r[k] for k in key))

    def column_types(self, table: str | None = None) -> dict[str, tuple[str, bool]]:
        """``{column: (declared type, nullable)}`` as the catalog says."""
        name = table or self.table
        if self.server is not None:
            got = self.execute(
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull "
                "FROM pg_attribute a WHERE a.attrelid = to_regclass(?) AND a.attnum > 0 "
                "AND NOT a.attisdropped", (name,))
        else:
            got = [(r[1], r[2], not r[3]) for r in self.execute(f"PRAGMA table_info({name})")]
        return {n: (t, bool(nl)) for n, t, nl in got}

    def primary_key(self, table: str | None = None) -> set[str]:
        """The primary key's columns."""
        name = table or self.table
        if self.server is not None:
            got = self.execute(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = to_regclass(?) AND i.indisprimary", (name,))
            return {r[0] for r in got}
        return {r[1] for r in self.execute(f"PRAGMA table_info({name})") if r[5]}


# ---------------------------------------------------------------------------- running tasks


def J(first: int, last: int) -> list[int]:
    return list(range(first, last + 1))


def daily(day: str) -> dict[str, Any]:
    """The context of a daily run with the data interval ``[day, day + 1)``."""
    start = datetime.fromisoformat(day).replace(tzinfo=UTC)
    return {"data_interval_start": start, "data_interval_end": start + timedelta(days=1),
            "logical_date": start}


def op_kwargs(db: Db, stats_type: str, unit: str, ids, first=None, last=None, **extra) -> dict[str, Any]:
    out = {"stats_type": stats_type, "sql_conn_id": db.conn_id, "table": db.table, "journey_ids": list(ids),
           "time_unit": unit, **extra}
    if first is not None:
        out.update(start_time=first, end_time=last)
    return out


def run_task(db: Db, stats_type: str, unit: str, ids, first=None, last=None, *, context=None,
             **extra) -> dict[str, Any]:
    """One transfer task, in this process."""
    kwargs = op_kwargs(db, stats_type, unit, ids, first, last, **extra)
    return EngageLabStatsToSqlOperator(task_id="t", **kwargs).execute(context or {})


def start_tasks(db: Db, sb: Sandbox, specs: list[dict[str, Any]]) -> list[subprocess.Popen]:
    """Transfer tasks in separate processes (as on other workers), all started at once."""
    env = {**os.environ, **db.env, "AIRFLOW_CONN_ENGAGELAB_DEFAULT": json.dumps(sb.airflow_connection())}
    return [
        subprocess.Popen([sys.executable, str(RUNNER), json.dumps(spec)], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
        for spec in specs
    ]


def finish(procs: list[subprocess.Popen], timeout: float = 180) -> list[dict[str, Any]]:
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, stderr[-3000:]
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def expected(sb: Sandbox, stats_type: str, unit: str, *pieces) -> list[dict[str, Any]]:
    """The sandbox's rows of every (ids, first, last) piece, in key order (later pieces win)."""
    key_cols = PRIMARY_KEYS[StatsType(stats_type)]
    want: dict[tuple, dict[str, Any]] = {}
    for ids, first, last in pieces:
        for row in sb.expected_rows(stats_type, list(ids), unit, first, last):
            if "revenue_amount" in row:
                row = {**row, "revenue_amount": float(row["revenue_amount"])}
            want[tuple(row[k] for k in key_cols)] = row
    return [want[k] for k in sorted(want)]
