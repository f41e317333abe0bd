"""Exactly once under one output root, whatever the journey grouping of each task.

Every scenario runs real operator tasks against the sandbox API, on ``file://`` and on moto's
S3 server, in each format (jsonl with journey DAY, csv with message DAY, parquet with webhook
HOUR statistics), and ends by reading the whole root back: every row key (journey, time unit,
time, component) is there once, with the sandbox's values, and no lock or temporary file is
left. Concurrent tasks run as separate processes (``task_runner.py``), as on other workers.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_engagelab.core.layout import LOCK_PREFIX, file_name
from airflow_provider_engagelab.exceptions import EngageLabOutputError, EngageLabValidationError
from airflow_provider_engagelab.operators.engagelab import EngageLabStatsOperator
from airflow_provider_engagelab.sinks import store as store_module
from airflow_provider_engagelab.testing.output import duplicate_keys, read_rows, row_key
from airflow_provider_engagelab.testing.sandbox import Sandbox
from tests.sinks import tasks
from tests.sinks.tasks import daily

UTC = timezone.utc
#: The sandbox serves data up to this instant: fixed, so no test depends on today's date.
CUTOFF = datetime(2026, 7, 1, tzinfo=UTC)

#: (format, stats type, time unit): every format, every stats type, both units.
CASES = [("jsonl", "journey", "DAY"), ("csv", "message", "DAY"), ("parquet", "webhook", "HOUR")]


@pytest.fixture(scope="module")
def sb():
    with Sandbox(available_through=CUTOFF) as sandbox:
        yield sandbox


@pytest.fixture(autouse=True)
def _connection(sb, monkeypatch):
    sb.clear_faults()
    sb.configure(latency=0.0)
    monkeypatch.setenv("AIRFLOW_CONN_ENGAGELAB_DEFAULT", json.dumps(sb.airflow_connection()))


@pytest.fixture(params=CASES, ids=["-".join(c) for c in CASES])
def case(request):
    if request.param[0] == "parquet":
        pytest.importorskip("pyarrow")
    return request.param


@dataclass
class Root:
    """One output root on a backend: what the operator writes to, and its contents read back."""

    backend: str
    output_path: str
    conn_id: str | None
    work: Path
    bucket: Any = None
    prefix: str = ""

    def snapshot(self) -> Path:
        """The root's files on local disk (a fresh download for S3)."""
        if self.bucket is None:
            return Path(self.output_path)
        local = self.work / f"snapshot-{time.monotonic_ns()}"
        for key, data in self.bucket.objects(self.prefix).items():
            path = local / key[len(self.prefix):].lstrip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        local.mkdir(parents=True, exist_ok=True)
        return local

    def leftovers(self) -> list[str]:
        """Lock, hidden or temporary files anywhere under the root."""
        root = self.snapshot()
        return sorted(
            str(p.relative_to(root)) for p in root.rglob("*")
            if p.is_file() and (p.name.startswith((".", LOCK_PREFIX)) or p.name.endswith(".tmp"))
        )

    def env(self) -> dict[str, str]:
        return dict(self.bucket.env) if self.bucket is not None else {}


@pytest.fixture(params=["file", "s3"])
def root(request, tmp_path) -> Root:
    if request.param == "file":
        return Root("file", str(tmp_path / "out"), None, tmp_path)
    bucket = request.getfixturevalue("s3_bucket")
    return Root("s3", f"s3://{bucket.name}/lake", bucket.conn_id, tmp_path, bucket, "lake")


def kwargs(root: Root, case, ids, first=None, last=None, **extra) -> dict[str, Any]:
    fmt, stats_type, unit = case
    out = {"stats_type": stats_type, "journey_ids": list(ids), "time_unit": unit,
           "output_path": root.output_path, "output_format": fmt, **extra}
    if root.conn_id:
        out["output_conn_id"] = root.conn_id
    if first is not None:
        out.update(start_time=first, end_time=last)
    return out


def task(root: Root, case, ids, first=None, last=None, *, context=None, **extra) -> dict[str, Any]:
    """One task, in this process."""
    return EngageLabStatsOperator(task_id="t", **kwargs(root, case, ids, first, last, **extra)).execute(
        context or {}
    )


