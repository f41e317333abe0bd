"""Issue 18: the task's temporary files (answer bodies, staged rows) and what a full disk does.

Answer bodies are anonymous temporary files in the task's temporary folder (``TMPDIR``; here
``tempfile.tempdir`` points at a private folder), staged rows a named folder there. After a
success, an API error mid-plan, a full disk or ``SIGTERM`` of the task process, that folder is
empty and this process holds no file open in it. A full disk is simulated: by a fault injected
at the write call (``ENOSPC``; making a really full file system needs root), and by a real
kernel refusal of a file size limit (``RLIMIT_FSIZE`` in a subprocess: ``EFBIG``).
No assertion depends on timing: waits for a subprocess are bounded by generous timeouts only.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_engagelab.exceptions import EngageLabError, EngageLabOutputError
from airflow_provider_engagelab.hooks import _bodies
from airflow_provider_engagelab.operators.engagelab import EngageLabStatsOperator
from airflow_provider_engagelab.sinks import staging as staging_module

ROOT = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("_temp_files_child.py")

#: 250 journeys x 2 days HOUR message: 3 calls (100 + 100 + 50 journeys).
IDS = list(range(1, 251))
DAYS = ("2025-06-01", "2025-06-02")


def _open_under(folder: Path, pid: int | str = "self") -> list[str]:
    """The files (named or anonymous) that process ``pid`` holds open under ``folder``."""
    found = []
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(f"{fd_dir}/{fd}")
        except OSError:
            continue
        if target.startswith(str(folder) + os.sep):
            found.append(target)
    return found


def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture
def task_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The task's temporary folder (what ``TMPDIR`` would be), private to the test."""
    folder = tmp_path / "task-tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture
