"""Figure 8: rows per second into PostgreSQL, the SQL transfer against ``psql``'s ``COPY``.

A private PostgreSQL server (Debian's binaries, a temporary data folder, 127.0.0.1: the
tests' ``conftest_postgres.run_postgres``) and the sandbox API in its own process. The rows:
one day of HOUR message statistics for 21,000 journeys (~1M rows, 210 calls). Measured:

* the load (judged): the SQL sink the transfer uses (``SqlSink``: ``COPY`` of each answer into
  a temporary table, then ``DELETE`` + ``INSERT ... SELECT`` + commit), fed with the answers
  already fetched and parsed, into a new table: rows per second, best of 3;
* the floor: the same rows exported to a CSV file, loaded by ``psql -c "\\copy ... FROM ...
  CSV"`` into an empty table with the same columns and primary key (best of 3): what the
  database itself takes on this machine;
* the transfer task: ``EngageLabStatsToSqlOperator.execute`` in a fresh process, fetch from the
  sandbox included, into a new table (wall time, peak RSS = ``VmHWM`` of that process; the same
  for a tenth of the journeys, ~100k rows, to show memory does not follow the rows), the fetch
  alone (the hook, answers kept), and the same task again (a rerun: it deletes and replaces
  every row).

Run as ``python _sql.py transfer|load '<spec>'`` it is one of those child processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DAY = "2025-06-01"
JOURNEYS = 21_000
QUICK_JOURNEYS = 400
TABLE = "bench_message_hour"


def _peak_rss_kib() -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def _load(spec: dict[str, Any]) -> dict[str, Any]:
    """The sink alone: fetch every answer first (not timed), then time loading them, per table."""
    from airflow_provider_engagelab.core.query import build_query
    from airflow_provider_engagelab.core.records import ParsedResponse
    from airflow_provider_engagelab.core.sql_table import parse_table_name
    from airflow_provider_engagelab.hooks.engagelab import EngageLabHook
    from airflow_provider_engagelab.sinks.sql import SqlSink
    from airflow_provider_engagelab.transfers.engagelab_to_sql import EngageLabStatsToSqlOperator

    ids = list(range(1, spec["ids"] + 1))
    hook = EngageLabHook(spec["engagelab_conn_id"])
    t0 = time.perf_counter()
    # Kept (copied: the stream releases each answer's rows when it moves on) to time the sink alone.
    answers = [
        ParsedResponse(errors=p.errors, records=list(p.records or []), call=p.call,
                       ok_journeys=p.ok_journeys, extra_fields=p.extra_fields)
        for p in hook.iter_stats("message", ids, "HOUR", spec["day"], spec["day"]).responses()
    ]
    fetch_s = time.perf_counter() - t0
    op = EngageLabStatsToSqlOperator(task_id="bench_load", stats_type="message", journey_ids=ids,
                                     sql_conn_id=spec["sql_conn_id"], table=spec["table"], time_unit="HOUR")
    query = build_query("message", ids, "HOUR", spec["day"], spec["day"])
    runs = []
    for table in spec["tables"]:
        sql_hook = op._sql_hook()
        t0 = time.perf_counter()
        sink = op._open_sink(query, parse_table_name(table), sql_hook)
        assert isinstance(sink, SqlSink)
        try:
            for parsed in answers:
                sink.stage(parsed)
            result = sink.commit()
        finally:
            sink.abort()
        runs.append({"table": table, "seconds": time.perf_counter() - t0, "rows": result["rows_inserted"]})
    return {"runs": runs, "rows": sum(a.row_count for a in answers), "fetch_s": fetch_s}


def _child(spec: dict[str, Any]) -> dict[str, Any]:
    """One transfer task in this (fresh) process."""
    from airflow_provider_engagelab.transfers.engagelab_to_sql import EngageLabStatsToSqlOperator

    op = EngageLabStatsToSqlOperator(
        task_id="bench_sql", stats_type="message", engagelab_conn_id=spec["engagelab_conn_id"],
        sql_conn_id=spec["sql_conn_id"], table=spec["table"], journey_ids=list(range(1, spec["ids"] + 1)),
        time_unit="HOUR", start_time=spec["day"], end_time=spec["day"],
    )
    t0 = time.perf_counter()
    summary = op.execute({})
    seconds = time.perf_counter() - t0
    return {"rows": summary["rows_inserted"], "deleted": summary["rows_deleted"], "seconds": seconds,
            "calls": summary["calls"], "method": summary["method"], "peak_rss_kib": _peak_rss_kib()}


def _run_child(spec: dict[str, Any], env: dict[str, str], mode: str = "transfer") -> dict[str, Any]:
    proc = subprocess.run([sys.executable, str(Path(__file__)), mode, json.dumps(spec)], env=env,
                          capture_output=True, text=True, check=False, timeout=1800)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"SQL transfer run failed ({proc.returncode}): {proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _psql(server: Any, bindir: Path, command: str) -> float:
    """Run one psql command against ``server``; its wall time in seconds."""
    env = {**os.environ, "PGPASSWORD": server.password}
    t0 = time.perf_counter()
    subprocess.run([str(bindir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", server.host, "-p",
                    str(server.port), "-U", server.user, "-d", server.dbname, "-c", command],
                   env=env, check=True, capture_output=True, text=True, timeout=1800)
    return time.perf_counter() - t0


def measure(quick: bool) -> dict[str, Any]:
    """Figure 8's runs (see the module)."""
    sys.path.insert(0, str(HERE.parent))
    from _support import SandboxProcess, count_check, set_connection

    from tests.conftest_postgres import pg_bindir, run_postgres

    bindir = pg_bindir()
    if bindir is None:
        return {"error": "PostgreSQL is not installed (bash scripts/ci-system-deps.sh)"}
    ids = QUICK_JOURNEYS if quick else JOURNEYS
    env = dict(os.environ)
    work = Path(tempfile.mkdtemp(prefix="engagelab-bench-sql-"))
    work.chmod(0o755)
    with run_postgres() as server, SandboxProcess() as sb:
        set_connection("engagelab_bench_sql", sb.connection(), env)
        set_connection("bench_pg", server.connection(), env)
        spec = {"engagelab_conn_id": "engagelab_bench_sql", "sql_conn_id": "bench_pg", "table": TABLE,
                "ids": ids, "day": DAY}
        sb.reset()
        first = _run_child(spec, env)
        day = date.fromisoformat(DAY)
        counts = count_check(sb.counters(), ("message",), ids, day, day)
        rerun = _run_child(spec, env)
        small = _run_child({**spec, "ids": ids // 10, "table": f"{TABLE}_small"}, env)
        repeats = 1 if quick else 3
        loads = _run_child({**spec, "tables": [f"bench_load_{i}" for i in range(repeats)]}, env, "load")
        csv = work / "rows.csv"
        columns = ", ".join(c for (c,) in server.query(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
            "AND NOT attisdropped ORDER BY attnum", (TABLE,)))
        _psql(server, bindir, f"\\copy (SELECT {columns} FROM {TABLE}) TO '{csv}' WITH (FORMAT csv)")
        server.query(f"CREATE TABLE bench_floor (LIKE {TABLE} INCLUDING ALL)")
        floors = []
        for _ in range(1 if quick else 3):
            server.query("TRUNCATE bench_floor")
            server.query("CHECKPOINT")
            copy = f"\\copy bench_floor ({columns}) FROM '{csv}' WITH (FORMAT csv)"
            floors.append(_psql(server, bindir, copy))
        floor_rows = server.query("SELECT count(*) FROM bench_floor")[0][0]
    csv_bytes = csv.stat().st_size
    csv.unlink()
    work.rmdir()
    floor = min(floors)
    load = min(run["seconds"] for run in loads["runs"])
    if not all(run["rows"] == first["rows"] == floor_rows for run in loads["runs"]):
        raise RuntimeError(f"row counts differ: {loads}, {first}, {floor_rows}")
    return {
        "rows": first["rows"], "calls": first["calls"], "method": first["method"],
        "load_s": load, "load_runs_s": [run["seconds"] for run in loads["runs"]],
        "load_rows_per_s": first["rows"] / load,
        "transfer_s": first["seconds"], "transfer_rows_per_s": first["rows"] / first["seconds"],
        "rerun_s": rerun["seconds"], "rerun_rows_per_s": rerun["rows"] / rerun["seconds"],
        "rerun_deleted": rerun["deleted"], "peak_rss_mib": first["peak_rss_kib"] / 1024,
        "rerun_peak_rss_mib": rerun["peak_rss_kib"] / 1024,
        "small_rows": small["rows"], "small_peak_rss_mib": small["peak_rss_kib"] / 1024,
        "fetch_s": loads["fetch_s"],
        "copy_s": floor, "copy_runs_s": floors, "copy_rows": floor_rows,
        "copy_rows_per_s": floor_rows / floor,
        "csv_mib": csv_bytes / 2**20, "ratio": floor / load, "transfer_ratio": floor / first["seconds"],
        "count_check": counts,
    }


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] in ("transfer", "load"):
        child = _child if sys.argv[1] == "transfer" else _load
        print(json.dumps(child(json.loads(sys.argv[2]))), flush=True)
    else:
        raise SystemExit("usage: python _sql.py transfer|load '<json spec>'  (run by benchmarks/run.py)")