def start_tasks(root: Root, sb: Sandbox, specs: list[dict[str, Any]]) -> list[subprocess.Popen]:
    """Tasks in separate processes (as on other workers), all started at once."""
    return tasks.start_tasks(root.env(), sb.airflow_connection(), specs)


def finish(procs: list[subprocess.Popen], timeout: float = 120) -> list[dict[str, Any]]:
    return tasks.finish(procs, timeout)


def expected(sb: Sandbox, case, *pieces) -> dict[tuple, dict[str, Any]]:
    """The sandbox's rows of every (ids, first, last) piece, by key (later pieces win)."""
    _, stats_type, unit = case
    want: dict[tuple, dict[str, Any]] = {}
    for ids, first, last in pieces:
        for row in sb.expected_rows(stats_type, list(ids), unit, first, last):
            if "revenue_amount" in row:
                row = {**row, "revenue_amount": float(row["revenue_amount"])}
            want[row_key(row, stats_type)] = row
    return want


def assert_exactly_once(root: Root, case, want: dict[tuple, dict[str, Any]]) -> None:
    _, stats_type, unit = case
    rows = read_rows(root.snapshot(), stats_type, unit)
    assert duplicate_keys(rows, stats_type) == []
    got = {row_key(r, stats_type): r for r in rows}
    assert sorted(set(got) - set(want)) == [] and sorted(set(want) - set(got)) == []
    assert got == want
    assert root.leftovers() == []


def J(first: int, last: int) -> list[int]:
    return list(range(first, last + 1))


# ---------------------------------------------------------------------------- regroupings


def test_a_journey_added_to_the_list(sb, root, case):
    """Journeys 1-6 over days 1-5, then 1-7 over days 3-7 (a daily run looking back)."""
    task(root, case, J(1, 6), "2026-05-01", "2026-05-05")
    summary = task(root, case, J(1, 7), "2026-05-03", "2026-05-07")
    assert len(summary["removed"]) == 3  # the first task's files of days 3-5, now covered
    assert_exactly_once(root, case, expected(sb, case, (J(1, 6), "2026-05-01", "2026-05-05"),
                                             (J(1, 7), "2026-05-03", "2026-05-07")))


def test_a_journey_dropped_from_the_list_keeps_its_rows(sb, root, case):
    """Journeys 1-7, then 1-6 over the same days: journey 7 keeps its rows, once."""
    task(root, case, J(1, 7), "2026-05-01", "2026-05-04")
    summary = task(root, case, J(1, 6), "2026-05-01", "2026-05-04")
    assert len(summary["rewritten"]) == 4  # each day's earlier file now holds journey 7 only
    assert_exactly_once(root, case, expected(sb, case, (J(1, 7), "2026-05-01", "2026-05-04")))


def test_a_batch_size_changed_runs_concurrently_over_the_old_files(sb, root, case):
    """Batches of 3 first; then batches of 2, as three concurrent processes over their files."""
    for batch in ([1, 2, 3], [4, 5, 6]):
        task(root, case, batch, "2026-05-01", "2026-05-06")
    sb.configure(latency=0.3)  # the three fetches end together: their commits meet
    procs = start_tasks(root, sb, [{"operator": kwargs(root, case, batch, "2026-05-03", "2026-05-08")}
                                   for batch in ([1, 2], [3, 4], [5, 6])])
    summaries = finish(procs)
    assert sum(len(s["rewritten"]) for s in summaries) > 0  # the old batches' files were split
    assert_exactly_once(root, case, expected(sb, case, (J(1, 6), "2026-05-01", "2026-05-08")))


@pytest.mark.parametrize("order", ["daily-first", "backfill-first"])
def test_a_daily_dag_beside_a_mapped_backfill(sb, root, case, order):
    """A daily task over all journeys (lookback 2) and a backfill mapped over batches, same days."""
    fmt, _, unit = case

    def run_daily() -> None:
        for day in ("2026-05-11", "2026-05-12"):
            task(root, case, J(1, 6), context=daily(day), lookback_days=2)

    def run_backfill() -> None:  # the mapped instances run at once, as on two workers
        finish(start_tasks(root, sb, [{"operator": kwargs(root, case, batch, "2026-05-01", "2026-05-14")}
                                      for batch in ([1, 2, 3], [4, 5, 6])]))

    for step in (run_daily, run_backfill) if order == "daily-first" else (run_backfill, run_daily):
        step()
    assert_exactly_once(root, case, expected(sb, case, (J(1, 6), "2026-05-01", "2026-05-14")))