def bodies_seen(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The folder of every answer body the hook creates."""
    seen: list[str] = []
    real = _bodies.BodyFile.__init__

    def init(self: Any, folder: str | None, what: str) -> None:
        real(self, folder, what)
        seen.append(self.folder)

    monkeypatch.setattr(_bodies.BodyFile, "__init__", init)
    return seen


def _operator(out: Path, fmt: str = "jsonl", **kwargs: Any) -> EngageLabStatsOperator:
    return EngageLabStatsOperator(
        task_id="t", stats_type="message", journey_ids=IDS, time_unit="HOUR",
        start_time=DAYS[0], end_time=DAYS[1], output_path=f"file://{out}", output_format=fmt,
        **kwargs,
    )


def _published(out: Path) -> list[str]:
    return [p for p in _tree(out) if p.endswith((".jsonl", ".csv", ".parquet"))] if out.exists() else []


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_nothing_left_after_success(sandbox, tmp_path, task_tmp, bodies_seen, fmt):
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    out = tmp_path / "out"
    summary = _operator(out, fmt).execute({})
    assert summary["calls"] == 3 and summary["total_rows"] > 0
    assert bodies_seen == [str(task_tmp)] * 3  # every body went to the task's temporary folder
    assert _tree(task_tmp) == []
    assert _open_under(task_tmp) == []
    assert len(_published(out)) == 2


def test_nothing_left_after_an_api_error_mid_plan(sandbox, tmp_path, task_tmp, bodies_seen, monkeypatch):
    # width 1: requests in plan order; the first call answers, the second gets code 50217 (not retried)
    monkeypatch.setenv("AIRFLOW_CONN_ENGAGELAB_DEFAULT",
                       json.dumps(sandbox.airflow_connection(max_concurrent_requests=1)))
    sandbox.inject({"kind": "hang", "seconds": 0}, {"kind": "code_in_200", "code": 50217})
    out = tmp_path / "out"
    with pytest.raises(EngageLabError) as info:
        _operator(out).execute({})
    assert not isinstance(info.value, EngageLabOutputError)
    assert len(bodies_seen) >= 2
    assert _tree(task_tmp) == []
    assert _open_under(task_tmp) == []
    assert _published(out) == []


class _FullDisk:
    """A file whose writes fail with ENOSPC once ``room`` bytes were written."""

    def __init__(self, real: Any, room: int) -> None:
        self._real, self._room = real, room

    def write(self, data: Any) -> int:
        if len(data) > self._room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._room -= len(data)
        return int(self._real.write(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def __enter__(self) -> _FullDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        self._real.close()


def _assert_full_disk_error(err: EngageLabOutputError, folder: Path, sandbox: Any) -> None:
    text = str(err)
    assert "no space left" in text and str(folder) in text and "nothing was published" in text
    assert err.retryable is False
    assert sandbox.api_secret not in text


def test_full_disk_while_downloading(sandbox, tmp_path, task_tmp, monkeypatch):
    real = tempfile.TemporaryFile

    def temporary_file(*args: Any, **kwargs: Any) -> _FullDisk:
        return _FullDisk(real(*args, **kwargs), room=200_000)

    monkeypatch.setattr(_bodies.tempfile, "TemporaryFile", temporary_file)
    out = tmp_path / "out"
    with pytest.raises(EngageLabOutputError) as info:
        _operator(out).execute({})
    _assert_full_disk_error(info.value, task_tmp, sandbox)
    assert "while saving the answer of" in str(info.value)
    assert _tree(task_tmp) == [] and _open_under(task_tmp) == []
    assert _published(out) == []
    assert sandbox.counters()["requests"] <= 3  # not retried: the same disk would refuse again


def test_full_disk_while_staging(sandbox, tmp_path, task_tmp, monkeypatch):
    def full_open(path: str, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = open(path, mode, *args, **kwargs)
        return _FullDisk(handle, room=10_000) if "b" in mode and ("w" in mode or "a" in mode) else handle

    monkeypatch.setattr(staging_module, "open", full_open, raising=False)
    out = tmp_path / "out"
    with pytest.raises(EngageLabOutputError) as info:
        _operator(out).execute({})
    _assert_full_disk_error(info.value, task_tmp, sandbox)
    assert "engagelab-stage-" in str(info.value)  # the staging folder itself is named
    assert _tree(task_tmp) == [] and _open_under(task_tmp) == []
    assert _published(out) == []


def _child(spec: dict[str, Any], tmp: Path, sandbox: Any, **popen: Any) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    env.update(TMPDIR=str(tmp), PYTHONPATH=str(ROOT),
               AIRFLOW_CONN_ENGAGELAB_DEFAULT=json.dumps(sandbox.airflow_connection()))
    return subprocess.Popen([sys.executable, str(CHILD), json.dumps(spec)], env=env, cwd=str(ROOT),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def _limit_file_size() -> None:  # runs in the child before exec
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))


def test_a_real_write_refusal_names_the_folder(sandbox, tmp_path):
    """The kernel refuses the body's write (RLIMIT_FSIZE, EFBIG): the same clear failure."""
    tmp, out = tmp_path / "task-tmp", tmp_path / "out"
    tmp.mkdir()
    spec = {"output_path": f"file://{out}", "ids": IDS, "days": DAYS}
    proc = _child(spec, tmp, sandbox, preexec_fn=_limit_file_size)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 3, stdout + stderr
    result = json.loads(stdout.strip().splitlines()[-1])
    assert result["error"] == "EngageLabOutputError"
    assert f"temporary folder {tmp}" in result["message"] and "nothing was published" in result["message"]
    assert "File too large" in result["message"]
    assert _tree(tmp) == []
    assert _published(out) == []


def test_nothing_left_after_sigterm_of_the_task_process(sandbox, tmp_path):
    """SIGTERM while bodies wait on disk and rows are staged: Airflow's handler calls
    on_kill, the fetch unwinds, the staging folder is removed, nothing is published."""
    tmp, out = tmp_path / "task-tmp", tmp_path / "out"
    tmp.mkdir()
    marker = tmp_path / "staged-once"
    spec = {"output_path": f"file://{out}", "ids": list(range(1, 801)), "days": DAYS,
            "pause_after_first_stage": str(marker), "width": 4}
    proc = _child(spec, tmp, sandbox)
    try:
        deadline = time.monotonic() + 240  # a bound on a stuck child, not a measured time
        # paused after the first answer was staged, while later calls' bodies wait on disk
        while not (marker.exists() and any("(deleted)" in f for f in _open_under(tmp, proc.pid))):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the child never reached its pause"
            time.sleep(0.05)
        assert any(p.startswith("engagelab-stage-") for p in os.listdir(tmp))
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 3, stdout + stderr
    result = json.loads(stdout.strip().splitlines()[-1])
    assert result["error"] == "AirflowTaskTerminated", result
    assert result["open_under_tmp"] == []  # closed before the process ended, not by its end
    assert _tree(tmp) == []
    assert _published(out) == []
