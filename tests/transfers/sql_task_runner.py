"""Run one EngageLabStatsToSqlOperator task in this process and print its XCom summary as JSON.

A script, not a module: the tests start several at once (tasks of other workers) or kill one
inside its transaction. ``python sql_task_runner.py '<spec json>'`` with the spec::

    {"operator": {...EngageLabStatsToSqlOperator kwargs...},
     "run_day": "2026-05-12",              # optional: a daily run's data interval [day, day + 1)
     "pause_after_delete": "/path/marker"} # optional: once its transaction has deleted the old
                                           # rows, create the marker and sleep (for a kill)
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timedelta, timezone


def _pause_after_delete(marker: str) -> None:
    from airflow_provider_engagelab.sinks import sql_load

    real = sql_load._Loader._delete

    def delete(self, cursor, ranges):
        deleted = real(self, cursor, ranges)
        with open(marker, "w") as handle:
            handle.write(str(deleted))
        time.sleep(3600)
        return deleted

    sql_load._Loader._delete = delete


def main() -> None:
    spec = json.loads(sys.argv[1])
    if spec.get("pause_after_delete"):
        _pause_after_delete(spec["pause_after_delete"])
    from airflow_provider_engagelab.transfers.engagelab_to_sql import EngageLabStatsToSqlOperator

    context = {}
    if spec.get("run_day"):
        start = datetime.fromisoformat(spec["run_day"]).replace(tzinfo=timezone.utc)
        context = {"data_interval_start": start, "data_interval_end": start + timedelta(days=1),
                   "logical_date": start}
    summary = EngageLabStatsToSqlOperator(task_id="t", **spec["operator"]).execute(context)
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
