"""Delta table vs Parquet files: the commit of one big HOUR message window, first write and rerun.

Not a figure of ``run.py`` (no target): the numbers behind the README's "Cost" paragraph of
*Delta Lake tables*. ``.venv/bin/python benchmarks/delta_write.py [--journeys 400]``: for each
format, two tasks (``EngageLabStatsOperator.execute``, message statistics, HOUR, 31 days, a
local root) in fresh processes, against the sandbox in its own process; prints the rows, the
commit's wall and CPU time (``sink.commit()``: Parquet conversion and publish, or the Delta
transaction), rows per wall second, and the task's peak RSS (``VmHWM``) before and after the
commit.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _support import SandboxProcess, set_connection

CHILD = r"""
import json, logging, sys, time
from airflow_provider_engagelab.operators.engagelab import EngageLabStatsOperator
from airflow_provider_engagelab.sinks import delta, files

def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024

seen = {}
for cls in (delta.DeltaSink, files.FileSink):
    def commit(self, real=cls.commit):
        seen["hwm_before"] = hwm()
        t, c = time.perf_counter(), time.process_time()
        result = real(self)
        seen["wall"], seen["cpu"] = time.perf_counter() - t, time.process_time() - c
        return result
    cls.commit = commit
logging.disable(logging.INFO)
fmt, journeys, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
summary = EngageLabStatsOperator(
    task_id="t", stats_type="message", journey_ids=list(range(1, journeys + 1)), time_unit="HOUR",
    start_time="2025-11-01", end_time="2025-12-01", output_path=out, output_format=fmt).execute({})
print(json.dumps({"rows": summary["total_rows"], **seen, "hwm_after": hwm()}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--journeys", type=int, default=400)
    args = parser.parse_args()
    with SandboxProcess() as sandbox, tempfile.TemporaryDirectory() as work:
        env: dict[str, str] = {}
        set_connection("engagelab_default", sandbox.connection(max_concurrent_requests=4), env)
        env = {**os.environ, **env}
        for fmt in ("parquet", "delta"):
            out = str(Path(work) / fmt)
            for run in ("first", "rerun"):
                proc = subprocess.run([sys.executable, "-c", CHILD, fmt, str(args.journeys), out],
                                      env=env, capture_output=True, text=True, check=True)
                m = json.loads(proc.stdout.strip().splitlines()[-1])
                print(f"{fmt:8} {run:6} {m['rows']:>9,} rows  commit {m['wall']:5.2f} s wall "
                      f"{m['cpu']:5.2f} s CPU  {m['rows'] / m['wall']:>9,.0f} rows/s  "
                      f"peak RSS {m['hwm_before']} -> {m['hwm_after']} MiB")
        print(f"load average {os.getloadavg()[0]:.1f} at {time.strftime('%H:%M:%S')}")


if __name__ == "__main__":
    main()
