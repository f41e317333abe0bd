"""Figure 6: what the exactly-once commit costs per partition, alone and among 20 tasks.

Each task stages the DAY journey rows of its own batch of journeys for 31 days (as a mapped
backfill's instances do) and commits them with the file sink; N tasks run as N processes that
start their commits together, on the local file system and on moto's S3 server (a separate
process on 127.0.0.1). Measured per task: the commit's wall time and the store requests it
made (lock, listing, manifest, data), per partition. The commit of the old layout was one
upload per partition and no coordination: the "extra" requests are the rest.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import date, timedelta
from typing import Any

DAYS = 31
BATCH = 5
FIRST = date(2025, 3, 1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MotoProcess:
    """moto's S3 server in its own process (its CPU does not count against the tasks)."""

    def __enter__(self) -> MotoProcess:
        port = _free_port()
        self.endpoint = f"http://127.0.0.1:{port}"
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(self.endpoint, timeout=1)
                return self
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        self._proc.terminate()
        self._proc.wait(10)


def _rows(ids: list[int]) -> list[dict[str, Any]]:
    rows = []
    for i in range(DAYS):
        day = (FIRST + timedelta(days=i)).isoformat()
        rows += [{"journey_id": j, "time_unit": "DAY", "time": day, "entry_count": j + i,
                  "conversion_count": 1, "completion_count": 2, "early_exit_count": 3,
                  "in_progress_count": 4} for j in ids]
    return rows


def _store(backend: str, where: str) -> Any:
    from airflow_provider_engagelab.sinks.store import FsspecStore, LocalStore

    if backend == "local":
        return LocalStore(where)
    import s3fs

    endpoint, bucket = where.split("|")
    fs = s3fs.S3FileSystem(key="testing", secret="testing", skip_instance_cache=True,
                           client_kwargs={"endpoint_url": endpoint, "region_name": "us-east-1"})
    return FsspecStore(fs, f"{bucket}/out", f"s3://{bucket}/out")


def _task(backend: str, where: str, index: int, barrier: Any, results: Any) -> None:
    from airflow_provider_engagelab.core.parsing import ParsedResponse
    from airflow_provider_engagelab.core.planning import plan_calls
    from airflow_provider_engagelab.core.query import build_query
    from airflow_provider_engagelab.sinks.files import FileSink

    ids = list(range(index * BATCH + 1, index * BATCH + BATCH + 1))
    query = build_query("journey", ids, "DAY", FIRST, FIRST + timedelta(days=DAYS - 1))
    (call,) = plan_calls(query)
    sink = FileSink(_store(backend, where), query, "jsonl", lease_seconds=60, wait_seconds=600)
    with sink:
        sink.stage(ParsedResponse(rows=_rows(ids), call=call, ok_journeys=frozenset(ids)))
        barrier.wait()
        t0 = time.perf_counter()
        summary = sink.commit()
        results.put((index, time.perf_counter() - t0, summary["store_requests"], summary["partitions"]))


def _run(backend: str, where: str, tasks: int) -> dict[str, Any]:
    # Imported before the fork: the children start at once, as warm task processes.
    import s3fs  # noqa: F401

    import airflow_provider_engagelab.sinks.files  # noqa: F401

    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(tasks)
    results = ctx.Queue()
    procs = [ctx.Process(target=_task, args=(backend, where, i, barrier, results)) for i in range(tasks)]
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    got = [results.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(60)
    wall = time.perf_counter() - t0
    per_partition = [seconds / parts for _, seconds, _, parts in got]
    requests = [reqs / parts for _, _, reqs, parts in got]
    return {
        "tasks": tasks,
        "ms_per_partition_median": statistics.median(per_partition) * 1000,
        "ms_per_partition_max": max(per_partition) * 1000,
        "requests_per_partition": statistics.mean(requests),
        "commit_wall_s": max(seconds for _, seconds, _, _ in got),
        "wall_s": wall,
    }


def measure(quick: bool) -> list[dict[str, Any]]:
    """Every (backend, N) run of figure 6."""
    counts = (1, 4) if quick else (1, 20)
    out = []
    work = tempfile.mkdtemp(prefix="engagelab-bench-commit-")
    try:
        for tasks in counts:
            root = os.path.join(work, f"local-{tasks}")
            out.append({"backend": "local", **_run("local", root, tasks)})
        with MotoProcess() as moto:
            import boto3

            client = boto3.client("s3", endpoint_url=moto.endpoint, region_name="us-east-1",
                                  aws_access_key_id="testing", aws_secret_access_key="testing")
            for tasks in counts:
                bucket = f"bench-{tasks}-{os.getpid()}"
                client.create_bucket(Bucket=bucket)
                out.append({"backend": "moto S3", **_run("s3", f"{moto.endpoint}|{bucket}", tasks)})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out
