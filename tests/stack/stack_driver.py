"""End-to-end scale-out test: the example DAGs on a real distributed Airflow (issue 9).

Run by ``scripts/stack.sh test`` (not collected by pytest). Steps:

1. Start the sandbox API in this process (127.0.0.1, free port, a little latency so that
   concurrent requests overlap) with its availability cutoff at yesterday 00:00 UTC.
2. ``scripts/stack.sh up`` with ``AIRFLOW_CONN_ENGAGELAB_DEFAULT`` pointing at the sandbox and
   the example DAGs' settings (``ENGAGELAB_*``) in every process's environment: PostgreSQL,
   Redis, api-server, scheduler, dag-processor, triggerer, two Celery workers.
3. Over the REST API: create the pool that caps concurrent API calls, then
   (a) ``example_engagelab_backfill_mapped``: trigger the last complete month, unpause, and
   create a backfill of the two months before it; every run maps one task per journey batch
   and stats type, all in the pool;
   (b) ``example_engagelab_daily`` with the sensor deferrable: trigger yesterday, unpause,
   wait until the sensor is deferred and its trigger is assigned to the triggerer, then move
   the sandbox's cutoff to today 00:00 UTC so yesterday becomes complete.
4. Check: every DAG run succeeded; mapped tasks ran on both workers; the sensor deferred and
   completed through the triggerer (its ``.trigger.`` log); the files written hold exactly the
   sandbox's expected rows, each once; the sandbox never had more requests in flight during
   the backfill than the pool allows (pool slots x the connection's max_concurrent_requests).
5. Print a summary (tasks per worker, wall times, peak concurrent API calls, stack start time,
   memory), write it to ``$STACK_DIR/summary.json``, and ``scripts/stack.sh down``.

The last line is ``stack-test: N passed, M failed``; the exit status is 0 only when M is 0.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import requests

from airflow_provider_engagelab.testing.sandbox import Sandbox

REPO = Path(__file__).resolve().parents[2]
STACK_SH = REPO / "scripts" / "stack.sh"
BACKFILL_DAG = "example_engagelab_backfill_mapped"
DAILY_DAG = "example_engagelab_daily"
SENSOR_TASK = "wait_for_yesterday"
STATS_TYPES = ("journey", "message", "webhook")
TERMINAL = {"success", "failed"}


def log(msg: str) -> None:
    """Progress on stderr with a timestamp."""
    print(f"[stack-test {datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


# --- memory -----------------------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def _start_time(pid: int) -> str | None:
    """Start time of a process (clock ticks since boot): with the PID, it names one process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def stack_processes(stack_dir: Path) -> set[tuple[int, str]]:
    """(PID, start time) of every process the stack started and of all their descendants."""
    kids = _children()
    todo: list[int] = []
    for pid_file in (stack_dir / "pids").glob("*"):
        try:
            todo.append(int(pid_file.read_text().split()[0]))
        except (OSError, ValueError, IndexError):
            continue
    found: set[tuple[int, str]] = set()
    seen: set[int] = set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        todo.extend(kids.get(pid, ()))
        start = _start_time(pid)
        if start is not None:
            found.add((pid, start))
    return found


def still_running(processes: set[tuple[int, str]]) -> list[int]:
    """The PIDs of ``processes`` that still run (same PID and start time)."""
    return sorted(pid for pid, start in processes if _start_time(pid) == start)


def pss_kib(pids: Iterable[int]) -> int:
    """Proportional set size of these processes, in KiB (gone ones count 0)."""
    kib = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        kib += int(line.split()[1])
                        break
        except OSError:
            continue
    return kib


def stack_pss_mib(stack_dir: Path) -> float:
    """Proportional set size of every process the stack started, with all their children."""
    return pss_kib(pid for pid, _ in stack_processes(stack_dir)) / 1024


class MemorySampler(threading.Thread):
    """Samples the stack's memory every ``interval`` seconds and keeps the peak."""

    def __init__(self, stack_dir: Path, interval: float = 2.0) -> None:
        super().__init__(daemon=True)
        self.stack_dir, self.interval = stack_dir, interval
        self.peak = 0.0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak = max(self.peak, stack_pss_mib(self.stack_dir))
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()