def test_reruns_of_one_grouping_rewrite_in_place(sb, root, case):
    """The same task three times: the same files, the same bytes, no rewrite of anything."""
    snapshots = []
    for _ in range(3):
        summary = task(root, case, [3, 1, 2], "2026-05-01", "2026-05-02")
        assert summary["removed"] == [] and summary["rewritten"] == []
        snapshots.append({str(p.relative_to(s)): p.read_bytes()
                          for s in [root.snapshot()] for p in sorted(s.rglob("*")) if p.is_file()})
    assert snapshots[0] == snapshots[1] == snapshots[2]
    assert_exactly_once(root, case, expected(sb, case, ([1, 2, 3], "2026-05-01", "2026-05-02")))


# ---------------------------------------------------------------------------- failures


class StoreFault(Exception):
    """The object store failing an operation (injected)."""


def fail_upload(monkeypatch, target: str) -> list[str]:
    """Make the upload of ``target`` (a path suffix) fail in either store; returns the data uploads."""
    seen: list[str] = []
    for cls in (store_module.LocalStore, store_module.FsspecStore):
        real = cls.put_file

        def put_file(self, local_path, relative, real=real):
            if "/part-" in relative:
                seen.append(relative)
                if relative.endswith(target):
                    raise StoreFault(f"injected failure uploading {relative}")
            return real(self, local_path, relative)

        monkeypatch.setattr(cls, "put_file", put_file)
    return seen


def test_a_commit_that_fails_half_way_doubles_nothing_and_its_retry_completes(sb, root, case, monkeypatch):
    fmt = case[0]
    task(root, case, J(1, 7), "2026-05-01", "2026-05-03")
    # Task 1-6 rewrites day 1's old file to journey 7 only, then fails uploading its own file
    own = f"date=2026-05-01/{file_name(J(1, 6), fmt)}"
    seen = fail_upload(monkeypatch, own)
    with pytest.raises((StoreFault, EngageLabOutputError), match="injected failure"):
        task(root, case, J(1, 6), "2026-05-01", "2026-05-03")
    assert any(path.endswith(own) for path in seen)
    assert any("date=2026-05-01/" in path and not path.endswith(own) for path in seen)  # the rewrite
    monkeypatch.undo()
    _, stats_type, unit = case
    rows = read_rows(root.snapshot(), stats_type, unit)
    assert duplicate_keys(rows, stats_type) == []  # nothing doubled
    full = expected(sb, case, (J(1, 7), "2026-05-01", "2026-05-03"))
    missing = set(full) - {row_key(r, stats_type) for r in rows}
    assert missing and all(k[0] <= 6 and str(k[2]).startswith("2026-05-01") for k in missing)
    assert root.leftovers() == []
    monkeypatch.setenv("AIRFLOW_CONN_ENGAGELAB_DEFAULT", json.dumps(sb.airflow_connection()))
    for name, value in root.env().items():
        monkeypatch.setenv(name, value)
    task(root, case, J(1, 6), "2026-05-01", "2026-05-03")  # the retry
    assert_exactly_once(root, case, full)


def test_a_lock_left_by_a_killed_task_expires(sb, root, case, tmp_path):
    """SIGKILL a task while it holds a partition's lock; the next run waits out the lease."""
    task(root, case, J(1, 7), "2026-05-01", "2026-05-02")
    marker = tmp_path / "in-commit"
    lease = 6
    # a killed task cannot remove its staging and commit folders: keep them out of the real /tmp
    task_tmp = tmp_path / "task-tmp"
    task_tmp.mkdir()
    spec = {"operator": kwargs(root, case, J(1, 6), "2026-05-01", "2026-05-02", commit_lease_seconds=lease),
            "pause_in_commit": str(marker)}
    (proc,) = tasks.start_tasks({**root.env(), "TMPDIR": str(task_tmp)}, sb.airflow_connection(), [spec])
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "the task never reached its commit"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole process group, as an OOM kill would
    proc.communicate()
    assert [n for n in root.leftovers() if LOCK_PREFIX in n]  # its lease file is still there

    t0 = time.monotonic()
    summary = task(root, case, J(1, 6), "2026-05-01", "2026-05-02", commit_lease_seconds=lease)
    waited = time.monotonic() - t0
    assert waited >= lease * 0.9  # it waited for the dead task's lease, then took over
    assert waited < lease + 60
    assert summary["partitions"] == 2
    assert_exactly_once(root, case, expected(sb, case, (J(1, 7), "2026-05-01", "2026-05-02")))


