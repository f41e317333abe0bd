"""A soak of the distributed stack (issue 17, part 3): ``make soak``, not in CI.

Run by ``STACK_DRIVER=tests/stack/stack_soak.py scripts/stack.sh test`` (not collected by
pytest), on the stack of ``make stack-test`` (PostgreSQL, Redis, api-server, scheduler,
dag-processor, triggerer, two Celery workers, all on 127.0.0.1, started and stopped by PID):

- a mapped backfill of the ``--months`` (12) full months before this one, ``--journeys``
  (2,000) in batches of ``--batch-size`` (100), all three stats types: months x batches x 3
  mapped tasks (720), in a ``--pool-slots`` (4) pool;
- at the same time, ``--daily-runs`` (14) runs of the daily DAG, one per day before today, with
  deferrable sensors: the sandbox's data cutoff starts at the oldest of those days and moves one
  day every ``--day-every`` seconds, so the sensors wait in the triggerer and fire in turn;
- the sandbox limited to ``--rate-limit`` (20) requests per second (429 with Retry-After
  beyond), a little latency per request;
- one worker SIGKILLed (its process group and every task process's own group) once half the
  mapped tasks are done, and a replacement worker started (``--no-kill`` to skip).

Printed at the end: tasks per minute; API requests per second against the limit and the peak
in flight against the pool's cap; 429s answered (each one retried by the hook); the memory of
each worker and of the triggerer sampled over time, with the least-squares slope that would
show a leak; the scheduler's loop time (Airflow's own ``scheduler.scheduler_loop_duration``
timer, sent over StatsD to a UDP listener of this driver on 127.0.0.1); and every row key
exactly once, the wall time against the bound (API requests / rate limit). The seed is printed
(``--seed``: the victim worker). The last line is ``soak: N passed, M failed``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import stack_driver as base
from stack_driver import BACKFILL_DAG, DAILY_DAG, STATS_TYPES, Api, Checks, compare_rows, log, month_start
from stack_faults import AIRFLOW_SETTINGS, Stack, create_backfill, free_port, runs_of

from airflow_provider_engagelab.testing.sandbox import Sandbox

REPO = Path(__file__).resolve().parents[2]
LOOKBACK_DAYS = 2  # the daily DAG rewrites the two days before its own as well


def utc_midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=timezone.utc)


# --- measuring --------------------------------------------------------------------------------


def slope_per_hour(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, MiB) points, in MiB per hour."""
    if len(points) < 3:
        return None
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    if var == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in points) / var * 3600