# --- REST API ---------------------------------------------------------------------------------


class Api:
    """A small client of the stack's Airflow REST API (``/api/v2``), logged in as admin."""

    def __init__(self, base: str, username: str, password: str) -> None:
        self.base = base.rstrip("/")
        self.session = requests.Session()
        r = self.session.post(f"{self.base}/auth/token", json={"username": username, "password": password},
                              timeout=30)
        r.raise_for_status()
        self.session.headers["Authorization"] = f"Bearer {r.json()['access_token']}"

    def call(self, method: str, path: str, ok: Iterable[int] = (200, 201), **kwargs: Any) -> Any:
        r = self.session.request(method, f"{self.base}/api/v2{path}", timeout=60, **kwargs)
        if r.status_code not in tuple(ok):
            raise RuntimeError(f"{method} {path} -> {r.status_code}: {r.text[:500]}")
        return r.json() if r.content else None

    def get(self, path: str, **params: Any) -> Any:
        return self.call("GET", path, params=params)

    def runs(self, dag_id: str) -> list[dict]:
        return self.get(f"/dags/{dag_id}/dagRuns", limit=100, order_by="logical_date")["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str = "~") -> list[dict]:
        return self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", limit=1000)["task_instances"]

    def trigger(self, dag_id: str, run_id: str, start: datetime, end: datetime) -> None:
        self.call("POST", f"/dags/{dag_id}/dagRuns", json={
            "dag_run_id": run_id, "logical_date": start.isoformat(),
            "data_interval_start": start.isoformat(), "data_interval_end": end.isoformat(), "conf": {},
        })


def wait_for(what: str, check: Callable[[], Any], timeout: float, interval: float = 2.0) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


# --- checks -----------------------------------------------------------------------------------


class Checks:
    """Named pass/fail results, printed as they come."""

    def __init__(self) -> None:
        self.results: list[tuple[str, bool, str]] = []

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        self.results.append((name, bool(ok), detail))
        print(f"{'PASS' if ok else 'FAIL'}  {name}{': ' + detail if detail else ''}", flush=True)
        return bool(ok)

    @property
    def failed(self) -> int:
        return sum(1 for _, ok, _ in self.results if not ok)


def month_start(d: date, back: int) -> datetime:
    """00:00 UTC on the first day of the month ``back`` months before ``d``'s month."""
    index = d.year * 12 + d.month - 1 - back
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=timezone.utc)


def written_windows(today: date, lookback_days: int = 2, months: int = 3) -> list[tuple[date, date]]:
    """The days the test's DAG runs write, as disjoint ranges in date order.

    The backfill covers the ``months`` full months before ``today``'s month; the daily runs
    cover yesterday and the ``lookback_days`` before it (a daily run for the day before
    yesterday with a lookback of 2 days is ``lookback_days=3``). The two overlap on the first
    days of a month (the daily window lies inside the backfill's last month) and touch the day
    after: each day is expected once, whichever run wrote it last.
    """
    yesterday = today - timedelta(days=1)
    return merge_spans([(month_start(today, months).date(), month_start(today, 0).date() - timedelta(days=1)),
                        (yesterday - timedelta(days=lookback_days), yesterday)])


def merge_spans(spans: Iterable[tuple[date, date]]) -> list[tuple[date, date]]:
    """Date ranges (inclusive) merged where they overlap or touch, in date order."""
    merged: list[tuple[date, date]] = []
    for first, last in sorted(spans):
        if merged and first <= merged[-1][1] + timedelta(days=1):
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return merged


def wait_past_midnight(margin: float) -> None:
    """The tests count their days from the day they start: with less than ``margin`` seconds
    to midnight UTC, wait until just after it (a run crossing it would see the next day's runs)."""
    to_midnight = 86400 - (time.time() % 86400)
    if to_midnight < margin:
        log(f"{to_midnight:.0f} s to midnight UTC: waiting until just after it")
        time.sleep(to_midnight + 30)


