"""One EngageLabStatsOperator task in this process, with Airflow 3's SIGTERM handling.

``python _temp_files_child.py '<spec json>'`` (see ``test_temporary_files.py``): message HOUR
statistics of ``ids`` over ``days`` to ``output_path``. ``SIGTERM`` calls the task's
``on_kill`` in the main thread, as Airflow 3's task runner does. With
``pause_after_first_stage`` (a path), the task creates that file after staging its first answer
and sleeps (its later calls keep downloading meanwhile). Prints one JSON line: the summary, or
the error's type and text plus the files this process still holds open under ``TMPDIR`` after
the failure (exit status 3).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import time


def _open_under_tmp() -> list[str]:
    folder = tempfile.gettempdir() + os.sep
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(folder):
            found.append(target)
    return found


def main() -> int:
    spec = json.loads(sys.argv[1])
    if spec.get("width"):
        conn = json.loads(os.environ["AIRFLOW_CONN_ENGAGELAB_DEFAULT"])
        conn["extra"] = {**conn.get("extra", {}), "max_concurrent_requests": spec["width"]}
        os.environ["AIRFLOW_CONN_ENGAGELAB_DEFAULT"] = json.dumps(conn)
    if spec.get("pause_after_first_stage"):
        from airflow_provider_engagelab.sinks.files import FileSink

        real = FileSink.stage

        def stage(self, parsed, real=real):
            out = real(self, parsed)
            marker = spec["pause_after_first_stage"]
            if not os.path.exists(marker):
                with open(marker, "w"):
                    pass
                time.sleep(3600)
            return out

        FileSink.stage = stage
    from airflow_provider_engagelab.operators.engagelab import EngageLabStatsOperator

    op = EngageLabStatsOperator(
        task_id="t", stats_type="message", journey_ids=spec["ids"], time_unit="HOUR",
        start_time=spec["days"][0], end_time=spec["days"][1], output_path=spec["output_path"],
    )
    signal.signal(signal.SIGTERM, lambda signum, frame: op.on_kill())
    try:
        summary = op.execute({})
    except BaseException as exc:  # noqa: BLE001 - reported to the test
        print(json.dumps({"error": type(exc).__name__, "message": str(exc),
                          "open_under_tmp": _open_under_tmp()}), flush=True)
        return 3
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
