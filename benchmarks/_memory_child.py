"""One memory run in a fresh process; prints a JSON line with its peak RSS.

Called by ``benchmarks/run.py`` as ``python _memory_child.py '<json spec>'``; the spec holds
``conn_id`` (its ``AIRFLOW_CONN_*`` variable is in the environment), ``mode`` (``operator``:
the operator streams rows to ``file://`` files; ``collect``: ``hook.get_stats`` first collects
every row in a list, then the same writer writes them), ``stats_type``, ``time_unit``,
``first_id``, ``ids``, ``start``, ``end``, ``output_format`` and ``output_dir``.

Peak RSS is the high-water mark of this process's own memory (``VmHWM`` in
``/proc/self/status``, read at the end; the sandbox runs in another process). It is not
``ru_maxrss``: on Linux that also carries the parent's resident size over ``fork``/``exec``
(the old memory map's high-water mark is merged into it at ``exec``), so a child started by
a parent that has grown to 230 MiB would report at least that, whatever it did itself.
``ru_maxrss`` is reported alongside for reference.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from typing import Any


def _rss_kib() -> int:
    """Current resident set size in KiB (Linux ``/proc``), or 0 when unknown."""
    try:
        with open("/proc/self/statm") as handle:
            pages = int(handle.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return pages * resource.getpagesize() // 1024


def _peak_rss_kib() -> int:
    """``VmHWM`` (peak resident set size of this process image) in KiB."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one memory measurement described by ``spec``."""
    from airflow_provider_engagelab.hooks.engagelab import EngageLabHook
    from airflow_provider_engagelab.operators.engagelab import EngageLabStatsOperator

    ids = list(range(spec["first_id"], spec["first_id"] + spec["ids"]))
    rss_before = _rss_kib()
    started = time.perf_counter()
    cpu_started = time.process_time()
    if spec["mode"] == "operator":
        operator = EngageLabStatsOperator(
            task_id="bench_memory",
            stats_type=spec["stats_type"],
            engagelab_conn_id=spec["conn_id"],
            journey_ids=ids,
            time_unit=spec["time_unit"],
            start_time=spec["start"],
            end_time=spec["end"],
            output_path="file://" + spec["output_dir"],
            output_format=spec["output_format"],
        )
        summary = operator.execute({})
        rows, calls, files = summary["total_rows"], summary["calls"], len(summary["files"])
    elif spec["mode"] == "collect":
        from airflow_provider_engagelab.core.layout import file_name, partition_path
        from airflow_provider_engagelab.sinks.staging import PartitionStager
        from airflow_provider_engagelab.sinks.store import LocalStore

        result = EngageLabHook(spec["conn_id"]).get_stats(
            spec["stats_type"], ids, spec["time_unit"], spec["start"], spec["end"]
        )
        q = result.query
        store = LocalStore(spec["output_dir"])
        with PartitionStager(q.stats_type, q.time_unit, q.start, q.end, spec["output_format"]) as stager:
            stager.add_all(result.rows)
            staged = stager.finish()
            name = file_name(q.journey_ids, spec["output_format"])
            for f in staged.values():
                store.put_file(f.local_path, f"{partition_path(q.stats_type, q.time_unit, f.day)}/{name}")
        rows, calls, files = len(result.rows), result.calls, len(staged)
    else:
        raise ValueError(f"unknown mode {spec['mode']!r}")
    import airflow_provider_engagelab

    return {
        "package": os.path.dirname(airflow_provider_engagelab.__file__),
        "rows": rows,
        "calls": calls,
        "files": files,
        "seconds": time.perf_counter() - started,
        "cpu_seconds": time.process_time() - cpu_started,
        "rss_before_kib": rss_before,
        "peak_rss_kib": _peak_rss_kib(),
        "ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


if __name__ == "__main__":
    print(json.dumps(run(json.loads(sys.argv[1]))), flush=True)