class StatsdListener(threading.Thread):
    """Receives Airflow's StatsD metrics on 127.0.0.1 and keeps the scheduler's loop timings."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.5)
        self.port = int(self.sock.getsockname()[1])
        self.loop_ms: list[float] = []
        self.packets = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                data = self.sock.recv(65535)
            except OSError:
                continue
            self.packets += 1
            for line in data.decode(errors="replace").splitlines():
                name, _, rest = line.partition(":")
                if name.endswith("scheduler.scheduler_loop_duration") and rest.endswith("|ms"):
                    try:
                        self.loop_ms.append(float(rest.split("|", 1)[0]))
                    except ValueError:
                        pass

    def stop(self) -> None:
        self._stop_event.set()
        self.sock.close()


class Sampler(threading.Thread):
    """Every ``interval`` s: each service's memory, the sandbox's counters, finished tasks."""

    SERVICES = ("worker-1", "worker-2", "worker-3", "triggerer", "scheduler")

    def __init__(self, stack: Stack, sandbox: Sandbox, interval: float) -> None:
        super().__init__(daemon=True)
        self.stack, self.sandbox, self.interval = stack, sandbox, interval
        self.t0 = time.monotonic()
        #: service -> [(s, MiB of its long-lived processes: the leader and its direct children)]
        self.memory: dict[str, list[tuple[float, float]]] = {s: [] for s in self.SERVICES}
        #: service -> peak MiB with the task processes below it
        self.peak_with_tasks: dict[str, float] = {}
        self.requests: list[tuple[float, int]] = []
        self.done: list[tuple[float, int]] = []
        self.max_in_flight = 0
        self._stop_event = threading.Event()

    def sample(self) -> None:
        now = time.monotonic() - self.t0
        kids = base._children()
        for name in self.SERVICES:
            leader = self.stack.pid(name)
            if leader is None:
                continue
            direct = [leader, *kids.get(leader, ())]
            mib = base.pss_kib(direct) / 1024
            if mib:  # 0: the service died between its PID check and the reading
                self.memory[name].append((now, mib))
            tree = self.stack.tree(name)
            self.peak_with_tasks[name] = max(self.peak_with_tasks.get(name, 0.0), base.pss_kib(tree) / 1024)
        counters = self.sandbox.counters()
        self.requests.append((now, counters["requests"]))
        self.max_in_flight = max(self.max_in_flight, counters["max_in_flight"])
        rows = self.stack.db_rows("SELECT count(*) FROM task_instance WHERE state = 'success'")
        self.done.append((now, int(rows[0][0])))

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                self.sample()
            except Exception as exc:  # noqa: BLE001 - a missed sample is not a failure
                log(f"sampler: {type(exc).__name__}: {exc}")
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()


# --- the soak ---------------------------------------------------------------------------------


def all_tis(api: Api, dag_id: str) -> list[dict]:
    """Every task instance of every run of a DAG (the API pages by 1,000)."""
    found: list[dict] = []
    while True:
        page = api.get(f"/dags/{dag_id}/dagRuns/~/taskInstances", limit=1000, offset=len(found))
        found.extend(page["task_instances"])
        if len(found) >= page["total_entries"] or not page["task_instances"]:
            return found


def windows(today: date, months: int, daily_days: list[date]) -> list[tuple[date, date]]:
    """The days written (the backfill's months and each daily run's day with its lookback),
    merged into disjoint ranges: each day is expected once."""
    spans = [(month_start(today, months).date(), month_start(today, 0).date() - timedelta(days=1))]
    return base.merge_spans(spans + [(d - timedelta(days=LOOKBACK_DAYS), d) for d in daily_days])


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.checks = Checks()
        self.summary: dict[str, Any] = {"seed": args.seed}
        self.stack_dir = Path(os.environ.get("STACK_DIR") or Path(tempfile.gettempdir()) / "engagelab-soak")
        self.work = Path(tempfile.mkdtemp(prefix="engagelab-soak-"))
        self.output = self.work / "output"
        now = datetime.now(timezone.utc)
        self.today = now.date()
        self.days = [self.today - timedelta(days=k) for k in range(args.daily_runs, 0, -1)]
        self.journey_ids = list(range(1001, 1001 + args.journeys))
        self.summary["started"] = now.isoformat(timespec="seconds")
        self.sandbox = Sandbox(
            port=free_port(),
            latency=args.latency,
            rate_limit=args.rate_limit,
            available_through=utc_midnight(self.days[0]),
        )
        self.statsd = StatsdListener()
        # each task's own limit: together the pool's tasks stay under the API's limit (0: unpaced)
        if args.requests_per_second is None:
            self.rps: float | None = round(args.rate_limit / args.pool_slots, 2)
        else:
            self.rps = args.requests_per_second or None
        self.conn_extra = {
            "max_concurrent_requests": args.max_concurrent_requests,
            "max_retries": 8,
            "max_retry_wait": 10,
        }
        if self.rps is not None:
            self.conn_extra["requests_per_second"] = self.rps

    def env(self) -> dict[str, str]:
        env = base.example_dag_env(
            self.stack_dir,
            self.args,
            self.sandbox.airflow_connection(**self.conn_extra),
            self.journey_ids,
            self.output,
            ENGAGELAB_RETRY_DELAY="10",
            ENGAGELAB_COMMIT_LEASE_SECONDS="20",
        )
        settings = dict(AIRFLOW_SETTINGS)  # heartbeat and queued timeouts short: a worker dies
        settings.update(
            {
                "METRICS__STATSD_ON": "True",
                "METRICS__STATSD_HOST": "127.0.0.1",
                "METRICS__STATSD_PORT": str(self.statsd.port),
                "METRICS__STATSD_PREFIX": "airflow",
                "METRICS__METRICS_ALLOW_LIST": "scheduler.scheduler_loop_duration",
            }
        )
        env.update({f"STACK_AIRFLOW__{k}": v for k, v in settings.items()})
        return env

    def advance_cutoff(self, stop: threading.Event) -> None:
        """Move the data cutoff one day every ``--day-every`` seconds, up to today 00:00."""
        cutoff = self.days[0]
        while cutoff < self.today and not stop.wait(self.args.day_every):
            cutoff += timedelta(days=1)
            self.sandbox.configure(available_through=utc_midnight(cutoff))

    def run(self) -> int:
        args = self.args
        t_start = time.monotonic()
        self.sandbox.start()
        self.statsd.start()
        env = self.env()
        stack = Stack(self.stack_dir, env)
        sampler = Sampler(stack, self.sandbox, args.sample_every)
        stop_cutoff = threading.Event()
        mapped_total = args.months * 3 * -(-len(self.journey_ids) // args.batch_size)
        log(
            f"seed {args.seed}; sandbox at {self.sandbox.url} ({args.rate_limit} requests/s, "
            f"latency {args.latency} s); backfill {args.months} months x {len(self.journey_ids)} "
            f"journeys in batches of {args.batch_size} = {mapped_total} mapped tasks, pool "
            f"{args.pool_slots} slots; {args.daily_runs} daily runs; per task requests_per_second="
            f"{self.rps}, max_concurrent_requests={args.max_concurrent_requests}; worker "
            f"concurrency {args.worker_concurrency}; output {self.output}"
        )
        try:
            t0 = time.monotonic()
            stack.sh("up")
            stack.track()
            self.summary["stack_start_s"] = round(time.monotonic() - t0, 1)
            info = json.loads((self.stack_dir / "stack.json").read_text())
            api = Api(info["api_url"], info["username"], info["password"])
            api.call(
                "POST",
                "/pools",
                json={
                    "name": args.pool,
                    "slots": args.pool_slots,
                    "description": "EngageLab API calls",
                    "include_deferred": False,
                },
            )
            for dag_id in (BACKFILL_DAG, DAILY_DAG):
                base.wait_for(f"{dag_id} parsed", lambda d=dag_id: base._parsed(api, d), timeout=300)

            self.sandbox.reset_counters()
            sampler.start()
            t_work = time.monotonic()
            # The last month by hand (the scheduler would create it when the DAG is unpaused),
            # the eleven before it as a backfill, all mapped in the same pool.
            months = [month_start(self.today, back) for back in range(args.months, 0, -1)]
            api.trigger(BACKFILL_DAG, "soak-last-month", months[-1], month_start(self.today, 0))
            api.call("PATCH", f"/dags/{BACKFILL_DAG}", json={"is_paused": False})
            if len(months) > 1:
                create_backfill(api, months[0], months[-2], timeout=120)
            day_starts = []
            for d in self.days:
                start = utc_midnight(d)
                day_starts.append(start)
                api.trigger(DAILY_DAG, f"soak-day-{d.isoformat()}", start, start + timedelta(days=1))
            api.call("PATCH", f"/dags/{DAILY_DAG}", json={"is_paused": False})
            cutoff_thread = threading.Thread(target=self.advance_cutoff, args=(stop_cutoff,), daemon=True)
            cutoff_thread.start()

            victim = self.rng.choice(["worker-1", "worker-2"])
            killed = args.no_kill
            half_at: float | None = None
            deadline = time.monotonic() + args.timeout
            while True:
                backfill = runs_of(api, BACKFILL_DAG, set(months))
                daily = runs_of(api, DAILY_DAG, set(day_starts))
                backfill_over = len(backfill) == len(months) and all(
                    r["state"] in base.TERMINAL for r in backfill
                )
                if backfill_over and "backfill_wall_s" not in self.summary:
                    self.summary["backfill_wall_s"] = round(time.monotonic() - t_work, 1)
                    self.summary["backfill_api_requests"] = self.sandbox.counters()["requests"]
                if (
                    backfill_over
                    and len(daily) == len(day_starts)
                    and all(r["state"] in base.TERMINAL for r in daily)
                ):
                    break
                if not killed:
                    tis_now = [t for t in all_tis(api, BACKFILL_DAG) if t["map_index"] >= 0]
                    done = sum(1 for t in tis_now if t["state"] == "success")
                    running = [t for t in tis_now if t["state"] == "running" and t["hostname"] == victim]
                    if done >= mapped_total / 2 and half_at is None:
                        half_at = time.monotonic()
                    # half-way, at a moment the victim runs mapped tasks (after 120 s: whatever it runs)
                    if half_at is not None and (running or time.monotonic() - half_at > 120):
                        procs, groups = stack.lose(victim)
                        self.summary["kill"] = {
                            "worker": victim,
                            "at_s": round(time.monotonic() - t_work, 1),
                            "mapped_done": done,
                            "mapped_running_on_it": len(running),
                            "processes": len(procs),
                        }
                        log(
                            f"SIGKILL to {len(procs)} processes in {len(groups)} groups of {victim} "
                            f"({done} of {mapped_total} mapped tasks done, {len(running)} running on "
                            f"it); starting worker-3"
                        )
                        stack.sh("start", "worker-3")
                        killed = True
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the runs did not finish within {args.timeout:.0f} s")
                time.sleep(2 if half_at is not None and not killed else 10)
            wall = time.monotonic() - t_work
            stop_cutoff.set()
            sampler.sample()
            sampler.stop()
            self.report(api, backfill, daily, sampler, wall, mapped_total)
        except Exception as exc:  # noqa: BLE001 - any failure becomes a failed check, then cleanup
            self.checks.check("the soak ran to the end", False, f"{type(exc).__name__}: {exc}")
            base._dump_logs(self.stack_dir)
        finally:
            stop_cutoff.set()
            sampler.stop()
            if not args.keep:
                stack.stop_tracking()
                stack.close()
                stack.sh("down", check=False)
                left = base.still_running(stack.seen)
                self.checks.check(
                    "the stack left nothing running",
                    not left,
                    f"{len(stack.seen)} processes seen" + (f", still running: {left}" if left else ""),
                )
            self.statsd.stop()
            self.sandbox.stop()
            if not args.keep:
                shutil.rmtree(self.work, ignore_errors=True)
        self.summary["wall_s"] = round(time.monotonic() - t_start, 1)
        (self.stack_dir / "soak-summary.json").write_text(json.dumps(self.summary, indent=2) + "\n")
        passed = len(self.checks.results) - self.checks.failed
        print(f"soak: {passed} passed, {self.checks.failed} failed (seed {args.seed})", flush=True)
        return 1 if self.checks.failed else 0

    def report(
        self,
        api: Api,
        backfill: list[dict],
        daily: list[dict],
        sampler: Sampler,
        wall: float,
        mapped_total: int,
    ) -> None:
        args, s = self.args, self.summary
        self.checks.check(
            "every backfill and daily run succeeded",
            all(r["state"] == "success" for r in backfill + daily),
            f"{len(backfill)} backfill runs, {len(daily)} daily runs: "
            f"{dict(Counter(r['state'] for r in backfill + daily))}",
        )
        backfill_ids = {r["dag_run_id"] for r in backfill}
        mapped = [
            t for t in all_tis(api, BACKFILL_DAG) if t["map_index"] >= 0 and t["dag_run_id"] in backfill_ids
        ]
        daily_ids = {r["dag_run_id"] for r in daily}
        daily_tis = [t for t in all_tis(api, DAILY_DAG) if t["dag_run_id"] in daily_ids]
        self.checks.check(
            "every mapped task ran",
            len(mapped) == mapped_total and all(t["state"] == "success" for t in mapped),
            f"{len(mapped)} mapped tasks ({mapped_total} planned), "
            f"{dict(Counter(t['state'] for t in mapped))}",
        )
        if "kill" in s:
            took = sum(1 for t in mapped + daily_tis if t["hostname"] == "worker-3")
            self.checks.check("the replacement worker took work", took > 0, f"worker-3 ran {took} tasks")
        s["tasks"] = len(mapped) + len(daily_tis)
        s["tasks_per_worker"] = dict(sorted(Counter(t["hostname"] for t in mapped + daily_tis).items()))
        s["tries_beyond_first"] = sum(t["try_number"] - 1 for t in mapped + daily_tis)
        s["retried_tasks"] = sorted(
            f"{t['task_id']}[{t['map_index']}]@{t['dag_run_id'][-25:]} try {t['try_number']}"
            for t in mapped + daily_tis
            if t["try_number"] > 1
        )[:20]
        if "kill" in s and s["kill"]["mapped_running_on_it"]:
            self.checks.check(
                "the tasks killed with the worker were retried and succeeded",
                bool(s["retried_tasks"]) and all(t["state"] == "success" for t in mapped),
                f"{len(s['retried_tasks'])} tasks with a second try: {s['retried_tasks'][:5]}",
            )
        s["work_wall_s"] = round(wall, 1)
        s["tasks_per_minute"] = round(s["tasks"] / (wall / 60), 1)
        per_minute = []
        for (t1, n1), (t2, n2) in zip(sampler.done, sampler.done[1:], strict=False):
            if t2 > t1:
                per_minute.append((n2 - n1) / (t2 - t1) * 60)
        s["tasks_per_minute_peak_sample"] = round(max(per_minute), 1) if per_minute else None

        counters = self.sandbox.counters()
        requests = counters["requests"]
        s["api_requests"] = requests
        s["api_requests_per_s"] = round(requests / wall, 2)
        s["api_rate_limit"] = args.rate_limit
        rates = [
            (n2 - n1) / (t2 - t1)
            for (t1, n1), (t2, n2) in zip(sampler.requests, sampler.requests[1:], strict=False)
            if t2 > t1
        ]
        s["api_requests_per_s_peak_sample"] = round(max(rates), 2) if rates else None
        s["api_peak_in_flight"] = max(sampler.max_in_flight, counters["max_in_flight"])
        s["api_429"] = counters["by_status"].get(429, counters["by_status"].get("429", 0))
        s["api_by_status"] = counters["by_status"]
        bound = requests / args.rate_limit
        s["wall_bound_s"] = round(bound, 1)

        s["memory"] = {}
        for name, points in sampler.memory.items():
            if not points:
                continue
            mib = [p[1] for p in points]
            s["memory"][name] = {
                "samples": len(points),
                "first_mib": round(mib[0]),
                "last_mib": round(mib[-1]),
                "max_mib": round(max(mib)),
                "slope_mib_per_h": (round(v, 1) if (v := slope_per_hour(points)) is not None else None),
                # the first half holds the warm-up (pool processes importing Airflow): a leak
                # is a slope that stays in the second half
                "slope_second_half_mib_per_h": (
                    round(v, 1) if (v := slope_per_hour(points[len(points) // 2 :])) is not None else None
                ),
                "peak_with_tasks_mib": round(sampler.peak_with_tasks.get(name, 0)),
            }
        loops = sorted(self.statsd.loop_ms)
        if loops:
            s["scheduler_loop_ms"] = {
                "loops": len(loops),
                "median": round(statistics.median(loops), 1),
                "p95": round(loops[int(0.95 * (len(loops) - 1))], 1),
                "max": round(loops[-1], 1),
            }
        self.checks.check(
            "the scheduler's loop timings arrived over StatsD",
            bool(loops),
            f"{len(loops)} loops, {self.statsd.packets} packets",
        )

        got, leftovers = base.read_output(self.output)
        spans = windows(self.today, args.months, self.days)
        s["windows"] = [f"{a}..{b}" for a, b in spans]
        for stats_type in STATS_TYPES:
            want = [
                row
                for first, last in spans
                for row in self.sandbox.expected_rows(stats_type, self.journey_ids, "DAY", first, last)
            ]
            ok, detail = compare_rows(got.get(stats_type, []), want)
            s[f"rows_{stats_type}"] = len(want)
            self.checks.check(f"{stats_type}: every row key exactly once", ok, detail)
        self.checks.check(
            "no lock or temporary file left in the output", not leftovers, ", ".join(leftovers[:5])
        )
        self.print_summary()

    def print_summary(self) -> None:
        s = self.summary
        print("\nsoak summary", flush=True)
        rows = [
            ("seed; stack start", f"{s['seed']}; {s.get('stack_start_s')} s"),
            (
                "work wall time / bound (API requests / rate limit)",
                f"{s.get('work_wall_s')} s / {s.get('wall_bound_s')} s",
            ),
            (
                "tasks (mapped + daily), per minute (peak 1-sample)",
                f"{s.get('tasks')}, {s.get('tasks_per_minute')} ({s.get('tasks_per_minute_peak_sample')})",
            ),
            (
                "tasks per worker; tries beyond the first",
                f"{s.get('tasks_per_worker')}; {s.get('tries_beyond_first')}",
            ),
            ("worker killed", str(s.get("kill", "none"))),
            ("tasks with a second try", str(s.get("retried_tasks"))),
            (
                "backfill alone: wall time / its API requests",
                f"{s.get('backfill_wall_s')} s / {s.get('backfill_api_requests')}",
            ),
            (
                "API requests, per s (peak sample) / limit",
                f"{s.get('api_requests')}, {s.get('api_requests_per_s')} "
                f"({s.get('api_requests_per_s_peak_sample')}) / {s.get('api_rate_limit')}",
            ),
            (
                "API peak in flight",
                f"{s.get('api_peak_in_flight')} (pool {self.args.pool_slots} slots x "
                f"max_concurrent_requests {self.args.max_concurrent_requests}, "
                "plus the daily tasks and triggers)",
            ),
            ("429s answered (each retried by the hook)", str(s.get("api_429"))),
            ("scheduler loop ms", str(s.get("scheduler_loop_ms"))),
            (
                "rows (journey / message / webhook)",
                f"{s.get('rows_journey')} / {s.get('rows_message')} / {s.get('rows_webhook')}",
            ),
        ]
        for name, mem in s.get("memory", {}).items():
            rows.append(
                (
                    f"memory {name} (leader + direct children)",
                    f"{mem['first_mib']} -> {mem['last_mib']} MiB (max {mem['max_mib']}), slope "
                    f"{mem['slope_mib_per_h']} MiB/h over {mem['samples']} samples, "
                    f"{mem['slope_second_half_mib_per_h']} MiB/h over the second half; with tasks peak "
                    f"{mem['peak_with_tasks_mib']} MiB",
                )
            )
        width = max(len(r[0]) for r in rows)
        for name, value in rows:
            print(f"  {name:<{width}} : {value}", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=int(os.environ.get("SOAK_SEED", "17")))
    p.add_argument("--dags-folder", type=Path, default=REPO / "example_dags")
    p.add_argument("--months", type=int, default=12)
    p.add_argument("--journeys", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--daily-runs", type=int, default=14)
    p.add_argument("--day-every", type=float, default=60.0, help="seconds between cutoff moves")
    p.add_argument("--rate-limit", type=float, default=20.0, help="the sandbox's requests per second")
    p.add_argument("--latency", type=float, default=0.2, help="sandbox seconds per request")
    p.add_argument("--pool", default="engagelab_api")
    p.add_argument("--pool-slots", type=int, default=4)
    p.add_argument("--max-concurrent-requests", type=int, default=2)
    p.add_argument(
        "--requests-per-second",
        type=float,
        default=None,
        help="the Connection's per-task limit (default: rate limit / pool slots; 0: unpaced)",
    )
    p.add_argument("--worker-concurrency", type=int, default=4)
    p.add_argument("--poke-interval", type=int, default=30)
    p.add_argument("--sample-every", type=float, default=10.0)
    p.add_argument("--timeout", type=float, default=4 * 3600, help="seconds for all the runs to finish")
    p.add_argument("--no-kill", action="store_true", help="do not kill a worker")
    p.add_argument(
        "--midnight-margin",
        type=float,
        default=5400,
        help="start only if at least this many seconds remain before midnight UTC",
    )
    p.add_argument("--keep", action="store_true", help="leave the stack running and the output in place")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, base._interrupt)
    base.wait_past_midnight(args.midnight_margin)
    return Soak(args).run()


if __name__ == "__main__":
    sys.exit(main())
