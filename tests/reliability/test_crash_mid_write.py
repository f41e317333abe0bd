"""A task killed mid-write: earlier partitions intact, no partial or temporary file, the retry completes.

The operators commit one partition (date) at a time, in date order, each under its lock and
each file atomically (hidden temp file + ``os.replace`` locally). These tests kill the task at
the worst moments: between two partitions of the commit (after K of them), inside the copy of
one file, and while rows are still arriving; with an ordinary exception and with
``AirflowTaskTerminated`` (a BaseException, what Airflow raises on SIGTERM) or
``KeyboardInterrupt``. After each: every file is whole (the previous run's bytes or the new
run's, never a mix), nothing temporary is visible (no ``.name.*.tmp``, no lock file, no
staging directory left behind), and the retry leaves exactly the bytes of an undisturbed run.
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import datetime
from pathlib import Path

import pytest
from reliability_helpers import UTC, files_under, set_conn, stray_files

from airflow_provider_engagelab.exceptions import EngageLabAuthError, EngageLabOutputError
from airflow_provider_engagelab.operators.engagelab import EngageLabStatsOperator
from airflow_provider_engagelab.sinks import files as files_module
from airflow_provider_engagelab.testing.sandbox import Fault

try:  # Airflow >= 3.1
    from airflow.sdk.exceptions import AirflowTaskTerminated
except ImportError:  # Airflow 3.0
    from airflow.exceptions import AirflowTaskTerminated  # type: ignore[no-redef]

START, END = "2026-05-01", "2026-05-06"  # 6 dates -> 6 partitions
K = 3  # partitions committed before the crash
FORMATS = ["jsonl", "csv", "parquet"]


class Killed(Exception):
    """The simulated kill (an ordinary exception)."""


REAL_COMMIT = files_module.commit_partition
KILLS = [Killed("worker killed"), AirflowTaskTerminated("SIGTERM"), KeyboardInterrupt()]


def operator(root: Path, fmt: str, **kwargs) -> EngageLabStatsOperator:
    return EngageLabStatsOperator(
        task_id="t", stats_type="message", journey_ids=[21, 22, 23], time_unit="HOUR",
        start_time=START, end_time=END, output_path=str(root), output_format=fmt, **kwargs,
    )


@pytest.fixture
def staging(tmp_path, monkeypatch) -> Path:
    """Where the operator stages its files (the system temp dir, redirected for the test)."""
    root = tmp_path / "staging"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


@pytest.fixture(params=FORMATS)
def fmt(request) -> str:
    if request.param == "parquet":
        pytest.importorskip("pyarrow")
    return request.param


@pytest.fixture
def reference(sb, tmp_path, fmt) -> dict[str, bytes]:
    """The bytes of an undisturbed run (the state every retry must end in)."""
    root = tmp_path / "reference"
    operator(root, fmt).execute({})
    sb.reset_counters()
    return files_under(root)


@pytest.fixture
def older(sb, tmp_path, fmt) -> dict[str, bytes]:
    """A previous run's files, written when the data was only available through 05-05 09:00
    (so 05-06 has no file, and 05-05 a partial one)."""
    root = tmp_path / "out"
    sb.configure(available_through=datetime(2026, 5, 5, 9, tzinfo=UTC))
    operator(root, fmt).execute({})
    sb.configure(available_through=datetime(2026, 7, 1, tzinfo=UTC))
    sb.reset_counters()
    return files_under(root)


def crash_after(k: int, kill: BaseException):
    """A partition commit that lets ``k`` partitions through, then dies before the next one."""
    done: list[str] = []

    def commit_partition(store, directory, *args, **kwargs):
        if len(done) == k:
            raise kill
        done.append(directory)
        return REAL_COMMIT(store, directory, *args, **kwargs)

    return commit_partition


def partitions(files: dict[str, bytes]) -> list[dict[str, bytes]]:
    """The files grouped by partition directory, in date order."""
    groups: dict[str, dict[str, bytes]] = {}
    for name, data in sorted(files.items()):
        groups.setdefault(name.rsplit("/", 1)[0], {})[name] = data
    return [groups[key] for key in sorted(groups)]


def assert_clean(out: Path, staging: Path) -> None:
    assert not out.exists() or stray_files(out) == []
    assert list(staging.iterdir()) == []  # the staging directory went with the task


@pytest.mark.parametrize("kill", KILLS, ids=lambda k: type(k).__name__)
def test_killed_between_files_of_a_first_run(sb, tmp_path, monkeypatch, staging, fmt, reference, kill):
    out = tmp_path / "out"
    monkeypatch.setattr(files_module, "commit_partition", crash_after(K, kill))
    with pytest.raises(type(kill)):
        operator(out, fmt).execute({})
    monkeypatch.setattr(files_module, "commit_partition", REAL_COMMIT)
    assert partitions(files_under(out)) == partitions(reference)[:K]  # whole, final bytes
    assert_clean(out, staging)

    operator(out, fmt).execute({})  # the retry
    assert files_under(out) == reference


@pytest.mark.parametrize("kill", KILLS[:2], ids=lambda k: type(k).__name__)
def test_killed_between_files_over_a_previous_run(sb, tmp_path, monkeypatch, staging, fmt, reference,
                                                  older, kill):
    out = tmp_path / "out"
    assert len(partitions(older)) == 5 and partitions(older) != partitions(reference)[:5]  # 05-05 changed
    monkeypatch.setattr(files_module, "commit_partition", crash_after(K, kill))
    with pytest.raises(type(kill)):
        operator(out, fmt).execute({})
    monkeypatch.setattr(files_module, "commit_partition", REAL_COMMIT)
    assert partitions(files_under(out)) == partitions(reference)[:K] + partitions(older)[K:]
    assert_clean(out, staging)

    operator(out, fmt).execute({})
    assert files_under(out) == reference


@pytest.mark.parametrize("kill", KILLS[:2], ids=lambda k: type(k).__name__)
def test_killed_inside_the_copy_of_a_file(sb, tmp_path, monkeypatch, staging, fmt, reference, older, kill):
    """Half of file 2 is on disk when the task dies: nobody ever sees that half."""
    out = tmp_path / "out"
    real_copy = shutil.copyfileobj
    copies = []

    def dying_copy(src, dst, length=0):
        copies.append(dst)
        if len(copies) == 2:
            dst.write(src.read(max(1, len(older[sorted(older)[0]]) // 2)))
            dst.flush()
            raise kill
        return real_copy(src, dst, length) if length else real_copy(src, dst)

    monkeypatch.setattr(shutil, "copyfileobj", dying_copy)
    # an ordinary exception reaches the task as the store's error naming the file
    with pytest.raises((type(kill), EngageLabOutputError)):
        operator(out, fmt).execute({})
    monkeypatch.setattr(shutil, "copyfileobj", real_copy)
    assert partitions(files_under(out)) == partitions(reference)[:1] + partitions(older)[1:]
    assert_clean(out, staging)

    operator(out, fmt).execute({})
    assert files_under(out) == reference


def test_killed_while_rows_are_still_arriving(sb, tmp_path, monkeypatch, staging, fmt, older):
    """The second of two calls fails after the first one's rows were staged: nothing is written."""
    set_conn(monkeypatch, sb, max_retries=0, max_concurrent_requests=1)
    out = tmp_path / "out"
    sb.inject(Fault("hang", seconds=0), Fault("code_in_200", code=40050))  # call 1 fine, call 2 fails
    with pytest.raises(EngageLabAuthError):
        EngageLabStatsOperator(
            task_id="t", stats_type="message", journey_ids=list(range(21, 221)), time_unit="HOUR",
            start_time=START, end_time=END, output_path=str(out), output_format=fmt,
        ).execute({})  # 200 journeys: 2 calls
    assert sb.counters()["requests"] == 2
    assert files_under(out) == older  # the previous run's files, untouched; no new file
    assert_clean(out, staging)