def test_old_layout_files_are_taken_over(sb, root, case):
    """Files of an earlier version (no manifest, some empty) are read for their journeys."""
    task(root, case, J(1, 7), "2026-05-01", "2026-05-02")
    snapshot = root.snapshot()
    manifests = sorted(snapshot.rglob("_engagelab_manifest.json"))
    assert len(manifests) == 2
    if root.bucket is None:
        for path in manifests:
            path.unlink()
    else:
        for path in manifests:
            key = f"{root.prefix}/{path.relative_to(snapshot).as_posix()}"
            root.bucket.client.delete_object(Bucket=root.bucket.name, Key=key)
    task(root, case, J(1, 6), "2026-05-01", "2026-05-02")
    assert_exactly_once(root, case, expected(sb, case, (J(1, 7), "2026-05-01", "2026-05-02")))


# ---------------------------------------------------------------------------- readers and refusals


def test_third_party_readers_see_each_row_once(sb, tmp_path):
    """pyarrow's dataset reader (hive partitions) skips the manifest and the lock files."""
    ds = pytest.importorskip("pyarrow.dataset")
    out = tmp_path / "out"
    case = ("parquet", "webhook", "DAY")
    root = Root("file", str(out), None, tmp_path)
    task(root, case, J(1, 6), "2026-05-01", "2026-05-03")
    task(root, case, [2, 3], "2026-05-02", "2026-05-04")
    (out / "webhook/time_unit=DAY/date=2026-05-02" / f"{LOCK_PREFIX}1.2.dead").write_bytes(b"{}")
    table = ds.dataset(out / "webhook", format="parquet", partitioning="hive").to_table()
    want = expected(sb, case, (J(1, 6), "2026-05-01", "2026-05-03"), ([2, 3], "2026-05-02", "2026-05-04"))
    assert table.num_rows == len(want)
    assert set(table.column_names) >= {"journey_id", "time", "component_id", "time_unit", "date"}


def test_a_store_without_the_guarantee_is_refused_before_any_request(sb, s3_bucket, monkeypatch):
    """Were s3 a store without atomic uploads or consistent listings, the task would stop first."""
    monkeypatch.setattr(store_module, "SAFE_PROTOCOLS", frozenset({"gs"}))
    sb.reset_counters()
    with pytest.raises(EngageLabValidationError, match=r"the 's3' file system cannot give the exactly-once"):
        EngageLabStatsOperator(task_id="t", stats_type="journey", journey_ids=[1], start_time="2026-05-01",
                               end_time="2026-05-01", output_path=f"s3://{s3_bucket.name}/out",
                               output_conn_id=s3_bucket.conn_id).execute({})
    assert sb.counters()["requests"] == 0
    assert s3_bucket.objects() == {}


def test_a_blocked_partition_path_is_a_clear_error(sb, tmp_path):
    out = tmp_path / "out"
    blocked = out / "journey" / "time_unit=DAY"
    blocked.parent.mkdir(parents=True)
    blocked.write_text("not a directory")
    with pytest.raises(EngageLabOutputError, match=r"time_unit=DAY.* is blocked"):
        EngageLabStatsOperator(task_id="t", stats_type="journey", journey_ids=[1], start_time="2026-05-01",
                               end_time="2026-05-01", output_path=str(out)).execute({})


def test_leftover_temporary_files_of_a_dead_publish_are_removed(sb, tmp_path):
    out = tmp_path / "out"
    case = ("jsonl", "journey", "DAY")
    root = Root("file", str(out), None, tmp_path)
    task(root, case, [1], "2026-05-01", "2026-05-01")
    part = out / "journey/time_unit=DAY/date=2026-05-01"
    (part / ".part-x.jsonl.abc123.tmp").write_bytes(b'{"journey_id": 1}\n')
    task(root, case, [1], "2026-05-01", "2026-05-01")
    assert root.leftovers() == []
    shutil.rmtree(out)
