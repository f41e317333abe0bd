"""Helpers of the sink suites: a daily run's context, and tasks run in their own processes
(``task_runner.py``, as on other workers)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

RUNNER = Path(__file__).with_name("task_runner.py")


def daily(day: str) -> dict[str, Any]:
    """The context of the daily run whose data interval is ``day``."""
    start = datetime.fromisoformat(day).replace(tzinfo=UTC)
    return {"data_interval_start": start, "data_interval_end": start + timedelta(days=1),
            "logical_date": start}


def start_tasks(env: dict[str, str], connection: dict[str, Any],
                specs: list[dict[str, Any]]) -> list[subprocess.Popen]:
    """Tasks in separate processes, all started at once, with ``env`` and the EngageLab Connection."""
    full = {**os.environ, **env, "AIRFLOW_CONN_ENGAGELAB_DEFAULT": json.dumps(connection)}
    return [
        subprocess.Popen([sys.executable, str(RUNNER), json.dumps(spec)], env=full, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
        for spec in specs
    ]


def finish(procs: list[subprocess.Popen], timeout: float) -> list[dict[str, Any]]:
    """Wait for each task process; each must succeed; their summaries (last stdout line)."""
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, stderr[-3000:]
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out
