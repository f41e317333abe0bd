"""Run one EngageLabStatsOperator task in this process and print its XCom summary as JSON.

A script, not a module: the exactly-once tests start several of these at once (tasks of other
workers) or kill one mid-commit. ``python task_runner.py '<spec json>'`` with the spec::

    {"operator": {...EngageLabStatsOperator kwargs...},
     "run_day": "2026-05-12",            # optional: a daily run's data interval [day, day + 1)
     "pause_in_commit": "/path/marker"}  # optional: at its first data-file upload, create the
                                         # marker and sleep (holding the partition's lock)
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timedelta, timezone


def _pause_in_commit(marker: str) -> None:
    from airflow_provider_engagelab.sinks import store

    for cls in (store.LocalStore, store.FsspecStore):
        real = cls.put_file

        def put_file(self, local_path, relative, real=real):
            if "/part-" in relative:
                with open(marker, "w"):
                    pass
                time.sleep(3600)
            return real(self, local_path, relative)

        cls.put_file = put_file


def main() -> None:
    spec = json.loads(sys.argv[1])
    if spec.get("pause_in_commit"):
        _pause_in_commit(spec["pause_in_commit"])
    from airflow_provider_engagelab.operators.engagelab import EngageLabStatsOperator

    context = {}
    if spec.get("run_day"):
        start = datetime.fromisoformat(spec["run_day"]).replace(tzinfo=timezone.utc)
        context = {"data_interval_start": start, "data_interval_end": start + timedelta(days=1),
                   "logical_date": start}
    summary = EngageLabStatsOperator(task_id="t", **spec["operator"]).execute(context)
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
