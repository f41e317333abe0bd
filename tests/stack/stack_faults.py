"""Faults of the distributed stack (issue 17, part 1): ``make stack-faults``.

Run by ``STACK_DRIVER=tests/stack/stack_faults.py scripts/stack.sh test`` (not collected by
pytest). The same stack as ``make stack-test`` (PostgreSQL, Redis, api-server, scheduler,
dag-processor, triggerer, two Celery workers, all on 127.0.0.1, started and stopped by PID) and
the example DAGs against the sandbox, with four faults, one phase each, on one stack:

A. **a worker lost mid-task**: a mapped backfill of the three months before this one; at the
   first moment a mapped task of the victim worker (chosen by the seed) holds a partition's
   commit lease, every process of that worker gets SIGKILL at once (its process group and the
   task processes' own groups: a lost node). Airflow notices through the task-instance
   heartbeat timeout (30 s here, ``[scheduler] task_instance_heartbeat_timeout``); the retry
   (``retries=3``, ``ENGAGELAB_RETRY_DELAY=10`` s) runs on the other worker, waits out the dead
   task's commit lease (``ENGAGELAB_COMMIT_LEASE_SECONDS=10``) and completes. The recovery time
   is printed. Then a replacement worker (worker-3) starts and must take work.
B. **the scheduler restarted mid-backfill**: the two months before those, SIGTERM to the
   scheduler when mapped tasks are both running and queued, a few seconds down, a new one.
   Every task ends in success; tasks run twice (if any) are printed and never double a row.
C. **the API unreachable**: two more months; when mapped tasks are running and a request is in
   flight, the sandbox stops (connections refused) for longer than the hook's whole retry
   budget and until every task that was running has failed, then comes back on the same port.
   The failed tries carry the transport error (``EngageLabTransportError``), Airflow retries
   them and they complete.
D. **the triggerer restarted**: two daily runs (the day before yesterday and yesterday) whose
   deferrable sensors wait in the triggerer; SIGTERM to the triggerer and a new one (both
   triggers picked up again, same trigger rows, same ``timeout_at``, same task deadline), the
   first day's data arrives and its run completes; then SIGKILL to the triggerer and a new one
   (picked up after ``[triggerer] triggerer_health_check_threshold``), yesterday's data arrives
   and that run completes. Each sensor succeeds on its first try and resumes once.

At the end: every DAG run succeeded, every row key is in the files exactly once (compared with
the sandbox's oracle over all the days written), no lock or temporary file is left in the
output, the workers that finished their tasks left no staging folder, and no process of the
stack runs. Every fault moment is a state the driver polls for (REST API, the output folder,
the sandbox's counters); the seed (``--seed``, printed) picks the victim worker and the
thresholds, so a failing run can be repeated. The last line is ``stack-faults: N passed, M
failed``; the exit status is 0 only when M is 0.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import stack_driver as base
from stack_driver import (
    BACKFILL_DAG,
    DAILY_DAG,
    SENSOR_TASK,
    STATS_TYPES,
    Api,
    Checks,
    compare_rows,
    log,
    month_start,
    read_output,
    stack_processes,
    still_running,
    wait_for,
    written_windows,
)

from airflow_provider_engagelab.core.retry import BASE_WAIT
from airflow_provider_engagelab.testing.sandbox import Sandbox

REPO = Path(__file__).resolve().parents[2]
STACK_SH = REPO / "scripts" / "stack.sh"
LOCK_PREFIX = "_engagelab.lock."
#: months before this one that each backfill phase covers (oldest, newest)
PHASE_MONTHS = {"worker": (3, 1), "scheduler": (5, 4), "api": (7, 6)}
MONTHS = max(m for m, _ in PHASE_MONTHS.values())
#: the daily runs: days before today; a lookback of 2 days each
DAILY_DAYS = (2, 1)
LOOKBACK_DAYS = max(DAILY_DAYS) - 1 + 2
#: Airflow settings of the stack for this test (STACK_AIRFLOW__* -> AIRFLOW__*)
AIRFLOW_SETTINGS = {
    # a lost worker's tasks are failed (and retried) 30 s after their last heartbeat
    "SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
    "SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
    # a task delivered to a worker that died before starting it (or queued by a scheduler that
    # was stopped): Redis redelivers it only after the visibility timeout (6 h); Airflow fails it
    # for a retry after this. Queued tasks hold their pool slots until then.
    "SCHEDULER__TASK_QUEUED_TIMEOUT": "60",
    "SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL": "10",
}


# --- the stack's processes ------------------------------------------------------------------


def _proc_start(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


class Stack:
    """The running stack: its folder, its services by recorded PID, its database."""

    def __init__(self, stack_dir: Path, env: dict[str, str]) -> None:
        self.dir, self.env = stack_dir, env
        self._db: Any = None
        self.seen: set[tuple[int, str]] = set()  # every process of the stack ever seen
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sh(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """``scripts/stack.sh ARGS`` against this stack."""
        return subprocess.run(["bash", str(STACK_SH), *args], env=self.env, check=check)

    def pid(self, name: str) -> int | None:
        """The PID of a service if that very process still runs."""
        try:
            pid, start = (self.dir / "pids" / name).read_text().split()
        except (OSError, ValueError):
            return None
        return int(pid) if _proc_start(int(pid)) == start else None

    def tree(self, name: str) -> list[int]:
        """A service's leader and every process below it."""
        leader = self.pid(name)
        if leader is None:
            return []
        kids = base._children()
        found, todo = [], [leader]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(kids.get(pid, ()))
        return found

    def lose(self, name: str) -> tuple[list[int], set[int]]:
        """What ``stack.sh kill NAME`` does, without a shell between the moment and the kill:
        SIGKILL to the service's process group and to every process below it (each task
        process of a worker runs in a group of its own), then forget its PID file."""
        procs = self.tree(name)
        if not procs:
            raise RuntimeError(f"{name} is not running")
        groups = {g for g in map(_pgid, procs) if g is not None}
        for group in groups:
            try:
                os.killpg(group, signal.SIGKILL)
            except OSError:
                pass
        for pid in procs:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        wait_for(f"{name}'s processes to be gone", lambda: not any(_proc_start(p) for p in procs),
                 timeout=30, interval=0.05)
        (self.dir / "pids" / name).unlink(missing_ok=True)
        return procs, groups

    # -- tracking every process, for the final "nothing left running" ----------------------

    def track(self) -> None:
        def loop() -> None:
            while not self._stop.is_set():
                self.seen |= stack_processes(self.dir)
                self._stop.wait(1.0)

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def stop_tracking(self) -> None:
        self._stop.set()
        self.seen |= stack_processes(self.dir)

    # -- the metadata database (read only) --------------------------------------------------

    def db_rows(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        if self._db is None:
            import psycopg2

            settings = {}
            for line in (self.dir / "env.sh").read_text().splitlines():
                if line.startswith("export "):
                    key, _, value = line[7:].partition("=")
                    settings[key] = shlex.split(value)[0] if value else ""
            url = settings["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace("postgresql+psycopg2://",
                                                                           "postgresql://", 1)
            self._db = psycopg2.connect(url)
            self._db.autocommit = True
        with self._db.cursor() as cur:
            cur.execute(sql, tuple(params))
            return cur.fetchall()

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


# --- REST API helpers -----------------------------------------------------------------------


def tis(api: Api, dag_id: str, *states: str) -> list[dict]:
    """Task instances of every run of a DAG, optionally only those in ``states``."""
    params: dict[str, Any] = {"limit": 1000}
    if states:
        params["state"] = list(states)
    return api.get(f"/dags/{dag_id}/dagRuns/~/taskInstances", **params)["task_instances"]


def tries(api: Api, ti: dict) -> list[dict]:
    """Every try of a task instance (history and the current one), oldest first."""
    path = f"/dags/{ti['dag_id']}/dagRuns/{ti['dag_run_id']}/taskInstances/{ti['task_id']}"
    if ti["map_index"] >= 0:
        path += f"/{ti['map_index']}"
    found = api.get(path + "/tries", limit=100)["task_instances"]
    return sorted(found, key=lambda t: t["try_number"])


def key(ti: dict) -> tuple[str, str, int]:
    return ti["dag_run_id"], ti["task_id"], ti["map_index"]


def label(ti: dict) -> str:
    return f"{ti['task_id']}[{ti['map_index']}]@{ti['dag_run_id'].replace('backfill__', '')[:10]}"


def parse_ts(value: str | None) -> float | None:
    """An API timestamp as epoch seconds."""
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def runs_of(api: Api, dag_id: str, logical_dates: set[datetime]) -> list[dict]:
    want = {d.isoformat() for d in logical_dates}
    return [r for r in api.runs(dag_id)
            if r.get("logical_date") and datetime.fromisoformat(
                r["logical_date"].replace("Z", "+00:00")).isoformat() in want]


def finished(api: Api, dag_id: str, logical_dates: set[datetime]) -> list[dict] | None:
    runs = runs_of(api, dag_id, logical_dates)
    if len(runs) == len(logical_dates) and all(r["state"] in base.TERMINAL for r in runs):
        return runs
    return None


def create_backfill(api: Api, first: datetime, last: datetime, timeout: float) -> None:
    """A backfill of the monthly runs from ``first`` to ``last`` (inclusive), once the previous
    backfill of the DAG has completed (Airflow runs one at a time per DAG)."""
    body = {"dag_id": BACKFILL_DAG, "from_date": first.isoformat(), "to_date": last.isoformat(),
            "max_active_runs": 2}

    def attempt() -> bool:
        r = api.session.post(f"{api.base}/api/v2/backfills", json=body, timeout=60)
        if r.status_code == 409:  # the previous backfill is not marked completed yet
            return False
        if r.status_code not in (200, 201):
            raise RuntimeError(f"POST /backfills -> {r.status_code}: {r.text[:300]}")
        return True

    wait_for("the previous backfill to complete", attempt, timeout=timeout, interval=2)


def task_log(stack_dir: Path, ti: dict, try_number: int) -> str:
    folder = (stack_dir / "airflow" / "logs" / f"dag_id={ti['dag_id']}" / f"run_id={ti['dag_run_id']}"
              / f"task_id={ti['task_id']}")
    if ti["map_index"] >= 0:
        folder /= f"map_index={ti['map_index']}"
    path = folder / f"attempt={try_number}.log"
    return path.read_text(errors="replace") if path.exists() else ""


def leases(root: Path) -> dict[Path, int | None]:
    """Lease files under the output root, with the PID written in each."""
    found: dict[Path, int | None] = {}
    for path in root.rglob(f"{LOCK_PREFIX}*"):
        try:
            found[path] = int(json.loads(path.read_text())["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            found[path] = None
    return found


def fired_events(stack_dir: Path, dag_id: str, run_id: str, task_id: str) -> dict[str, str]:
    """The "Trigger fired event" records of a deferred task, by timestamp: Airflow writes them
    to the task's trigger log files (``attempt=N.log.trigger.<triggerer job>.log``, JSON lines)
    and, depending on how the trigger's logging was set up, to the triggerer's stdout as well;
    one event found in both counts once."""
    found: dict[str, str] = {}
    folder = stack_dir / "airflow" / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
    for path in sorted(folder.glob("attempt=*.log.trigger.*.log")):
        for line in path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("event") == "Trigger fired event":
                found[str(record.get("timestamp", ""))[:23]] = str(record.get("result", ""))
    stdout = stack_dir / "logs" / "triggerer.log"
    for line in stdout.read_text(errors="replace").splitlines() if stdout.exists() else ():
        if "Trigger fired event" in line and f"/{run_id}/{task_id}/" in line:
            found[line.split(" ", 1)[0].rstrip("Z")[:23]] = line
    return found


def resumes(stack_dir: Path, dag_id: str, run_id: str, task_id: str) -> int:
    """How many times the sensor resumed from a trigger event: its ``execute_complete`` logs
    "EngageLab statistics of ... are ready" once per resume, in the task's own log files (the
    trigger log files, unlike these, can lose their last lines when a triggerer dies)."""
    folder = stack_dir / "airflow" / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
    return sum(path.read_text(errors="replace").count("are ready (after")
               for path in sorted(folder.glob("attempt=*.log")) if ".log.trigger." not in path.name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the test -------------------------------------------------------------------------------


class Faults:
    """One run of the four fault phases; ``summary`` collects the figures."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.checks = Checks()
        self.summary: dict[str, Any] = {"seed": args.seed}
        self.stack_dir = Path(os.environ.get("STACK_DIR") or Path(tempfile.gettempdir()) / "engagelab-stack")
        self.work = Path(tempfile.mkdtemp(prefix="engagelab-stack-faults-"))
        self.output = self.work / "output"
        now = datetime.now(timezone.utc)
        self.today = now.date()
        self.today0 = datetime(self.today.year, self.today.month, self.today.day, tzinfo=timezone.utc)
        self.journey_ids = list(range(1001, 1001 + args.journeys))
        self.summary["started"] = now.isoformat(timespec="seconds")
        self.conn_extra = {"max_concurrent_requests": args.max_concurrent_requests,
                           "max_retries": args.max_retries, "max_retry_wait": args.max_retry_wait}
        # the longest a call can keep retrying a refused connection: the sum of its backoffs
        self.retry_budget = sum(min(args.max_retry_wait, BASE_WAIT * 2 ** k) for k in range(args.max_retries))
        self.sandbox = Sandbox(port=free_port(), latency=args.latency, available_through=self.today0)
        self.api: Api
        self.stack: Stack
        self.workers = ["worker-1", "worker-2"]
        self.replacement = "worker-3"
        self.killed_pids: set[int] = set()
        self.replacement_started_at = 0.0

    # -- plumbing ---------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        env = base.example_dag_env(
            self.stack_dir, self.args, self.sandbox.airflow_connection(**self.conn_extra), self.journey_ids,
            self.output, ENGAGELAB_RETRY_DELAY=str(self.args.retry_delay),
            ENGAGELAB_COMMIT_LEASE_SECONDS=str(self.args.commit_lease_seconds),
        )
        env.update({f"STACK_AIRFLOW__{k}": v for k, v in AIRFLOW_SETTINGS.items()})
        return env

    def months(self, phase: str) -> list[datetime]:
        oldest, newest = PHASE_MONTHS[phase]
        return [month_start(self.today, back) for back in range(oldest, newest - 1, -1)]

    def mapped(self, *states: str, dates: set[datetime] | None = None) -> list[dict]:
        found = [t for t in tis(self.api, BACKFILL_DAG, *states) if t["map_index"] >= 0]
        if dates is not None:
            want = {d.isoformat() for d in dates}
            found = [t for t in found if t.get("logical_date") and datetime.fromisoformat(
                t["logical_date"].replace("Z", "+00:00")).isoformat() in want]
        return found

    def planned_calls(self, runs: int) -> int:
        """API calls of ``runs`` monthly runs: one per 100 journeys of a batch, per stats type
        (a month is one window of at most 31 days)."""
        per_batch = [-(-len(self.journey_ids[i:i + self.args.batch_size]) // 100)
                     for i in range(0, len(self.journey_ids), self.args.batch_size)]
        return runs * len(STATS_TYPES) * sum(per_batch)

    def wait_runs(self, dag_id: str, dates: set[datetime], what: str) -> list[dict]:
        return wait_for(what, lambda: finished(self.api, dag_id, dates), timeout=self.args.timeout)

    def check_runs(self, phase: str, runs: list[dict]) -> None:
        self.checks.check(f"{phase}: every run succeeded", all(r["state"] == "success" for r in runs),
                          ", ".join(f"{r['dag_run_id']}={r['state']}" for r in runs))

    # -- phase A: a worker lost mid-task ------------------------------------------------------

    def phase_worker(self) -> None:
        args, api = self.args, self.api
        months = self.months("worker")
        dates = set(months)
        victim = self.rng.choice(self.workers)
        survivor = next(w for w in self.workers if w != victim)
        self.summary["A_victim"] = victim
        log(f"A: backfill {months[0]:%Y-%m}..{months[-1]:%Y-%m}; victim {victim} (seed {args.seed}): SIGKILL "
            f"to all its processes at the first moment one of its mapped tasks holds a commit lease")
        self.sandbox.reset_counters()
        t0 = time.monotonic()
        last = months[-1]
        api.trigger(BACKFILL_DAG, "faults-last-month", last, month_start(self.today, 0))
        api.call("PATCH", f"/dags/{BACKFILL_DAG}", json={"is_paused": False})
        create_backfill(api, months[0], months[-2], timeout=60)

        # The moment: a lease file whose writer is a process of the victim, while the victim
        # runs a mapped task (after 180 s without one: when it runs its slots full).
        deadline = time.monotonic() + 180
        tree: set[int] = set()
        tree_at = 0.0
        running_on_victim: list[dict] = []
        api_at = 0.0
        polls = 0
        moment = ""
        while True:
            now = time.monotonic()
            if now - tree_at > 0.5:
                tree, tree_at = set(self.stack.tree(victim)), now
            if now - api_at > 1.0:
                running_on_victim = [t for t in self.mapped("running", dates=dates)
                                     if t["hostname"] == victim]
                api_at = now
                polls += 1
                if polls % 5 == 0 and finished(api, BACKFILL_DAG, dates):
                    raise RuntimeError("phase A's runs finished before the fault could be injected")
            held = [p for p, pid in leases(self.output).items() if pid in tree]
            if held and running_on_victim:
                where = held[0].parent.relative_to(self.output)
                moment = f"a task of {victim} holds the commit lease of {where}"
                break
            if now > deadline and len(running_on_victim) >= args.worker_concurrency:
                moment = f"{victim} runs {len(running_on_victim)} mapped tasks (no lease seen in 180 s)"
                break
            time.sleep(0.05)
        procs, groups = self.stack.lose(victim)
        t_kill = time.monotonic()
        self.killed_pids = set(procs)
        log(f"A: {moment}: SIGKILL to {len(procs)} processes in {len(groups)} process groups of {victim}")
        self.summary["A_moment"] = moment
        after_kill = {p.parent.relative_to(self.output).as_posix(): pid
                      for p, pid in leases(self.output).items()}
        dead_leases = sorted(d for d, pid in after_kill.items() if pid in self.killed_pids)
        killed = [t for t in self.mapped("running", dates=dates) if t["hostname"] == victim]
        self.summary["A_killed_tasks"] = [label(t) for t in killed]
        self.summary["A_killed_inside_commit"] = dead_leases
        log(f"A: killed {len(killed)} running tasks {[label(t) for t in killed]}; leases left by them: "
            f"{dead_leases or 'none'}")
        self.checks.check("A: the lost worker's processes are all gone",
                          not any(_proc_start(p) for p in procs), f"{len(procs)} processes")

        # Recovery: each killed task is failed by the heartbeat timeout, retried and done. A
        # task whose work was over may have sent its success before the kill, the API server
        # committing it after (seen: a 4.4 s PATCH .../state that began before the SIGKILL and
        # ended after it): that try ends "success" by itself and needs no retry.
        want = {key(t): t["try_number"] for t in killed}
        detected: dict[tuple, float] = {}
        retried: dict[tuple, float] = {}
        done: dict[tuple, float] = {}
        finished_anyway: set[tuple] = set()
        replacement_started = False

        def progress() -> bool:
            nonlocal replacement_started
            now = time.monotonic()
            current = {key(t): t for t in self.mapped(dates=dates)}
            for k, try_number in want.items():
                ti = current.get(k)
                if ti is None:
                    continue
                if k not in done and ti["try_number"] == try_number and ti["state"] == "success":
                    finished_anyway.add(k)
                    done[k] = now
                    continue
                if k not in detected and (ti["state"] != "running" or ti["try_number"] > try_number):
                    detected[k] = now
                again = ti["try_number"] > try_number
                if k not in retried and again and ti["state"] in ("running", "success"):
                    retried[k] = now
                if k not in done and again and ti["state"] == "success":
                    done[k] = now
            if not replacement_started and len(retried) + len(finished_anyway) == len(want):
                # every retry has started (on the survivor, the only worker): now the replacement
                self.replacement_started_at = time.time()
                self.stack.sh("start", self.replacement)
                replacement_started = True
                self.summary["A_replacement_started_s"] = round(now - t_kill, 1)
            return len(done) == len(want) and replacement_started

        wait_for("the killed tasks to be retried and to succeed", progress, timeout=args.timeout, interval=1)
        self.stack.sh("wait", self.replacement, survivor)
        # answering ping: known only once `stack.sh wait` returns (an upper bound)
        self.summary["A_replacement_ready_s"] = round(time.time() - self.replacement_started_at, 1)
        runs = self.wait_runs(BACKFILL_DAG, dates, "phase A's runs to finish")
        self.summary["A_wall_s"] = round(time.monotonic() - t0, 1)
        recovery = max(done.values()) - t_kill if done else None
        self.summary["A_detected_s"] = round(max(detected.values()) - t_kill, 1) if detected else None
        self.summary["A_retry_started_s"] = round(max(retried.values()) - t_kill, 1) if retried else None
        self.summary["A_recovery_s"] = round(recovery, 1) if recovery is not None else None
        self.check_runs("A", runs)
        self.checks.check("A: the kill hit running mapped tasks", bool(killed),
                          f"{len(killed)} tasks of {victim}: {moment}")
        early = sorted(label(t) for t in killed if key(t) in finished_anyway)
        self.summary["A_finished_before_the_kill"] = early
        self.checks.check("A: at least one killed task was failed by the heartbeat timeout and retried",
                          bool(retried), f"{len(retried)} retried, {len(finished_anyway)} had sent their "
                          f"success before the kill: {early or 'none'}")
        for t in killed:
            history = tries(api, t)
            first = next((h for h in history if h["try_number"] == want[key(t)]), None)
            last = history[-1]
            if key(t) in finished_anyway:
                self.checks.check(f"A: {label(t)}: its success was on its way when it was killed: that try "
                                  "succeeded, no retry",
                                  last["try_number"] == want[key(t)] and last["state"] == "success",
                                  f"tries {[(h['try_number'], h['state'], h['hostname']) for h in history]}")
                continue
            self.checks.check(f"A: {label(t)}: failed (heartbeat timeout), retried on {survivor}, succeeded",
                              first is not None and first["state"] == "failed" and last["state"] == "success"
                              and last["hostname"] == survivor,
                              f"tries {[(h['try_number'], h['state'], h['hostname']) for h in history]}")
        log(f"A: recovery {self.summary['A_recovery_s']} s after the kill (failed by the heartbeat timeout "
            f"after {self.summary['A_detected_s']} s, retries started after "
            f"{self.summary['A_retry_started_s']} s)")
        # Tasks delivered to the victim but not started wait task_queued_timeout, then requeue.
        others = [t for t in self.mapped(dates=dates) if key(t) not in want and t["try_number"] > 1]
        self.summary["A_other_retried"] = [f"{label(t)} try {t['try_number']}" for t in others]
        if others:
            log(f"A: also retried (delivered to {victim} but not started, or requeued): "
                f"{self.summary['A_other_retried']}")
        self.summary["A_api_requests"] = self.sandbox.counters()["requests"]
        self.summary["A_planned_calls"] = self.planned_calls(len(dates))

    # -- phase B: the scheduler restarted -----------------------------------------------------

    def phase_scheduler(self) -> None:
        args, api = self.args, self.api
        months = self.months("scheduler")
        dates = set(months)
        threshold = self.rng.choice([2, 3])
        down_for = round(self.rng.uniform(3, 10), 1)
        self.summary["B_moment"] = f">= {threshold} mapped tasks running and >= 1 queued; {down_for} s down"
        log(f"A->B: backfill {months[0]:%Y-%m}..{months[-1]:%Y-%m}; SIGTERM to the scheduler when "
            f"{self.summary['B_moment']}")
        self.sandbox.reset_counters()
        t0 = time.monotonic()
        create_backfill(api, months[0], months[-1], timeout=240)

        def moment() -> dict | None:
            now = self.mapped("running", "queued", dates=dates)
            running = [t for t in now if t["state"] == "running"]
            queued = [t for t in now if t["state"] == "queued"]
            if len(running) >= threshold and queued:
                return {"running": running, "queued": queued}
            if finished(api, BACKFILL_DAG, dates):
                raise RuntimeError("phase B's runs finished before the fault could be injected")
            return None

        at = wait_for("mapped tasks running and queued", moment, timeout=args.timeout, interval=0.5)
        t_stop = time.monotonic()
        self.stack.sh("stop", "scheduler")
        t_stopped = time.monotonic()
        time.sleep(down_for)
        self.stack.sh("start", "scheduler")
        t_started = time.monotonic()
        self.stack.sh("wait")
        t_healthy = time.monotonic()
        self.summary["B_at_stop"] = {"running": [label(t) for t in at["running"]],
                                     "queued": [label(t) for t in at["queued"]]}
        self.summary["B_stop_s"] = round(t_stopped - t_stop, 1)
        self.summary["B_down_s"] = round(t_started - t_stop, 1)
        self.summary["B_healthy_after_s"] = round(t_healthy - t_started, 1)
        log(f"B: scheduler stopped with {len(at['running'])} running and {len(at['queued'])} queued "
            f"({self.summary['B_stop_s']} s to stop), down {self.summary['B_down_s']} s, healthy again after "
            f"{self.summary['B_healthy_after_s']} s")
        runs = self.wait_runs(BACKFILL_DAG, dates, "phase B's runs to finish")
        self.summary["B_wall_s"] = round(time.monotonic() - t0, 1)
        self.check_runs("B", runs)
        ran_twice, overlapping = [], []
        for t in self.mapped(dates=dates):
            started = [h for h in tries(api, t) if h.get("start_date")]
            if len(started) > 1:
                ran_twice.append(f"{label(t)}: "
                                 f"{[(h['try_number'], h['state'], h['hostname']) for h in started]}")
                spans = sorted((parse_ts(h["start_date"]), parse_ts(h["end_date"]) or time.time())
                               for h in started)
                if any(b[0] < a[1] for a, b in zip(spans, spans[1:], strict=False)):
                    overlapping.append(label(t))
        self.summary["B_ran_twice"] = ran_twice
        calls = self.sandbox.counters()["requests"]
        planned = self.planned_calls(len(dates))
        self.summary["B_api_requests"], self.summary["B_planned_calls"] = calls, planned
        self.checks.check("B: no mapped task ran twice at the same time", not overlapping,
                          f"{len(ran_twice)} ran more than once: {ran_twice}" if ran_twice else
                          f"each ran once; {calls} API requests for {planned} planned calls")

    # -- phase C: the API unreachable ---------------------------------------------------------

    def phase_api(self) -> None:
        args, api = self.args, self.api
        months = self.months("api")
        dates = set(months)
        threshold = self.rng.choice([2, 3])
        min_down = self.retry_budget + 5
        self.summary["C_moment"] = f">= {threshold} mapped tasks running and >= 1 API request in flight"
        log(f"C: backfill {months[0]:%Y-%m}..{months[-1]:%Y-%m}; the sandbox stops when "
            f"{self.summary['C_moment']}, for >= {min_down:g} s (the hook's retry budget: {args.max_retries} "
            f"retries, waits <= {self.retry_budget:g} s in all) and until the tasks running then have failed")
        self.sandbox.reset_counters()
        t0 = time.monotonic()
        create_backfill(api, months[0], months[-1], timeout=240)
        running: list[dict] = []

        def moment() -> bool:
            nonlocal running
            if self.sandbox.counters()["in_flight"] < 1:
                return False
            running = self.mapped("running", dates=dates)
            if finished(api, BACKFILL_DAG, dates):
                raise RuntimeError("phase C's runs finished before the fault could be injected")
            return len(running) >= threshold and self.sandbox.counters()["in_flight"] >= 1

        wait_for("mapped tasks running with a request in flight", moment, timeout=args.timeout, interval=0.2)
        self.sandbox.stop()
        t_down = time.monotonic()
        at_stop = {key(t): t["try_number"] for t in running}
        log(f"C: sandbox stopped (port {self.sandbox._requested_port}) with {len(running)} tasks running: "
            f"{[label(t) for t in running]}")

        def all_failed() -> bool:
            if time.monotonic() - t_down < min_down:
                return False
            current = {key(t): t for t in self.mapped(dates=dates)}
            return all(current[k]["state"] != "running" or current[k]["try_number"] > n
                       for k, n in at_stop.items() if k in current)

        wait_for("the running tasks to fail", all_failed, timeout=300, interval=1)
        self.sandbox.start()
        t_up, wall_up = time.monotonic(), time.time()
        self.summary["C_outage_s"] = round(t_up - t_down, 1)
        log(f"C: sandbox back on the same port after {self.summary['C_outage_s']} s")
        runs = self.wait_runs(BACKFILL_DAG, dates, "phase C's runs to finish")
        t_end = time.monotonic()
        self.summary["C_wall_s"] = round(t_end - t0, 1)
        self.check_runs("C", runs)
        failed_tries, with_transport, done_at = [], [], []
        for t in self.mapped(dates=dates):
            history = tries(api, t)
            bad = [h for h in history if h["state"] in ("failed", "up_for_retry")]
            if not bad:
                continue
            for h in bad:
                failed_tries.append(f"{label(t)} try {h['try_number']}")
                text = task_log(self.stack_dir, t, h["try_number"])
                if "EngageLabTransportError" in text:
                    with_transport.append(f"{label(t)} try {h['try_number']}")
            done_at.append(parse_ts(history[-1]["end_date"]) or 0.0)
            self.checks.check(f"C: {label(t)}: retried after the outage and succeeded",
                              history[-1]["state"] == "success",
                              f"tries {[(h['try_number'], h['state']) for h in history]}")
        self.summary["C_failed_tries"] = failed_tries
        self.summary["C_transport_errors"] = len(with_transport)
        if done_at:
            # wall clock of the last retried task's success, relative to the sandbox's return
            self.summary["C_recovered_after_up_s"] = round(max(done_at) - wall_up, 1)
        self.checks.check("C: tasks failed with the transport error while the API was down",
                          bool(failed_tries) and len(with_transport) == len(failed_tries),
                          f"{len(failed_tries)} failed tries, {len(with_transport)} with "
                          f"EngageLabTransportError in their log: {failed_tries}")
        self.summary["C_api_requests"] = self.sandbox.counters()["requests"]

    # -- phase D: the triggerer restarted -----------------------------------------------------

    def trigger_rows(self, run_ids: list[str]) -> dict[str, dict]:
        """Per run: the sensor's trigger row id, its ``timeout_at`` and the task's deadline."""
        rows = self.stack.db_rows(
            "SELECT ti.run_id, ti.trigger_id, ti.trigger_timeout, t.kwargs, t.triggerer_id "
            "FROM task_instance ti JOIN trigger t ON t.id = ti.trigger_id "
            "WHERE ti.dag_id = %s AND ti.task_id = %s AND ti.run_id = ANY(%s)",
            (DAILY_DAG, SENSOR_TASK, run_ids))
        found = {}
        for run_id, trigger_id, trigger_timeout, kwargs, triggerer_id in rows:
            try:
                timeout_at = json.loads(kwargs).get("timeout_at")
            except (TypeError, ValueError):
                timeout_at = "(encrypted)"
            found[run_id] = {"trigger_id": trigger_id, "timeout_at": timeout_at,
                             "trigger_timeout": trigger_timeout.isoformat() if trigger_timeout else None,
                             "triggerer_id": triggerer_id}
        return found

    def deferred(self, run_ids: list[str]) -> dict[str, dict] | None:
        found = {}
        for ti in tis(self.api, DAILY_DAG):
            if ti["task_id"] != SENSOR_TASK or ti["dag_run_id"] not in run_ids:
                continue
            if ti["state"] in base.TERMINAL or ti["state"] == "up_for_retry":
                raise RuntimeError(f"the sensor of {ti['dag_run_id']} ended as {ti['state']} "
                                   "before its data came")
            if ti["state"] == "deferred" and ti.get("trigger") and ti.get("triggerer_job"):
                found[ti["dag_run_id"]] = ti
        return found if len(found) == len(run_ids) else None

    def restart_triggerer(self, how: str, run_ids: list[str]) -> dict[str, Any]:
        """Stop the triggerer (``SIGTERM``: stack.sh stop; ``SIGKILL``: every process at once)
        while the sensors of ``run_ids`` are deferred, start a new one, wait until it runs them."""
        before_ti = self.deferred(run_ids) or {}
        before = self.trigger_rows(run_ids)
        old_job = {r: before_ti[r]["triggerer_job"]["id"] for r in before_ti}
        t_stop = time.monotonic()
        if how == "SIGTERM":
            self.stack.sh("stop", "triggerer")
        else:
            self.stack.lose("triggerer")
        self.stack.sh("start", "triggerer")
        t_start = time.monotonic()
        polls = self.sandbox.counters()["requests"]

        def picked_up() -> dict | None:
            now = self.deferred(run_ids)
            if not now or any(now[r]["triggerer_job"]["id"] == old_job.get(r) for r in run_ids):
                return None
            # the new triggerer polls the API for them (each poll asks for every journey)
            return now if self.sandbox.counters()["requests"] > polls else None

        after_ti = wait_for(f"the new triggerer to run the triggers of {run_ids}", picked_up,
                            timeout=self.args.timeout, interval=1)
        t_picked = time.monotonic()
        after = self.trigger_rows(run_ids)
        result = {"stop_s": round(t_start - t_stop, 1), "picked_up_s": round(t_picked - t_stop, 1),
                  "old_job": old_job, "new_job": {r: after_ti[r]["triggerer_job"]["id"] for r in run_ids}}
        for r in run_ids:
            same = (before[r]["trigger_id"] == after[r]["trigger_id"]
                    and before[r]["timeout_at"] is not None
                    and before[r]["timeout_at"] == after[r]["timeout_at"]
                    and before[r]["trigger_timeout"] == after[r]["trigger_timeout"])
            b, a = before[r], after[r]
            self.checks.check(f"D ({how}): {r}: the trigger was picked up again with its absolute deadline",
                              same,
                              f"trigger {b['trigger_id']} -> {a['trigger_id']}, timeout_at "
                              f"{b['timeout_at']} -> {a['timeout_at']}, task deadline "
                              f"{b['trigger_timeout']} -> {a['trigger_timeout']}, triggerer job "
                              f"{old_job.get(r)} -> {result['new_job'][r]}, "
                              f"{result['picked_up_s']} s after the stop")
        return result

    def phase_triggerer(self) -> None:
        args, api = self.args, self.api
        days = [self.today0 - timedelta(days=n) for n in DAILY_DAYS]  # oldest first
        run_ids = [f"faults-day-{d:%Y-%m-%d}" for d in days]
        # Neither day is available yet: data through the day before the first one.
        self.sandbox.configure(available_through=days[0])
        self.sandbox.reset_counters()
        t0 = time.monotonic()
        for d, run_id in zip(days, run_ids, strict=True):
            api.trigger(DAILY_DAG, run_id, d, d + timedelta(days=1))
        api.call("PATCH", f"/dags/{DAILY_DAG}", json={"is_paused": False})
        log(f"D: daily runs {run_ids}: waiting for both sensors to defer, cutoff {days[0]:%Y-%m-%d} "
            "00:00 UTC")
        wait_for("both sensors deferred to the triggerer", lambda: self.deferred(run_ids),
                 timeout=args.timeout)
        at = self.sandbox.counters()["requests"]
        wait_for("the triggers' first poll", lambda: self.sandbox.counters()["requests"] > at,
                 timeout=args.poke_interval + 60, interval=0.5)

        term = self.restart_triggerer("SIGTERM", run_ids)
        self.summary["D_sigterm"] = term
        log(f"D: SIGTERM: stopped in {term['stop_s']} s, both triggers running again {term['picked_up_s']} s "
            f"after the stop; the first day's data arrives")
        self.sandbox.configure(available_through=days[1])
        first = self.wait_runs(DAILY_DAG, {days[0]}, f"{run_ids[0]} to finish")
        self.summary["D_first_wall_s"] = round(time.monotonic() - t0, 1)

        kill = self.restart_triggerer("SIGKILL", run_ids[1:])
        self.summary["D_sigkill"] = kill
        log(f"D: SIGKILL: the trigger running again {kill['picked_up_s']} s after the kill; "
            "yesterday's data arrives")
        self.sandbox.configure(available_through=self.today0)
        second = self.wait_runs(DAILY_DAG, {days[1]}, f"{run_ids[1]} to finish")
        self.summary["D_wall_s"] = round(time.monotonic() - t0, 1)
        self.check_runs("D", first + second)
        for run_id in run_ids:
            ti_all = [t for t in tis(api, DAILY_DAG) if t["dag_run_id"] == run_id]
            sensor = next(t for t in ti_all if t["task_id"] == SENSOR_TASK)
            fired = fired_events(self.stack_dir, DAILY_DAG, run_id, SENSOR_TASK)
            resumed = resumes(self.stack_dir, DAILY_DAG, run_id, SENSOR_TASK)
            # One resume from one success event; the triggers' own logs show at most one firing
            # (once a stack run found none there: those lines can be lost with a triggerer).
            self.checks.check(f"D: {run_id}: the sensor succeeded once, on its first try, resumed once",
                              sensor["state"] == "success" and sensor["try_number"] == 1 and resumed == 1
                              and len(fired) <= 1
                              and all("'status': 'success'" in v for v in fired.values()),
                              f"state {sensor['state']}, try {sensor['try_number']}, resumed {resumed} "
                              f"time(s), {len(fired)} fired event(s) in the trigger logs")
            downstream = {t["task_id"]: t["state"] for t in ti_all if t["task_id"] != SENSOR_TASK}
            self.checks.check(f"D: {run_id}: the downstream tasks ran",
                              bool(downstream) and set(downstream.values()) == {"success"}, str(downstream))

    # -- the whole run ----------------------------------------------------------------------

    def run(self) -> int:
        args = self.args
        t_start = time.monotonic()
        self.sandbox.start()
        env = self.env()
        log(f"seed {args.seed}; sandbox at {self.sandbox.url} (latency {args.latency} s), data through "
            f"{self.today0:%Y-%m-%d} 00:00 UTC; output under {self.output}; Airflow settings "
            f"{AIRFLOW_SETTINGS}")
        self.stack = Stack(self.stack_dir, env)
        try:
            t0 = time.monotonic()
            self.stack.sh("up")
            self.summary["stack_start_s"] = round(time.monotonic() - t0, 1)
            self.stack.track()
            info = json.loads((self.stack_dir / "stack.json").read_text())
            self.api = Api(info["api_url"], info["username"], info["password"])
            self.api.call("POST", "/pools", json={
                "name": args.pool, "slots": args.pool_slots, "description": "EngageLab API calls",
                "include_deferred": False})
            for dag_id in (BACKFILL_DAG, DAILY_DAG):
                wait_for(f"{dag_id} parsed", lambda d=dag_id: base._parsed(self.api, d), timeout=300)
            for phase in (self.phase_worker, self.phase_scheduler, self.phase_api, self.phase_triggerer):
                t0 = time.monotonic()
                phase()
                log(f"{phase.__name__} done in {time.monotonic() - t0:.0f} s")
            self.final_checks()
        except Exception as exc:  # noqa: BLE001 - any failure becomes a failed check, then cleanup
            self.checks.check("the test ran to the end", False, f"{type(exc).__name__}: {exc}")
            base._dump_logs(self.stack_dir)
        finally:
            self.stack.stop_tracking()
            self.stack.close()
            if not args.keep:
                self.stack.sh("down", check=False)
                left = still_running(self.stack.seen)
                self.checks.check("the stack left nothing running", not left,
                                  f"{len(self.stack.seen)} processes seen, all stopped"
                                  + (f"; still running: {left}" if left else ""))
            self.sandbox.stop()
            if not args.keep:
                shutil.rmtree(self.work, ignore_errors=True)
            self.summary["wall_s"] = round(time.monotonic() - t_start, 1)
        self.summary["checks"] = {name: ok for name, ok, _ in self.checks.results}
        self.print_summary()
        (self.stack_dir / "faults-summary.json").write_text(
            json.dumps(self.summary, indent=2, default=str) + "\n")
        passed = len(self.checks.results) - self.checks.failed
        print(f"stack-faults: {passed} passed, {self.checks.failed} failed (seed {args.seed})", flush=True)
        return 1 if self.checks.failed else 0

    def final_checks(self) -> None:
        api = self.api
        runs = api.runs(BACKFILL_DAG) + api.runs(DAILY_DAG)
        states = Counter(r["state"] for r in runs)
        expected_runs = sum(len(self.months(p)) for p in PHASE_MONTHS) + len(DAILY_DAYS)
        self.checks.check("every DAG run of the test succeeded",
                          set(states) == {"success"} and len(runs) == expected_runs,
                          f"{len(runs)} runs (expected {expected_runs}): {dict(states)}")
        per_worker = Counter(t["hostname"] for t in tis(api, BACKFILL_DAG) if t["map_index"] >= 0)
        self.summary["mapped_tasks_per_worker"] = dict(sorted(per_worker.items()))
        first = min((parse_ts(t["start_date"]) or 0 for t in tis(api, BACKFILL_DAG)
                     if t["hostname"] == self.replacement), default=None)
        when = (f"{first - self.replacement_started_at:.0f} s after `stack.sh start {self.replacement}`"
                if first else "never")
        if first:
            self.summary["A_replacement_first_task_s"] = round(first - self.replacement_started_at, 1)
        self.checks.check(f"the replacement {self.replacement} took work",
                          per_worker.get(self.replacement, 0) > 0,
                          f"{per_worker.get(self.replacement, 0)} mapped tasks; its first started {when}")
        got, leftovers = read_output(self.output)
        windows = written_windows(self.today, lookback_days=LOOKBACK_DAYS, months=MONTHS)
        self.summary["windows"] = [f"{a}..{b}" for a, b in windows]
        for stats_type in STATS_TYPES:
            want = [row for first, last in windows
                    for row in self.sandbox.expected_rows(stats_type, self.journey_ids, "DAY", first, last)]
            ok, detail = compare_rows(got.get(stats_type, []), want)
            self.summary[f"rows_{stats_type}"] = detail
            self.checks.check(f"{stats_type} files hold every key exactly once", ok, detail)
        self.checks.check("no lock or temporary file left in the output", not leftovers,
                          ", ".join(leftovers[:5]))
        # Staging folders in the workers' TMPDIR: a task that ended (well or not) removed its
        # own; only the killed tasks of the lost worker may have left one.
        left = {w: sorted(p.name for p in (self.stack_dir / "tmp" / w).glob("engagelab-*"))
                for w in (*self.workers, self.replacement) if (self.stack_dir / "tmp" / w).is_dir()}
        victim = self.summary.get("A_victim")
        survivors = {w: names for w, names in left.items() if w != victim and names}
        self.summary["staging_left_by_the_killed_tasks"] = left.get(victim, [])
        killed = len(self.summary.get("A_killed_tasks", []))
        self.checks.check("the workers' tasks left no staging folder (the killed ones aside)", not survivors,
                          f"left by the {killed} killed tasks on {victim}: {left.get(victim, [])}"
                          + (f"; others: {survivors}" if survivors else ""))

    def print_summary(self) -> None:
        s = self.summary

        def g(k: str) -> Any:
            return s.get(k, "-")

        def row(name: str, value: str) -> None:
            print(f"{name:<52} : {value}")

        term, kill = s.get("D_sigterm", {}), s.get("D_sigkill", {})
        print("\n=== the distributed stack under faults (CeleryExecutor, PostgreSQL, Redis, 2+1 workers, "
              "triggerer) ===")
        row("seed", g("seed"))
        row("stack start", f"{g('stack_start_s')} s")
        row("A worker lost: victim, moment", f"{g('A_victim')}: {g('A_moment')}")
        row("  killed tasks / killed inside the commit of",
            f"{g('A_killed_tasks')} / {g('A_killed_inside_commit')}")
        row("  heartbeat timeout hit / retries started / done",
            f"{g('A_detected_s')} / {g('A_retry_started_s')} / {g('A_recovery_s')} s after the kill "
            "(recovery)")
        row("  replacement: started / its first task / answering ping",
            f"{g('A_replacement_started_s')} s after the kill / then {g('A_replacement_first_task_s')} s / "
            f"<= {g('A_replacement_ready_s')} s")
        row("  other tasks retried", str(g("A_other_retried")))
        row("  phase wall time, API requests (planned calls)",
            f"{g('A_wall_s')} s, {g('A_api_requests')} ({g('A_planned_calls')})")
        row("B scheduler restarted: moment", str(g("B_moment")))
        row("  SIGTERM to exit / down / healthy again",
            f"{g('B_stop_s')} / {g('B_down_s')} / {g('B_healthy_after_s')} s")
        row("  tasks run twice", str(g("B_ran_twice")))
        row("  phase wall time, API requests (planned calls)",
            f"{g('B_wall_s')} s, {g('B_api_requests')} ({g('B_planned_calls')})")
        row("C API unreachable: moment, outage", f"{g('C_moment')}, {g('C_outage_s')} s")
        row("  failed tries (with the transport error)",
            f"{len(s.get('C_failed_tries', []))} ({g('C_transport_errors')})")
        row("  last retried task done after the API came back", f"{g('C_recovered_after_up_s')} s")
        row("  phase wall time", f"{g('C_wall_s')} s")
        row("D triggerer SIGTERM: stop / triggers running again",
            f"{term.get('stop_s', '-')} / {term.get('picked_up_s', '-')} s")
        row("D triggerer SIGKILL: trigger running again", f"{kill.get('picked_up_s', '-')} s after the kill")
        row("  phase wall time", f"{g('D_wall_s')} s")
        row("mapped tasks per worker", str(g("mapped_tasks_per_worker")))
        row("rows (journey / message / webhook)",
            f"{g('rows_journey')} / {g('rows_message')} / {g('rows_webhook')}")
        row("staging left by the killed tasks", str(g("staging_left_by_the_killed_tasks")))
        row("whole test wall time", f"{g('wall_s')} s")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=int(os.environ.get("STACK_FAULTS_SEED", "17")),
                   help="picks the victim worker and the thresholds (default 17, or $STACK_FAULTS_SEED)")
    p.add_argument("--dags-folder", type=Path, default=REPO / "example_dags")
    p.add_argument("--journeys", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--pool", default="engagelab_api")
    p.add_argument("--pool-slots", type=int, default=4)
    p.add_argument("--max-concurrent-requests", type=int, default=2)
    p.add_argument("--max-retries", type=int, default=3,
                   help="the Connection's max_retries (the retry budget)")
    p.add_argument("--max-retry-wait", type=float, default=2.0)
    p.add_argument("--worker-concurrency", type=int, default=2)
    p.add_argument("--latency", type=float, default=1.0, help="sandbox seconds per request")
    p.add_argument("--poke-interval", type=int, default=5)
    p.add_argument("--retry-delay", type=int, default=10, help="ENGAGELAB_RETRY_DELAY of the backfill DAG")
    p.add_argument("--commit-lease-seconds", type=int, default=10)
    p.add_argument("--timeout", type=float, default=600, help="seconds to wait for each step")
    # The daily DAG is unpaused in the last phase: a midnight before the end would add a
    # scheduled run. 900 s is three times a quiet run (285-308 s measured); under a load average
    # of 10-12 a run took up to 1,111 s and needs a larger margin.
    p.add_argument("--midnight-margin", type=float, default=900,
                   help="start only if at least this many seconds remain before midnight UTC")
    p.add_argument("--keep", action="store_true", help="leave the stack running and the output in place")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, base._interrupt)
    base.wait_past_midnight(args.midnight_margin)
    return Faults(args).run()


if __name__ == "__main__":
    sys.exit(main())