def example_dag_env(stack_dir: Path, args: argparse.Namespace, connection: dict[str, Any],
                    journey_ids: list[int], output: Path, **extra: str) -> dict[str, str]:
    """The environment of ``stack.sh`` for the example DAGs against the sandbox: the stack's
    folder and workers, the EngageLab Connection and the DAGs' ``ENGAGELAB_*`` settings."""
    env = dict(os.environ)
    env.update({
        "STACK_DIR": str(stack_dir),
        "STACK_DAGS_FOLDER": str(args.dags_folder),
        "STACK_WORKER_CONCURRENCY": str(args.worker_concurrency),
        "AIRFLOW_CONN_ENGAGELAB_DEFAULT": json.dumps(connection),
        "ENGAGELAB_JOURNEY_IDS": ",".join(map(str, journey_ids)),
        "ENGAGELAB_BATCH_SIZE": str(args.batch_size),
        "ENGAGELAB_OUTPUT_PATH": output.as_uri(),
        "ENGAGELAB_POOL": args.pool,
        "ENGAGELAB_DEFERRABLE": "true",
        "ENGAGELAB_POKE_INTERVAL": str(args.poke_interval),
        "ENGAGELAB_TIMEZONE": "UTC",
        **extra,
    })
    return env


def read_output(root: Path) -> tuple[dict[str, list[str]], list[str]]:
    """Rows per stats type as canonical JSON strings, and any leftover lock/hidden/temporary
    files (the partitions' manifests are bookkeeping, not leftovers)."""
    rows: dict[str, list[str]] = {t: [] for t in STATS_TYPES}
    leftovers: list[str] = []
    for path in sorted(root.rglob("*")):
        if path.is_dir() or path.name == "_engagelab_manifest.json":
            continue
        if path.name.startswith(".") or path.suffix != ".jsonl":
            leftovers.append(str(path.relative_to(root)))
            continue
        stats_type = path.relative_to(root).parts[0]
        with path.open() as f:
            rows.setdefault(stats_type, []).extend(
                json.dumps(json.loads(line), sort_keys=True) for line in f if line.strip()
            )
    return rows, leftovers


def compare_rows(got: list[str], want: list[dict]) -> tuple[bool, str]:
    """Equal as multisets? With a short account of the difference."""
    got_c = Counter(got)
    want_c = Counter(json.dumps(r, sort_keys=True) for r in want)
    if got_c == want_c:
        return True, f"{len(got)} rows"
    missing = sum((want_c - got_c).values())
    extra = sum((got_c - want_c).values())
    dups = sum(n - 1 for n in got_c.values() if n > 1)
    return False, (f"{len(got)} rows written, {len(want)} expected: {missing} missing, {extra} extra, "
                   f"{dups} duplicates")


