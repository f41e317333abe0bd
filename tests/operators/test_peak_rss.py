"""Issue 18: a file-writing task's memory does not grow with the width.

One task at ``max_concurrent_requests=16`` in a fresh process (``benchmarks/_memory_child.py``):
message statistics, HOUR, 400 journeys x 31 days (4 calls of 100 journeys x 31 days, ~40 MB of
JSON and ~150k rows each, all running at once). Its peak RSS (``VmHWM``) over its RSS after the
imports must stay under a generous cap: 200 MiB, where the benchmark's target (figure 9) is 150
MiB. Measured for jsonl on a busy 2-core machine: +58 MiB (185 MiB peak); the tree before issue
18 (854811d), which held every running call's body and decoded rows: +293 MiB (420 MiB). A cap
on memory, not a timing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHILD = ROOT / "benchmarks" / "_memory_child.py"
CAP_MIB = 200


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_peak_rss_at_width_16_stays_under_a_cap(sandbox, tmp_path, fmt):
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    env["AIRFLOW_CONN_ENGAGELAB_WIDE"] = json.dumps(sandbox.airflow_connection(max_concurrent_requests=16))
    env["TMPDIR"] = str(tmp_path)
    env["PYTHONPATH"] = str(ROOT)
    spec = {"conn_id": "engagelab_wide", "stats_type": "message", "time_unit": "HOUR", "first_id": 1,
            "ids": 400, "start": "2025-05-01", "end": "2025-05-31", "mode": "operator",
            "output_format": fmt, "output_dir": str(tmp_path / "out")}
    proc = subprocess.run([sys.executable, str(CHILD), json.dumps(spec)], env=env, cwd=str(ROOT),
                          capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = json.loads(proc.stdout.strip().splitlines()[-1])
    assert run["calls"] == 4 and run["rows"] > 500_000
    over_mib = (run["peak_rss_kib"] - run["rss_before_kib"]) / 1024
    peak_mib = run["peak_rss_kib"] / 1024
    assert over_mib < CAP_MIB, f"peak RSS {peak_mib:.0f} MiB, +{over_mib:.0f} MiB over the imports"