# --- the test ---------------------------------------------------------------------------------


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run(args: argparse.Namespace) -> int:
    # The test's dates are "yesterday" and the last three months (UTC).
    wait_past_midnight(args.midnight_margin)
    t_start = time.monotonic()
    checks = Checks()
    stack_dir = Path(os.environ.get("STACK_DIR") or Path(tempfile.gettempdir()) / "engagelab-stack")
    work = Path(tempfile.mkdtemp(prefix="engagelab-stack-test-"))
    output = work / "output"
    now = datetime.now(timezone.utc)
    today = now.date()
    today0 = datetime(today.year, today.month, today.day, tzinfo=timezone.utc)
    yesterday0 = today0 - timedelta(days=1)
    journey_ids = list(range(1001, 1001 + args.journeys))
    summary: dict[str, Any] = {"started": now.isoformat(timespec="seconds")}

    sandbox = Sandbox(port=0, latency=args.latency, available_through=yesterday0)
    sandbox.start()
    log(f"sandbox at {sandbox.url}, data available through {yesterday0:%Y-%m-%d} 00:00 UTC; "
        f"output files under {output}")
    conn = sandbox.airflow_connection(max_concurrent_requests=args.max_concurrent_requests, max_retry_wait=5)
    env = example_dag_env(stack_dir, args, conn, journey_ids, output)
    sampler = MemorySampler(stack_dir)
    try:
        t0 = time.monotonic()
        subprocess.run(["bash", str(STACK_SH), "up"], env=env, check=True)
        summary["stack_start_s"] = round(time.monotonic() - t0, 1)
        summary["memory_idle_mib"] = round(stack_pss_mib(stack_dir))
        sampler.start()
        info = json.loads((stack_dir / "stack.json").read_text())
        api = Api(info["api_url"], info["username"], info["password"])

        # Pool shared by every mapped task of every run: the cap on concurrent API calls.
        api.call("POST", "/pools", json={"name": args.pool, "slots": args.pool_slots,
                                          "description": "EngageLab API calls", "include_deferred": False})
        for dag_id in (BACKFILL_DAG, DAILY_DAG):
            wait_for(f"{dag_id} parsed", lambda d=dag_id: _parsed(api, d), timeout=180)

        # (a) the mapped backfill, alone on the sandbox so its concurrency is measured alone.
        sandbox.reset_counters()
        t0 = time.monotonic()
        months = [month_start(today, back) for back in (3, 2, 1)]
        api.trigger(BACKFILL_DAG, "stack-test-last-month", months[2], month_start(today, 0))
        api.call("PATCH", f"/dags/{BACKFILL_DAG}", json={"is_paused": False})
        api.call("POST", "/backfills", json={
            "dag_id": BACKFILL_DAG, "from_date": months[0].isoformat(), "to_date": months[1].isoformat(),
            "max_active_runs": 2})
        log(f"backfill: 3 monthly runs ({months[0]:%Y-%m}..{months[2]:%Y-%m}) x {len(journey_ids)} journeys "
            f"in batches of {args.batch_size}, pool {args.pool}={args.pool_slots} slots")
        backfill_runs = wait_for("3 backfill runs to finish", lambda: _finished(api, BACKFILL_DAG, 3),
                                 timeout=args.timeout)
        summary["backfill_wall_s"] = round(time.monotonic() - t0, 1)
        counters = sandbox.counters()
        summary["backfill_api_requests"] = counters["requests"]
        summary["backfill_peak_in_flight"] = counters["max_in_flight"]
        summary["backfill_status_counts"] = counters["by_status"]

        # (b) the daily DAG, sensor deferrable, while yesterday is not available yet.
        t0 = time.monotonic()
        sandbox.reset_counters()
        api.trigger(DAILY_DAG, "stack-test-yesterday", yesterday0, today0)
        api.call("PATCH", f"/dags/{DAILY_DAG}", json={"is_paused": False})
        log("daily: waiting for the sensor to defer to the triggerer")
        deferred = wait_for("the sensor to be deferred with a trigger on the triggerer",
                            lambda: _deferred(api), timeout=240, interval=1)
        at_deferral = sandbox.counters()["requests"]
        # The trigger polls the API from the triggerer and still finds no data for yesterday.
        wait_for("the trigger's first poll", lambda: sandbox.counters()["requests"] > at_deferral,
                 timeout=args.poke_interval + 60, interval=0.5)
        wait_for("the trigger's poll to end", lambda: _quiet(sandbox), timeout=60, interval=0.1)
        polls_before = sandbox.counters()["requests"]
        summary["sensor_requests_before_cutoff"] = polls_before
        sandbox.configure(available_through=today0)
        log(f"daily: sensor deferred (trigger {deferred['trigger']['classpath']}); "
            f"cutoff moved to {today0:%Y-%m-%d} 00:00 UTC")
        daily_runs = wait_for("the daily run to finish", lambda: _finished(api, DAILY_DAG, 1),
                              timeout=args.timeout)
        summary["daily_wall_s"] = round(time.monotonic() - t0, 1)
        sampler.stop()
        summary["memory_peak_mib"] = round(max(sampler.peak, stack_pss_mib(stack_dir)))

        # --- assertions -----------------------------------------------------------------------
        for dag_id, runs in ((BACKFILL_DAG, backfill_runs), (DAILY_DAG, daily_runs)):
            states = Counter(r["state"] for r in runs)
            checks.check(f"{dag_id}: every run succeeded", set(states) == {"success"},
                         ", ".join(f"{r['dag_run_id']}={r['state']}" for r in runs))

        tis = api.task_instances(BACKFILL_DAG)
        mapped = [ti for ti in tis if ti["map_index"] >= 0]
        per_worker = Counter(ti["hostname"] for ti in mapped)
        summary["mapped_tasks"] = len(mapped)
        summary["mapped_tasks_per_worker"] = dict(sorted(per_worker.items()))
        summary["all_tasks_per_worker"] = dict(sorted(Counter(
            ti["hostname"] for ti in tis + api.task_instances(DAILY_DAG)).items()))
        checks.check("mapped tasks ran on both workers",
                     set(per_worker) == set(info["workers"]) and all(per_worker.values()),
                     f"{len(mapped)} mapped tasks: {dict(per_worker)}")
        checks.check("mapped tasks ran in the pool", all(ti["pool"] == args.pool for ti in mapped),
                     f"pools {sorted({ti['pool'] for ti in mapped})}")

        cap = args.pool_slots * args.max_concurrent_requests
        checks.check("the sandbox never saw more concurrent requests than the pool allows",
                     0 < summary["backfill_peak_in_flight"] <= cap,
                     f"peak {summary['backfill_peak_in_flight']} in flight, cap {args.pool_slots} slots x "
                     f"{args.max_concurrent_requests} requests per task = {cap}")

        sensor = next(ti for ti in api.task_instances(DAILY_DAG, "stack-test-yesterday")
                      if ti["task_id"] == SENSOR_TASK)
        trigger_logs = sorted((stack_dir / "airflow" / "logs").glob(
            f"dag_id={DAILY_DAG}/run_id=stack-test-yesterday/task_id={SENSOR_TASK}/*.trigger.*"))
        fired = [line for p in trigger_logs for line in p.read_text(errors="replace").splitlines()
                 if "Trigger fired event" in line]
        checks.check("the sensor deferred and completed through the triggerer",
                     sensor["state"] == "success" and bool(deferred.get("triggerer_job"))
                     and len(fired) == 1 and "'status': 'success'" in fired[0],
                     f"deferred to {deferred['trigger']['classpath'].rsplit('.', 1)[-1]} on triggerer job "
                     f"{deferred['triggerer_job'].get('id')}, which polled the API while yesterday was "
                     f"missing ({polls_before - at_deferral} requests); trigger log "
                     f"{[p.name for p in trigger_logs]} has {len(fired)} success event; "
                     f"final state {sensor['state']}")

        got, leftovers = read_output(output)
        windows = written_windows(today)  # the daily DAG's lookback_days=2
        summary["windows"] = [f"{a}..{b}" for a, b in windows]
        for stats_type in STATS_TYPES:
            want = [row for first, last in windows
                    for row in sandbox.expected_rows(stats_type, journey_ids, "DAY", first, last)]
            ok, detail = compare_rows(got.get(stats_type, []), want)
            checks.check(f"{stats_type} files hold the expected rows exactly once", ok, detail)
        checks.check("no temporary or foreign files left in the output", not leftovers,
                     ", ".join(leftovers[:5]))
    except Exception as exc:  # noqa: BLE001 - any failure becomes a failed check, then cleanup
        checks.check("the test ran to the end", False, f"{type(exc).__name__}: {exc}")
        _dump_logs(stack_dir)
    finally:
        sampler.stop()
        if not args.keep:
            processes = stack_processes(stack_dir)
            subprocess.run(["bash", str(STACK_SH), "down"], env=env, check=False)
            left = still_running(processes)
            checks.check("the stack left nothing running", not left,
                         f"{len(processes)} processes stopped" + (f", still running: {left}" if left else ""))
        sandbox.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        summary["wall_s"] = round(time.monotonic() - t_start, 1)
    summary["checks"] = {name: ok for name, ok, _ in checks.results}
    _print_summary(summary, args)
    (stack_dir / "summary.json").parent.mkdir(parents=True, exist_ok=True)
    (stack_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    passed = len(checks.results) - checks.failed
    print(f"stack-test: {passed} passed, {checks.failed} failed", flush=True)
    return 1 if checks.failed else 0


def _parsed(api: Api, dag_id: str) -> bool:
    errors = api.get("/importErrors")["import_errors"]
    if errors:
        raise RuntimeError("DAG import errors: " + "; ".join(f"{e['filename']}: {e['stack_trace'][-300:]}"
                                                              for e in errors))
    r = api.session.get(f"{api.base}/api/v2/dags/{dag_id}", timeout=30)
    return r.status_code == 200


def _finished(api: Api, dag_id: str, count: int) -> list[dict] | None:
    runs = api.runs(dag_id)
    if len(runs) >= count and all(r["state"] in TERMINAL for r in runs):
        return runs
    return None


def _quiet(sandbox: Sandbox) -> bool:
    """No request in flight and none arriving for a second."""
    before = sandbox.counters()
    time.sleep(1)
    after = sandbox.counters()
    return after["in_flight"] == 0 and after["requests"] == before["requests"]


def _deferred(api: Api) -> dict | None:
    for ti in api.task_instances(DAILY_DAG, "stack-test-yesterday"):
        if ti["task_id"] == SENSOR_TASK:
            if ti["state"] in TERMINAL or ti["state"] == "up_for_retry":
                raise RuntimeError(f"the sensor ended as {ti['state']} before the cutoff moved")
            if ti["state"] == "deferred" and ti.get("trigger") and ti.get("triggerer_job"):
                return ti
    return None


def _dump_logs(stack_dir: Path) -> None:
    for path in sorted((stack_dir / "logs").glob("*.log")):
        lines = path.read_text(errors="replace").splitlines()
        print(f"----- {path.name} (last 25 of {len(lines)} lines) -----", file=sys.stderr)
        print("\n".join(lines[-25:]), file=sys.stderr)
    for path in sorted((stack_dir / "airflow" / "logs").rglob("*.log"))[-200:]:
        text = path.read_text(errors="replace")
        if '"level":"error"' in text or "Traceback" in text or "[error" in text:
            print(f"----- task log {path.relative_to(stack_dir)} -----", file=sys.stderr)
            print("\n".join(text.splitlines()[-30:]), file=sys.stderr)


def _print_summary(s: dict[str, Any], args: argparse.Namespace) -> None:
    def g(key: str) -> Any:
        return s.get(key, "-")

    print("\n=== distributed stack summary (CeleryExecutor, PostgreSQL, Redis, 2 workers, triggerer) ===")
    print(f"stack start (up to healthy + both workers answering) : {g('stack_start_s')} s")
    print(f"memory of the stack, idle / peak (PSS)               : {g('memory_idle_mib')} / "
          f"{g('memory_peak_mib')} MiB")
    print(f"backfill: 3 monthly runs, {args.journeys} journeys, batches of {args.batch_size}, "
          f"3 stats types -> {g('mapped_tasks')} mapped tasks in {g('backfill_wall_s')} s")
    print(f"mapped tasks per worker                              : {g('mapped_tasks_per_worker')}")
    print(f"all tasks per worker                                 : {g('all_tasks_per_worker')}")
    print(f"backfill API requests / peak concurrent              : {g('backfill_api_requests')} / "
          f"{g('backfill_peak_in_flight')} (pool {args.pool_slots} slots x "
          f"{args.max_concurrent_requests} per task)")
    print(f"daily run with deferrable sensor (incl. waiting)     : {g('daily_wall_s')} s")
    print(f"whole test wall time                                 : {g('wall_s')} s")


def main(argv: list[str] | None = None) -> int:
    """Parse the options and run the test; returns the exit status."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dags-folder", type=Path, default=REPO / "example_dags")
    p.add_argument("--journeys", type=int, default=600, help="journeys in the backfill (default 600)")
    p.add_argument("--batch-size", type=int, default=200, help="journeys per mapped task (default 200)")
    p.add_argument("--pool", default="engagelab_api")
    p.add_argument("--pool-slots", type=int, default=2)
    p.add_argument("--max-concurrent-requests", type=int, default=2, help="per task, in the connection")
    p.add_argument("--worker-concurrency", type=int, default=2)
    p.add_argument("--latency", type=float, default=0.3, help="sandbox seconds per request")
    p.add_argument("--poke-interval", type=int, default=5, help="sensor poke interval (seconds)")
    p.add_argument("--timeout", type=float, default=900, help="seconds to wait for each phase's runs")
    p.add_argument("--midnight-margin", type=float, default=900,
                   help="start only if at least this many seconds remain before midnight UTC")
    p.add_argument("--keep", action="store_true",
                   help="leave the stack running (then: stack.sh down) and the output files in place")
    signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM too runs the clean-up in `finally`
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
